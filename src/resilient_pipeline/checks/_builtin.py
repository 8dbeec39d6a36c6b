"""Built-in, parameterised consistency checks for KPI data, and dataset loaders.

Each factory returns a :class:`~resilient_pipeline.Check` over the rows of a
dataset (default ``"rows"``); feed it rows, or a loader such as
:func:`query_dataset` that selects them from the database for the run's period.

Examples:
    >>> from resilient_pipeline import CheckSuite
    >>> from resilient_pipeline import checks
    >>> rows = [
    ...     {"client_id": 1, "date": "2026-11-28", "spend": 120.0, "conversions": 0,
    ...      "clicks": 40, "impressions": 30},
    ...     {"client_id": 2, "date": "2026-11-28", "spend": 80.0, "conversions": 3,
    ...      "clicks": 50, "impressions": 900},
    ... ]
    >>> suite = CheckSuite(checks=[
    ...     checks.spend_without_conversions(min_spend=100),
    ...     checks.clicks_exceed_impressions(),
    ...     checks.completeness(expected=[1, 2, 3], key="client_id"),
    ... ], datasets={"rows": rows})
    >>> report = suite.run()
    >>> [(r.name, r.offending_count) for r in report.failed]
    [('spend_without_conversions', 1), ('clicks_exceed_impressions', 1), ('completeness', 1)]
    >>> report.result("completeness").message
    'expected 3 key(s), got 2: missing 3'
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from resilient_pipeline.alerting import Severity
from resilient_pipeline.exceptions import ConfigurationError

from ._check import Check, CheckContext, CheckOutcome, Row

__all__ = [
    "clicks_exceed_impressions",
    "completeness",
    "conversions_without_spend",
    "freshness",
    "query_dataset",
    "rate_out_of_bounds",
    "row_count_anomaly",
    "spend_without_conversions",
    "sums_agree",
]

_KEY = ("client_id", "date", "platform")


def query_dataset(
    sql: str, params: Mapping[str, Any] | None = None
) -> Callable[[CheckContext], list[Row]]:
    """A dataset loader: ``sql`` (``:name`` parameters, bound from the run's params).

    Examples:
        >>> loader = query_dataset("SELECT * FROM kpi WHERE date = :day")
        >>> callable(loader)
        True
    """
    bound = dict(params or {})
    return lambda context: context.query(sql, bound)


def _pick(row: Row, key: Sequence[str]) -> dict[str, Any]:
    return {column: row[column] for column in key if column in row}


def _offending(row: Row, key: Sequence[str], *columns: str) -> dict[str, Any]:
    return {**_pick(row, key), **{c: row.get(c) for c in columns}}


Number = int | float | Decimal
"""What a numeric column holds: PostgreSQL's ``NUMERIC`` (and its ``SUM`` of a
``BIGINT``) arrives as a :class:`~decimal.Decimal`, ``REAL`` as a float."""


def _number(value: object, column: str) -> Number:
    """``value`` of ``column`` as a number (``None`` is 0); anything else is named."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise TypeError(f"column {column!r} holds a {type(value).__name__}, not a number")
    return value


def _aligned(a: Number, b: Number) -> tuple[Number, Number]:
    """``a`` and ``b`` in one arithmetic: exact (int, Decimal) unless either is a float.

    Python refuses ``Decimal + float``: once a float is involved, both are floats.
    """
    if isinstance(a, float) or isinstance(b, float):
        return float(a), float(b)
    return a, b


def spend_without_conversions(
    *,
    dataset: str = "rows",
    spend: str = "spend",
    conversions: str = "conversions",
    min_spend: float = 0.0,
    key: Sequence[str] = _KEY,
    severity: Severity = "warning",
    name: str = "spend_without_conversions",
) -> Check:
    """Rows that spent more than ``min_spend`` and recorded no conversion (tracking lost?)."""
    return Check.rows(
        name,
        lambda rows: [
            _offending(r, key, spend, conversions)
            for r in rows
            if (r.get(spend) or 0) > min_spend and not r.get(conversions)
        ],
        dataset=dataset,
        severity=severity,
        message="{count} row(s) with spend but no conversions",
        action="Check the conversion tracking (pixel, API scope) for these keys, then re-collect.",
    )


def conversions_without_spend(
    *,
    dataset: str = "rows",
    spend: str = "spend",
    conversions: str = "conversions",
    key: Sequence[str] = _KEY,
    severity: Severity = "warning",
    name: str = "conversions_without_spend",
) -> Check:
    """Rows with conversions and no spend: split data, spend and conversions from two runs."""
    return Check.rows(
        name,
        lambda rows: [
            _offending(r, key, spend, conversions)
            for r in rows
            if (r.get(conversions) or 0) > 0 and not r.get(spend)
        ],
        dataset=dataset,
        severity=severity,
        message="{count} row(s) with conversions but no spend",
        action="Re-collect these partitions in one unit of work so spend and conversions agree.",
    )


def rate_out_of_bounds(
    *,
    numerator: str = "conversions",
    denominator: str = "clicks",
    minimum: float = 0.0,
    maximum: float = 0.10,
    dataset: str = "rows",
    key: Sequence[str] = _KEY,
    severity: Severity = "warning",
    name: str | None = None,
) -> Check:
    """Rows whose ``numerator / denominator`` is outside ``[minimum, maximum]`` (default CR ≤ 10%).

    Rows with a zero or missing denominator are skipped. Integers and
    Decimals (PostgreSQL's ``NUMERIC``) divide exactly; a float on either
    side makes the rate a float.

    Examples:
        >>> from decimal import Decimal
        >>> check = rate_out_of_bounds(maximum=0.5)
        >>> rows = [{"client_id": 1, "conversions": Decimal("3"), "clicks": 4.0}]
        >>> [r["rate"] for r in check.run(datasets={"rows": rows}).offending]
        [0.75]
    """
    if not minimum <= maximum:
        raise ConfigurationError.for_option("maximum", maximum, f"must be >= minimum={minimum}")

    def body(rows: list[Row]) -> list[Row]:
        bad: list[Row] = []
        for r in rows:
            den = _number(r.get(denominator), denominator)
            if den:
                num, den = _aligned(_number(r.get(numerator), numerator), den)
                rate = num / den  # type: ignore[operator]  # _aligned: never Decimal / float
                if not minimum <= rate <= maximum:
                    bad.append({**_offending(r, key, numerator, denominator), "rate": rate})
        return bad

    return Check.rows(
        name or f"{numerator}_per_{denominator}_out_of_bounds",
        body,
        dataset=dataset,
        severity=severity,
        message=f"{{count}} row(s) with {numerator}/{denominator} outside [{minimum}, {maximum}]",
        action="Look for double-counted conversions or a unit change upstream.",
    )


def clicks_exceed_impressions(
    *,
    clicks: str = "clicks",
    impressions: str = "impressions",
    dataset: str = "rows",
    key: Sequence[str] = _KEY,
    severity: Severity = "error",
    name: str = "clicks_exceed_impressions",
) -> Check:
    """Rows with more clicks than impressions: impossible, so the data is wrong."""
    return Check.rows(
        name,
        lambda rows: [
            _offending(r, key, clicks, impressions)
            for r in rows
            if (r.get(clicks) or 0) > (r.get(impressions) or 0)
        ],
        dataset=dataset,
        severity=severity,
        message="{count} row(s) with more clicks than impressions",
        action="Re-collect these partitions; if it persists, the upstream report is inconsistent.",
    )


def completeness(
    *,
    expected: Iterable[Any] | Callable[[CheckContext], Iterable[Any]],
    key: str = "client_id",
    dataset: str = "rows",
    severity: Severity = "error",
    name: str = "completeness",
) -> Check:
    """Every expected key has at least one row: "expected 16 clients, got 14: missing 7, 12".

    ``expected`` is the keys, or a function of the context that returns them
    (e.g. the active clients, read from the database).
    """

    def body(context: CheckContext) -> CheckOutcome:
        wanted = list(expected(context) if callable(expected) else expected)
        present = {row.get(key) for row in context.rows(dataset)}
        missing = [k for k in dict.fromkeys(wanted) if k not in present]
        message = (
            f"expected {len(set(wanted))} key(s), got {len(set(wanted)) - len(missing)}: "
            f"missing {', '.join(map(str, missing[:20]))}"
            + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        )
        return CheckOutcome([{key: k} for k in missing], message=message)

    return Check(
        name=name,
        severity=severity,
        body=body,
        action="Backfill the missing partitions (ledger.gaps() then backfill()); "
        "see docs/runbooks/daily-collection-incomplete.md.",
    )


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        # A daily partition is complete at the end of its day.
        return dt.datetime.combine(value + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    text = str(value)
    if len(text) == 10:
        return _as_datetime(dt.date.fromisoformat(text))
    return _as_datetime(dt.datetime.fromisoformat(text))


def freshness(
    *,
    max_age: dt.timedelta,
    column: str = "date",
    dataset: str = "rows",
    severity: Severity = "error",
    name: str = "freshness",
) -> Check:
    """The latest ``column`` value is at most ``max_age`` old (a date counts from its end).

    Values may be dates, datetimes (naive means UTC), ISO strings or epoch seconds.
    """
    if not isinstance(max_age, dt.timedelta) or max_age <= dt.timedelta(0):  # type: ignore[redundant-expr]
        raise ConfigurationError.for_option("max_age", max_age, "must be a positive timedelta")

    def body(context: CheckContext) -> CheckOutcome:
        values = [r[column] for r in context.rows(dataset) if r.get(column) is not None]
        now = dt.datetime.fromtimestamp(context.now(), dt.timezone.utc)
        if not values:
            return CheckOutcome([{column: None}], message=f"no {column} at all: nothing collected")
        latest = max(_as_datetime(v) for v in values)
        age = now - latest
        if age <= max_age:
            return CheckOutcome([])
        hours = age.total_seconds() / 3600
        return CheckOutcome(
            [{column: str(max(values, key=_as_datetime)), "age_hours": round(hours, 1)}],
            message=f"latest {column} is {hours:.1f} h old (limit {max_age})",
        )

    return Check(
        name=name,
        severity=severity,
        body=body,
        action="Is the scheduler running and the upstream API reachable? "
        "See docs/runbooks/upstream-api-down.md.",
    )


def row_count_anomaly(
    *,
    period: str = "date",
    window: int = 28,
    k: float = 3.0,
    min_history: int = 7,
    dataset: str = "rows",
    severity: Severity = "warning",
    name: str = "row_count_anomaly",
) -> Check:
    """The latest period's row count is within median ± k·MAD of the ``window`` before it.

    MAD is scaled by 1.4826 (consistent with a standard deviation for normal
    data). With fewer than ``min_history`` earlier periods the check passes.
    """
    if window < 1 or min_history < 1 or k <= 0:
        raise ConfigurationError.for_option(
            "window", window, "window and min_history must be >= 1 and k > 0"
        )
    # A Decimal k would meet the float MAD in k * mad: Python refuses to mix them.
    k = float(k)

    def body(rows: list[Row]) -> CheckOutcome:
        counts: dict[Any, int] = {}
        for row in rows:
            counts[row[period]] = counts.get(row[period], 0) + 1
        if not counts:
            return CheckOutcome([])
        ordered = sorted(counts)
        latest, history = ordered[-1], [counts[p] for p in ordered[-1 - window : -1]]
        if len(history) < min_history:
            return CheckOutcome([])
        median = statistics.median(history)
        mad = 1.4826 * statistics.median(abs(c - median) for c in history)
        low, high = median - k * mad, median + k * mad
        count = counts[latest]
        if low <= count <= high:
            return CheckOutcome([])
        return CheckOutcome(
            [{period: latest, "rows": count, "median": median, "low": low, "high": high}],
            message=f"{latest}: {count} rows, expected {low:.0f}..{high:.0f} "
            f"(median {median:g} of {len(history)} periods)",
        )

    return Check.rows(
        name,
        body,
        dataset=dataset,
        severity=severity,
        action="Compare with the upstream UI; a drop usually means a partial collection.",
    )


def _grouper(key: Sequence[str] | Callable[[Row], Any]) -> Callable[[Row], Any]:
    if callable(key):
        return key
    columns = tuple(key)
    return lambda row: tuple(row[c] for c in columns)


def sums_agree(
    *,
    column: str,
    detail_key: Sequence[str] | Callable[[Row], Any],
    summary_key: Sequence[str] | Callable[[Row], Any],
    detail: str = "detail",
    summary: str = "summary",
    tolerance: float | Decimal | None = None,
    severity: Severity = "error",
    name: str | None = None,
) -> Check:
    """Sums of ``column`` in the ``detail`` dataset equal the ``summary`` dataset per group.

    E.g. daily rows summed per (client, month) against the monthly table:
    ``detail_key=lambda r: (r["client_id"], r["date"][:7])``,
    ``summary_key=("client_id", "month")``. A group on one side only offends too.

    Integers and Decimals (PostgreSQL's ``NUMERIC``, and its ``SUM`` of an
    integer column) are summed exactly; a float on either side of a group
    makes that group's sums floats. ``tolerance`` is the largest difference
    that still agrees: by default none for exact sums, and ``0.01`` once a
    float is involved.

    Examples:
        >>> from decimal import Decimal
        >>> check = sums_agree(column="spend", detail_key=("month",), summary_key=("month",))
        >>> detail = [{"month": "2026-11", "spend": 2}, {"month": "2026-11", "spend": 1.5}]
        >>> summary = [{"month": "2026-11", "spend": Decimal("3.5")}]
        >>> check.run(datasets={"detail": detail, "summary": summary}).status
        'passed'
        >>> exact = [{"month": "2026-11", "spend": Decimal("3.5")}]
        >>> summary = [{"month": "2026-11", "spend": Decimal("3.49")}]
        >>> [r["difference"] for r in check.run(
        ...     datasets={"detail": exact, "summary": summary}).offending]
        [Decimal('0.01')]
    """
    by_detail, by_summary = _grouper(detail_key), _grouper(summary_key)
    given: object = tolerance  # checked as untyped callers may pass anything
    if given is not None and (
        isinstance(given, bool)
        or not isinstance(given, (int, float, Decimal))
        or not math.isfinite(given)  # NaN and infinities, float or Decimal
        or given < 0
    ):
        raise ConfigurationError.for_option(
            "tolerance", tolerance, "must be a finite number >= 0, or None"
        )

    def body(context: CheckContext) -> CheckOutcome:
        totals: dict[Any, list[Number]] = {}
        for side, (dataset, group_of) in enumerate(((detail, by_detail), (summary, by_summary))):
            for row in context.rows(dataset):
                sums = totals.setdefault(group_of(row), [0, 0])
                total, value = _aligned(sums[side], _number(row.get(column), column))
                sums[side] = total + value  # type: ignore[operator]
        bad = []
        for group, sums in sorted(totals.items(), key=lambda kv: str(kv[0])):
            d, s = _aligned(*sums)
            difference = d - s  # type: ignore[operator]
            limit = tolerance if tolerance is not None else (0.01 if isinstance(d, float) else 0)
            if abs(difference) > limit:
                bad.append({"group": group, "detail": d, "summary": s, "difference": difference})
        return CheckOutcome(bad)

    return Check(
        name=name or f"{column}_sums_agree",
        severity=severity,
        body=body,
        message=f"{{count}} group(s) where the {detail} and {summary} sums of {column} differ",
        action="Re-run the aggregation for these groups after the detail data is complete.",
    )
