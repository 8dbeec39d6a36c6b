"""Data-level checks in SQL: what the tables themselves hold, not what the ledger says.

The ledger can say a partition succeeded while its table holds no rows for it
(an empty answer stored as success), or holds campaigns and no conversions.
These checks read the data, on SQLite and PostgreSQL alike: identifiers are
checked and quoted by :func:`~resilient_pipeline.storage.quote_identifier`,
values are always bound (``:name`` parameters).

Periods and keys are compared as text (``str()``, dates as ISO dates), so the
key ``7`` matches a ``TEXT`` column holding ``'7'`` and ``date(2026, 11, 28)``
matches a ``DATE`` column as well as the text ``'2026-11-28'``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from resilient_pipeline._core import non_empty_str, number
from resilient_pipeline.alerting import Severity
from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.storage import quote_identifier, validate_identifier

from ._check import Check, CheckContext, CheckOutcome

__all__ = ["missing_keys", "unpaired_rows"]

Values = Iterable[Any] | Callable[[CheckContext], Iterable[Any]]


def _text(value: Any) -> str:
    """How a key or period is compared: a date as its ISO form, anything else as ``str``."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _param(value: Any) -> Any:
    """A period as a bound value: dates as ISO text (sqlite3's date adapter is deprecated)."""
    return value.isoformat() if isinstance(value, dt.date) else value


def _values(option: str, values: Values) -> Values:
    if callable(values):
        return values
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ConfigurationError.for_option(option, values, "must be an iterable or a function")
    listed = list(dict.fromkeys(values))
    if not listed:
        raise ConfigurationError.for_option(option, values, "must not be empty")
    return listed


def _resolve(option: str, values: Values, context: CheckContext) -> list[Any]:
    resolved = list(dict.fromkeys(values(context) if callable(values) else values))
    if not resolved:  # an empty expectation would pass whatever the data holds
        raise ValueError(f"{option} is empty: nothing to check the data against")
    return resolved


def _periods(periods: Values | None, period_param: str, context: CheckContext) -> list[Any]:
    if periods is not None:
        return _resolve("periods", periods, context)
    if period_param not in context.params:
        raise KeyError(f"the run has no {period_param!r} param (or pass periods=)")
    return [context.params[period_param]]


def _table(context: CheckContext, table: str, schema: str | None) -> str:
    """``table`` quoted, qualified with ``schema`` or the store's own schema."""
    if schema is None:
        store_schema = getattr(context.connection, "schema", None)
        schema = store_schema if isinstance(store_schema, str) else None
    quoted = quote_identifier(table, option="table")
    return quoted if schema is None else f"{quote_identifier(schema, option='schema')}.{quoted}"


_FILTER_TYPES = (str, int, float, Decimal, dt.date)


def _filters(where: Mapping[str, object] | None, *, taken: Iterable[str] = ()) -> dict[str, Any]:
    """``where=`` checked: column names validated, each value one scalar to bind.

    Only equalities, ``column = value`` joined by ``AND``: no SQL text is
    accepted, so a filter cannot inject anything. ``taken`` are columns the
    check compares itself (a filter on them would hide what it looks for).
    """
    if where is None:
        return {}
    if not isinstance(where, Mapping):
        raise ConfigurationError.for_option(
            "where", where, "must be a mapping of column names to values"
        )
    filters: dict[str, Any] = {}
    for column, value in where.items():
        if not isinstance(column, str):
            raise ConfigurationError.for_option("where", column, "column names must be str")
        validate_identifier(column, option="where")
        if column in taken:
            raise ConfigurationError.for_option(
                "where", column, "is a column the check compares itself: filter another column"
            )
        if value is None or isinstance(value, bool) or not isinstance(value, _FILTER_TYPES):
            raise ConfigurationError.for_option(
                "where",
                value,
                f"the value for {column!r} must be a str, number or date "
                "(None never equals anything in SQL)",
            )
        if isinstance(value, float) and math.isnan(value):  # NaN equals nothing
            raise ConfigurationError.for_option("where", value, f"{column!r} must not be NaN")
        filters[column] = value
    return filters


def _conditions(
    column: str | None, periods: list[Any] | None, filters: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """A ``WHERE`` clause: ``column`` within the periods' range and every filter, and its params."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if column is not None and periods is not None:
        bound = [_param(p) for p in periods]
        try:
            lo, hi = min(bound), max(bound)
        except TypeError:
            raise ValueError(f"periods of mixed types cannot be ordered: {periods!r}") from None
        quoted = quote_identifier(column)
        clauses.append(f"{quoted} >= :rp_lo AND {quoted} <= :rp_hi")
        params.update(rp_lo=lo, rp_hi=hi)
    for index, (name, value) in enumerate(filters.items()):
        # The parameter's name is ours (rp_w0, ...): a column name never reaches it.
        clauses.append(f"{quote_identifier(name)} = :rp_w{index}")
        params[f"rp_w{index}"] = _param(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _shown(pairs: Sequence[tuple[Any, Any]]) -> str:
    text = ", ".join(f"{k}/{_text(p)}" for k, p in pairs[:20])
    return text + (f" and {len(pairs) - 20} more" if len(pairs) > 20 else "")


def missing_keys(
    *,
    table: str,
    keys: Values,
    key: str = "client_id",
    period: str = "date",
    periods: Values | None = None,
    period_param: str = "day",
    schema: str | None = None,
    where: Mapping[str, object] | None = None,
    severity: Severity = "error",
    name: str | None = None,
) -> Check:
    """Every expected key has rows in ``table`` for every period: the data, not the ledger.

    Offending rows are the missing ``(key, period)`` pairs, period by period.
    ``keys`` and ``periods`` are values or functions of the run's context;
    without ``periods`` the run's ``params[period_param]`` is the one period.
    The query reads the distinct pairs between the first and last period.
    ``where`` reads only the rows whose columns equal these values
    (``{"platform": "meta_ads"}`` for one platform of a shared table): names
    are validated and quoted, values bound, never SQL text.

    Examples:
        >>> from resilient_pipeline import SQLiteStore, unit_of_work
        >>> store = SQLiteStore(":memory:")
        >>> with unit_of_work(store) as tx:
        ...     _ = tx.execute("CREATE TABLE kpi (client_id INT, date TEXT, spend REAL)")
        ...     _ = tx.execute("INSERT INTO kpi VALUES (1, '2026-11-28', 3.0)")
        >>> check = missing_keys(table="kpi", keys=[1, 2])
        >>> check.run(connection=store, params={"day": "2026-11-28"}).message
        'kpi: 1 of 2 expected (client_id, date) pair(s) have no rows: 2/2026-11-28'
        >>> store.close()
    """
    validate_identifier(table, option="table")
    validate_identifier(key, option="key")
    validate_identifier(period, option="period")
    if schema is not None:
        validate_identifier(schema, option="schema")
    non_empty_str().check("period_param", period_param)
    filters = _filters(where, taken=(key, period))
    expected_keys = _values("keys", keys)
    expected_periods = None if periods is None else _values("periods", periods)

    def body(context: CheckContext) -> CheckOutcome:
        wanted = _resolve("keys", expected_keys, context)
        spans = _periods(expected_periods, period_param, context)
        clause, params = _conditions(period, spans, filters)
        sql = (
            f"SELECT DISTINCT {quote_identifier(key)} AS k, {quote_identifier(period)} AS p "  # noqa: S608 -- quoted
            f"FROM {_table(context, table, schema)}{clause}"
        )
        present = {(_text(r["k"]), _text(r["p"])) for r in context.query(sql, params)}
        missing = [(k, p) for p in spans for k in wanted if (_text(k), _text(p)) not in present]
        total = len(wanted) * len(spans)
        return CheckOutcome(
            [{key: k, period: p} for k, p in missing],
            message=f"{table}: {len(missing)} of {total} expected ({key}, {period}) pair(s) "
            f"have no rows: {_shown(missing)}",
        )

    return Check(
        name=name or f"{table}_keys_present",
        severity=severity,
        body=body,
        action="These partitions stored no rows: re-collect them (backfill with restate), "
        "and compare with the ledger; see docs/runbooks/daily-collection-incomplete.md.",
    )


def unpaired_rows(
    *,
    left: str,
    right: str,
    on: Sequence[str] = ("client_id", "date"),
    left_value: str = "spend",
    right_value: str = "conversions",
    min_left: float = 0.0,
    period: str | None = "date",
    periods: Values | None = None,
    period_param: str = "day",
    schema: str | None = None,
    where: Mapping[str, object] | None = None,
    severity: Severity = "error",
    name: str | None = None,
) -> Check:
    """Two tables that must agree key by key: spend without conversion rows, and the reverse.

    Both tables are summed per ``on`` key. A key offends when its ``left_value``
    (spend) is above ``min_left`` and ``right`` has **no row** for it (a row with
    zero conversions counts: a genuine zero is an answer), or when its
    ``right_value`` (conversions) is above zero and ``left`` has no row for it or
    no spend. Offending rows hold the key, both sums (``None`` for a side with
    no row) and ``problem``. With ``period`` set, both tables are read for the
    run's periods only (``periods``, or ``params[period_param]``); ``period=None``
    reads the whole tables. ``where`` reads, in both tables, only the rows
    whose columns equal these values (``{"platform": "meta_ads"}``): names
    validated and quoted, values bound, never SQL text.

    Examples:
        >>> from resilient_pipeline import SQLiteStore, unit_of_work
        >>> store = SQLiteStore(":memory:")
        >>> with unit_of_work(store) as tx:
        ...     _ = tx.execute("CREATE TABLE campaigns (client_id INT, date TEXT, spend REAL)")
        ...     _ = tx.execute("CREATE TABLE conversions "
        ...                    "(client_id INT, date TEXT, conversions INT)")
        ...     _ = tx.execute("INSERT INTO campaigns VALUES "
        ...                    "(1, '2026-11-28', 9.5), (2, '2026-11-28', 4)")
        ...     _ = tx.execute("INSERT INTO conversions VALUES (2, '2026-11-28', 0)")  # a real zero
        >>> check = unpaired_rows(left="campaigns", right="conversions")
        >>> [(r["client_id"], r["spend"], r["conversions"], r["problem"])
        ...  for r in check.run(connection=store, params={"day": "2026-11-28"}).offending]
        [(1, 9.5, None, 'spend without a conversions row')]
        >>> store.close()
    """
    validate_identifier(left, option="left")
    validate_identifier(right, option="right")
    columns = (on,) if isinstance(on, str) else tuple(on)
    if not columns:
        raise ConfigurationError.for_option("on", on, "must name at least one column")
    for column in columns:
        validate_identifier(column, option="on")
    validate_identifier(left_value, option="left_value")
    validate_identifier(right_value, option="right_value")
    clash = {left_value, right_value, "problem"} & set(columns)
    if left_value == right_value or clash:
        raise ConfigurationError.for_option(
            "right_value", right_value, "the value columns, 'problem' and on= must all differ"
        )
    number(finite=True).check("min_left", min_left)
    if period is not None:
        validate_identifier(period, option="period")
    if schema is not None:
        validate_identifier(schema, option="schema")
    non_empty_str().check("period_param", period_param)
    compared = (*columns, left_value, right_value, *(() if period is None else (period,)))
    filters = _filters(where, taken=compared)
    expected_periods = None if periods is None else _values("periods", periods)
    keys = ", ".join(quote_identifier(c) for c in columns)
    lv, rv = quote_identifier(left_value), quote_identifier(right_value)
    joined = " AND ".join(f"r.{quote_identifier(c)} = l.{quote_identifier(c)}" for c in columns)
    l_keys = ", ".join(f"l.{quote_identifier(c)}" for c in columns)
    r_keys = ", ".join(f"r.{quote_identifier(c)}" for c in columns)

    def body(context: CheckContext) -> CheckOutcome:
        spans = None if period is None else _periods(expected_periods, period_param, context)
        where, params = _conditions(period, spans, filters)
        left_table, right_table = _table(context, left, schema), _table(context, right, schema)

        sql = (
            f"WITH l AS (SELECT {keys}, SUM({lv}) AS v FROM {left_table}{where} "  # noqa: S608
            f"GROUP BY {keys}), "
            f"r AS (SELECT {keys}, SUM({rv}) AS v FROM {right_table}{where} GROUP BY {keys}) "
            f"SELECT {l_keys}, l.v AS {lv}, NULL AS {rv}, CAST(:rp_left AS TEXT) AS problem "
            f"FROM l WHERE l.v > :rp_min AND NOT EXISTS (SELECT 1 FROM r WHERE {joined}) "
            f"UNION ALL "
            f"SELECT {r_keys}, l.v AS {lv}, r.v AS {rv}, CAST(:rp_right AS TEXT) AS problem "
            f"FROM r LEFT JOIN l ON {joined} WHERE r.v > 0 AND COALESCE(l.v, 0) <= 0 "
            f"ORDER BY {keys}, problem"
        )
        params = {
            **params,
            "rp_min": min_left,
            "rp_left": f"{left_value} without a {right} row",
            "rp_right": f"{right_value} without {left_value}",
        }
        found = context.query(sql, params)
        # A Decimal sum from PostgreSQL stays exact; keys keep the table's types.
        return CheckOutcome(found)

    return Check(
        name=name or f"{left}_{right}_paired",
        severity=severity,
        body=body,
        message=f"{{count}} key(s) where {left} and {right} do not pair "
        f"({left_value} without a {right} row, or {right_value} without {left_value})",
        action=f"Re-collect these partitions as one unit ({left} and {right} together); "
        "a real zero must be stored as a row with zeros.",
    )
