"""The collector's tables: one partition replaced exactly, months aggregated idempotently.

Three tables hold the data, next to the library's ledger (``rp_partitions``):

* ``campaign_daily``: one row per (platform, client, day, campaign), campaign
  metrics and conversions merged;
* ``daily_kpi_data``: one row per (client, day, platform), the totals the
  dashboards read, ``UNIQUE (client_id, date, platform)`` as in the post-mortem;
* ``campaign_summaries``: one row per (platform, client, month, campaign).

:func:`write_unit` writes one partition (platform x client x day) in the
caller's unit of work, so the data and the ledger row that says "succeeded"
commit together. It replaces the partition exactly: a campaign that upstream no
longer reports for that day is deleted. Every change also bumps the month's
version in ``kpi_aggregations``; :func:`aggregate_months` recomputes the months
whose version moved since they were last aggregated, so a re-run writes nothing.

Money is integer micros everywhere (``spend_micros``); dates are ISO text
(``YYYY-MM-DD``) and months ``YYYY-MM`` on SQLite and PostgreSQL alike.

Examples:
    >>> import datetime as dt
    >>> from resilient_pipeline import Partition, SQLiteStore, unit_of_work
    >>> store = SQLiteStore(":memory:")
    >>> ensure_schema(store)
    >>> day = dt.date(2026, 11, 28)
    >>> unit = {"campaigns": [{"platform": "meta_ads", "client_id": 7, "date": day,
    ...     "campaign_id": "c1", "campaign_name": "Winter", "impressions": 100, "clicks": 9,
    ...     "spend_micros": 12_340_000}], "conversions": []}
    >>> with unit_of_work(store) as tx:
    ...     write_unit(tx, Partition("meta_ads", 7, day), unit)
    WriteResult(inserted=2, updated=0, unchanged=0, deleted=0)
    >>> aggregate_months(store).inserted, aggregate_months(store).written
    (1, 0)
    >>> [(t.month, t.spend_micros) for t in monthly_totals(store)]
    [('2026-11', 12340000)]
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from resilient_pipeline import Partition, unit_of_work
from resilient_pipeline.exceptions import ConfigurationError, InvalidBatchError, RowProblem
from resilient_pipeline.storage import Store, Transaction, UpsertResult

__all__ = [
    "CAMPAIGN_DAILY",
    "CAMPAIGN_SUMMARIES",
    "DAILY_KPI",
    "METRICS",
    "AggregateResult",
    "CampaignDay",
    "DailyKpi",
    "MonthlyTotal",
    "WriteResult",
    "aggregate_months",
    "campaign_days",
    "daily_totals",
    "ensure_schema",
    "month_of",
    "monthly_totals",
    "stale_months",
    "write_unit",
]

CAMPAIGN_DAILY = "campaign_daily"
DAILY_KPI = "daily_kpi_data"
CAMPAIGN_SUMMARIES = "campaign_summaries"
AGGREGATIONS = "kpi_aggregations"

CAMPAIGN_METRICS = ("impressions", "clicks", "spend_micros")
CONVERSION_METRICS = ("calls", "emails", "reservations")
METRICS = CAMPAIGN_METRICS + CONVERSION_METRICS
"""The summed metrics, in the order every table and result lists them."""

_CAMPAIGN_KEY = ("platform", "client_id", "date", "campaign_id")
_DAILY_KEY = ("client_id", "date", "platform")
_SUMMARY_KEY = ("platform", "client_id", "month", "campaign_id")
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")

# {int} is a 64-bit integer on both databases (SQLite's INTEGER already is one).
_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {{{CAMPAIGN_DAILY}}} (
        platform TEXT NOT NULL, client_id {{int}} NOT NULL, date TEXT NOT NULL,
        campaign_id TEXT NOT NULL, campaign_name TEXT NOT NULL,
        impressions {{int}} NOT NULL, clicks {{int}} NOT NULL, spend_micros {{int}} NOT NULL,
        calls {{int}} NOT NULL, emails {{int}} NOT NULL, reservations {{int}} NOT NULL,
        UNIQUE (platform, client_id, date, campaign_id))""",
    f"""CREATE TABLE IF NOT EXISTS {{{DAILY_KPI}}} (
        client_id {{int}} NOT NULL, date TEXT NOT NULL, platform TEXT NOT NULL,
        campaigns {{int}} NOT NULL, impressions {{int}} NOT NULL, clicks {{int}} NOT NULL,
        spend_micros {{int}} NOT NULL, calls {{int}} NOT NULL, emails {{int}} NOT NULL,
        reservations {{int}} NOT NULL, conversions {{int}} NOT NULL,
        UNIQUE (client_id, date, platform))""",
    f"""CREATE TABLE IF NOT EXISTS {{{CAMPAIGN_SUMMARIES}}} (
        platform TEXT NOT NULL, client_id {{int}} NOT NULL, month TEXT NOT NULL,
        campaign_id TEXT NOT NULL, days {{int}} NOT NULL,
        impressions {{int}} NOT NULL, clicks {{int}} NOT NULL, spend_micros {{int}} NOT NULL,
        calls {{int}} NOT NULL, emails {{int}} NOT NULL, reservations {{int}} NOT NULL,
        UNIQUE (platform, client_id, month, campaign_id))""",
    # version: bumped by every write that changed a partition of the month;
    # aggregated: the version the summaries were last computed from.
    f"""CREATE TABLE IF NOT EXISTS {{{AGGREGATIONS}}} (
        platform TEXT NOT NULL, client_id {{int}} NOT NULL, month TEXT NOT NULL,
        version {{int}} NOT NULL, aggregated {{int}} NOT NULL DEFAULT 0,
        PRIMARY KEY (platform, client_id, month))""",
)
_INT = {"sqlite": "INTEGER", "postgres": "bigint"}


def ensure_schema(store: Store) -> None:
    """Create the collector's tables if they do not exist (idempotent, both databases).

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> ensure_schema(store); ensure_schema(store)
    """
    with unit_of_work(store, name="kpi.ensure_schema") as tx:
        tables = {name: tx.table(name) for name in _TABLES}
        for ddl in _DDL:
            tx.execute(ddl.format(int=_INT[tx.dialect], **tables))


_TABLES = (CAMPAIGN_DAILY, DAILY_KPI, CAMPAIGN_SUMMARIES, AGGREGATIONS)


def month_of(day: str | dt.date) -> str:
    """The ``YYYY-MM`` month of an ISO day or a date.

    Examples:
        >>> month_of("2026-11-28"), month_of(dt.date(2026, 1, 2))
        ('2026-11', '2026-01')
    """
    return (day.isoformat() if isinstance(day, dt.date) else str(day))[:7]


# ------------------------------------------------------------------ writing
@attrs.frozen
class WriteResult:
    """What :func:`write_unit` did to one partition, over ``campaign_daily`` and ``daily_kpi_data``.

    Attributes:
        inserted: Rows that were new.
        updated: Rows rewritten with different values (a restatement).
        unchanged: Rows identical to what was stored (not rewritten).
        deleted: Campaign rows upstream no longer reports for that day.

    Examples:
        >>> WriteResult(inserted=0, updated=1, unchanged=3, deleted=1).changed
        True
    """

    inserted: int
    updated: int
    unchanged: int
    deleted: int

    @property
    def changed(self) -> bool:
        """Whether anything was written (so the month must be aggregated again)."""
        return bool(self.inserted or self.updated or self.deleted)


def _partition_values(partition: Partition) -> tuple[str, int, str]:
    key = partition.key
    if not key.isascii() or not key.isdigit():
        raise ConfigurationError.for_option(
            "partition", str(partition), "key must be a client id (digits)"
        )
    try:
        day = dt.date.fromisoformat(partition.period)
    except ValueError:
        raise ConfigurationError.for_option(
            "partition", str(partition), "period must be an ISO day (YYYY-MM-DD)"
        ) from None
    return partition.source, int(key), day.isoformat()


def _day_text(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value  # a datetime is not a day: reported as a mismatch below
    return value.isoformat() if isinstance(value, dt.date) else value


def _check_row(
    problems: list[RowProblem],
    index: int,
    row: Mapping[str, Any],
    expected: Mapping[str, object],
    metrics: Sequence[str],
) -> None:
    for column, want in expected.items():
        got = _day_text(row.get(column)) if column == "date" else row.get(column)
        if type(got) is not type(want) or got != want:
            problems.append(RowProblem(index, column, f"{got!r} is not the partition's {want!r}"))
    for column in metrics:
        value = row.get(column)
        if type(value) is not int or value < 0:
            problems.append(RowProblem(index, column, f"expected an int >= 0, got {value!r}"))
    campaign = row.get("campaign_id")
    if not isinstance(campaign, str) or not campaign:
        problems.append(RowProblem(index, "campaign_id", f"expected a non-empty str: {campaign!r}"))


def _merge(
    partition: Partition, unit: Mapping[str, Sequence[Mapping[str, Any]]]
) -> list[dict[str, Any]]:
    """The campaign_daily rows of a unit, or InvalidBatchError naming every bad row."""
    platform, client_id, day = _partition_values(partition)
    expected = {"platform": platform, "client_id": client_id, "date": day}
    unknown = sorted(set(unit) - {"campaigns", "conversions"})
    if unknown:
        raise ConfigurationError.for_option("unit", unknown, "unknown collections")
    campaigns, conversions = unit.get("campaigns", ()), unit.get("conversions", ())
    problems: list[RowProblem] = []
    rows: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(campaigns):
        _check_row(problems, i, row, expected, CAMPAIGN_METRICS)
        name = row.get("campaign_name")
        if not isinstance(name, str):
            problems.append(RowProblem(i, "campaign_name", f"expected a str, got {name!r}"))
        cid = row.get("campaign_id")
        if isinstance(cid, str) and cid in rows:
            problems.append(RowProblem(i, "campaign_id", f"campaign {cid!r} twice in the unit"))
        rows[str(cid)] = {
            **expected,
            "campaign_id": cid,
            "campaign_name": name,
            **{m: row.get(m) for m in CAMPAIGN_METRICS},
            **dict.fromkeys(CONVERSION_METRICS, 0),
        }
    if problems:
        raise InvalidBatchError(
            table=f"{CAMPAIGN_DAILY} (campaigns of {partition})", problems=problems
        )
    seen: set[str] = set()
    for i, row in enumerate(conversions):
        _check_row(problems, i, row, expected, CONVERSION_METRICS)
        cid = row.get("campaign_id")
        if not isinstance(cid, str):
            continue
        if cid in seen:
            problems.append(RowProblem(i, "campaign_id", f"conversions of {cid!r} twice"))
        seen.add(cid)
        target = rows.get(cid)
        if target is not None:
            target.update({m: row.get(m) for m in CONVERSION_METRICS})
        elif any(row.get(m) for m in CONVERSION_METRICS):
            # Conversions need a campaign row to live in; never drop them silently.
            problems.append(
                RowProblem(i, "campaign_id", f"conversions of unknown campaign {cid!r}")
            )
    if problems:
        raise InvalidBatchError(
            table=f"{CAMPAIGN_DAILY} (conversions of {partition})", problems=problems
        )
    return list(rows.values())


def _daily_row(
    platform: str, client_id: int, day: str, rows: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    totals = {m: sum(int(r[m]) for r in rows) for m in METRICS}
    conversions = sum(totals[m] for m in CONVERSION_METRICS)
    return {
        "client_id": client_id,
        "date": day,
        "platform": platform,
        "campaigns": len(rows),
        **totals,
        "conversions": conversions,
    }


def write_unit(
    tx: Transaction, partition: Partition, unit: Mapping[str, Sequence[Mapping[str, Any]]]
) -> WriteResult:
    """Replace one partition's data exactly, in the caller's unit of work.

    Campaign rows and their conversions (merged by ``campaign_id``; a campaign
    without conversions gets zeros) are upserted into ``campaign_daily``, the
    day's totals into ``daily_kpi_data``, and campaign rows of that partition
    that the unit no longer has are deleted. Conversions of a campaign the
    unit does not list are refused unless they are all zero (then they carry
    nothing to store).

    Args:
        tx: The open transaction (commit it together with the ledger's ``succeed``).
        partition: ``Partition(platform, client_id, "YYYY-MM-DD")``.
        unit: ``{"campaigns": [...], "conversions": [...]}`` as the fetchers return it.

    Raises:
        InvalidBatchError: A row of another partition, a negative or non-int
            metric, an empty campaign id, a campaign twice; nothing is written.
        ConfigurationError: The partition's key is not a client id or its
            period not a day.

    Examples:
        >>> import datetime as dt
        >>> from resilient_pipeline import Partition, SQLiteStore, unit_of_work
        >>> store = SQLiteStore(":memory:")
        >>> ensure_schema(store)
        >>> p = Partition("google_ads", 3, "2026-11-02")
        >>> row = {"platform": "google_ads", "client_id": 3, "date": dt.date(2026, 11, 2),
        ...        "campaign_id": "9", "campaign_name": "Brand", "impressions": 10,
        ...        "clicks": 1, "spend_micros": 500_000}
        >>> with unit_of_work(store) as tx:
        ...     write_unit(tx, p, {"campaigns": [row], "conversions": []})
        WriteResult(inserted=2, updated=0, unchanged=0, deleted=0)
        >>> with unit_of_work(store) as tx:  # the campaign vanished upstream
        ...     write_unit(tx, p, {"campaigns": [], "conversions": []})
        WriteResult(inserted=0, updated=1, unchanged=0, deleted=1)
    """
    rows = _merge(partition, unit)
    platform, client_id, day = _partition_values(partition)
    daily_table = tx.table(CAMPAIGN_DAILY)
    ph = tx.placeholder
    where = f"platform = {ph} AND client_id = {ph} AND date = {ph}"
    with tx.step(f"write {partition}"):
        stored = tx.fetchall(
            f"SELECT campaign_id FROM {daily_table} WHERE {where}",  # noqa: S608 -- quoted
            (platform, client_id, day),
        )
        keep = {r["campaign_id"] for r in rows}
        gone = sorted(cid for (cid,) in stored if cid not in keep)
        if gone:
            tx.executemany(
                f"DELETE FROM {daily_table} WHERE {where} AND campaign_id = {ph}",  # noqa: S608
                [(platform, client_id, day, cid) for cid in gone],
            )
        campaigns = (
            tx.upsert(CAMPAIGN_DAILY, rows, key=_CAMPAIGN_KEY)
            if rows
            else UpsertResult(inserted=0, updated=0, unchanged=0)
        )
        daily = tx.upsert(DAILY_KPI, [_daily_row(platform, client_id, day, rows)], key=_DAILY_KEY)
        result = WriteResult(
            inserted=campaigns.inserted + daily.inserted,
            updated=campaigns.updated + daily.updated,
            unchanged=campaigns.unchanged + daily.unchanged,
            deleted=len(gone),
        )
        if result.changed:
            _bump(tx, platform, client_id, month_of(day))
    return result


def _bump(tx: Transaction, platform: str, client_id: int, month: str) -> None:
    ph = tx.placeholder
    table = tx.table(AGGREGATIONS)
    tx.execute(
        f"INSERT INTO {table} (platform, client_id, month, version) "  # noqa: S608 -- quoted
        f"VALUES ({ph}, {ph}, {ph}, 1) ON CONFLICT (platform, client_id, month) "
        f"DO UPDATE SET version = {table}.version + 1",
        (platform, client_id, month),
    )


# -------------------------------------------------------------- aggregating
@attrs.frozen
class AggregateResult:
    """What :func:`aggregate_months` did to ``campaign_summaries``.

    Attributes:
        months: The ``(platform, month)`` pairs recomputed.
        inserted: Summary rows that were new.
        updated: Summary rows whose sums changed.
        unchanged: Summary rows already right (not rewritten).
        deleted: Summary rows of campaigns with no day left in their month.

    Examples:
        >>> AggregateResult(months=(), inserted=0, updated=0, unchanged=4, deleted=0).written
        0
    """

    months: tuple[tuple[str, str], ...]
    inserted: int
    updated: int
    unchanged: int
    deleted: int

    @property
    def written(self) -> int:
        """Rows inserted, updated or deleted: 0 when the summaries were already right."""
        return self.inserted + self.updated + self.deleted


def _month_list(months: Iterable[str | dt.date] | None) -> list[str] | None:
    if months is None:
        return None
    if isinstance(months, (str, dt.date)):
        raise ConfigurationError.for_option("months", months, "must be a collection of months")
    out: set[str] = set()
    for month in months:
        text: object = month.isoformat()[:7] if isinstance(month, dt.date) else month
        if not isinstance(text, str) or not _MONTH.fullmatch(text):
            raise ConfigurationError.for_option("months", month, "each must be 'YYYY-MM' or a date")
        out.add(text)
    return sorted(out)


def _targets(
    tx: Transaction, platform: str | None, months: list[str] | None
) -> list[tuple[str, str]]:
    """The (platform, month) pairs to recompute: the changed ones, or the months asked for."""
    ph = tx.placeholder
    if months is None:
        sql = f"SELECT DISTINCT platform, month FROM {tx.table(AGGREGATIONS)} WHERE version > aggregated"  # noqa: S608,E501
        params: list[object] = []
        if platform is not None:
            sql += f" AND platform = {ph}"
            params.append(platform)
        return sorted((str(p), str(m)) for p, m in tx.fetchall(sql, params))
    pairs: set[tuple[str, str]] = set()
    for month in months:
        for table, column in ((CAMPAIGN_DAILY, "date"), (CAMPAIGN_SUMMARIES, "month")):
            sql = (
                f"SELECT DISTINCT platform FROM {tx.table(table)} "  # noqa: S608 -- quoted
                f"WHERE {column} >= {ph} AND {column} <= {ph}"
            )
            params = [month, f"{month}-99" if column == "date" else month]
            if platform is not None:
                sql += f" AND platform = {ph}"
                params.append(platform)
            pairs.update((p, month) for (p,) in tx.fetchall(sql, params))
    return sorted(pairs)


def _recompute(tx: Transaction, platform: str, month: str) -> tuple[UpsertResult, int]:
    ph = tx.placeholder
    marks_table = tx.table(AGGREGATIONS)
    # Versions first, data second: a write committed in between is in the data
    # we read, or its version stays ahead of what we record and the month is
    # recomputed next time. Never the other way round.
    marks = tx.fetchall(
        f"SELECT client_id, version FROM {marks_table} WHERE platform = {ph} AND month = {ph}",  # noqa: S608
        (platform, month),
    )
    sums = ", ".join(f"CAST(SUM({m}) AS BIGINT)" for m in METRICS)
    computed = tx.fetchall(
        f"SELECT client_id, campaign_id, COUNT(*), {sums} FROM {tx.table(CAMPAIGN_DAILY)} "  # noqa: S608
        f"WHERE platform = {ph} AND date >= {ph} AND date <= {ph} "
        "GROUP BY client_id, campaign_id ORDER BY client_id, campaign_id",
        (platform, f"{month}-01", f"{month}-99"),
    )
    rows = [
        {
            "platform": platform,
            "client_id": int(client_id),
            "month": month,
            "campaign_id": campaign_id,
            "days": int(days),
            **{m: int(v) for m, v in zip(METRICS, values, strict=True)},
        }
        for client_id, campaign_id, days, *values in computed
    ]
    summaries = tx.table(CAMPAIGN_SUMMARIES)
    stored = tx.fetchall(
        f"SELECT client_id, campaign_id FROM {summaries} WHERE platform = {ph} AND month = {ph}",  # noqa: S608
        (platform, month),
    )
    keep = {(r["client_id"], r["campaign_id"]) for r in rows}
    gone = sorted((int(c), k) for c, k in stored if (int(c), k) not in keep)
    if gone:
        tx.executemany(
            f"DELETE FROM {summaries} WHERE platform = {ph} AND month = {ph} "  # noqa: S608
            f"AND client_id = {ph} AND campaign_id = {ph}",
            [(platform, month, c, k) for c, k in gone],
        )
    upserted = (
        tx.upsert(CAMPAIGN_SUMMARIES, rows, key=_SUMMARY_KEY)
        if rows
        else UpsertResult(inserted=0, updated=0, unchanged=0)
    )
    if marks:
        tx.executemany(
            f"UPDATE {marks_table} SET aggregated = {ph} "  # noqa: S608 -- quoted
            f"WHERE platform = {ph} AND client_id = {ph} AND month = {ph} AND aggregated < {ph}",
            [(version, platform, client_id, month, version) for client_id, version in marks],
        )
    return upserted, len(gone)


def aggregate_months(
    store: Store,
    *,
    platform: str | None = None,
    months: Iterable[str | dt.date] | None = None,
) -> AggregateResult:
    """Recompute ``campaign_summaries`` from ``campaign_daily``, idempotently.

    Without ``months``, only the months with a partition written (changed)
    since they were last aggregated are recomputed; a second run finds none
    and writes nothing. With ``months``, those months are recomputed (for
    every platform that has data in them, or ``platform``). Each (platform,
    month) is one unit of work: sums upserted, campaigns with no day left
    deleted.

    Args:
        store: The collector's database.
        platform: Only this platform.
        months: ``"YYYY-MM"`` strings or dates (their month).

    Raises:
        ConfigurationError: ``months`` holds something that is not a month.

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> ensure_schema(store)
        >>> aggregate_months(store, months=["2026-11"])
        AggregateResult(months=(), inserted=0, updated=0, unchanged=0, deleted=0)
    """
    wanted = _month_list(months)
    given: object = platform
    if given is not None and (not isinstance(given, str) or not given):
        raise ConfigurationError.for_option("platform", platform, "must be a non-empty str")
    with unit_of_work(store, name="kpi.aggregate.plan") as tx:
        targets = _targets(tx, platform, wanted)
    inserted = updated = unchanged = deleted = 0
    for source, month in targets:
        with unit_of_work(store, name=f"kpi.aggregate {source} {month}") as tx:
            upserted, gone = _recompute(tx, source, month)
        inserted += upserted.inserted
        updated += upserted.updated
        unchanged += upserted.unchanged
        deleted += gone
    return AggregateResult(
        months=tuple(targets),
        inserted=inserted,
        updated=updated,
        unchanged=unchanged,
        deleted=deleted,
    )


# ------------------------------------------------------------------ reading
@attrs.frozen
class CampaignDay:
    """One ``campaign_daily`` row.

    Examples:
        >>> CampaignDay("meta_ads", 1, "2026-11-01", "c", "n", 1, 0, 0, 0, 0, 0).conversions
        0
    """

    platform: str
    client_id: int
    date: str
    campaign_id: str
    campaign_name: str
    impressions: int
    clicks: int
    spend_micros: int
    calls: int
    emails: int
    reservations: int

    @property
    def conversions(self) -> int:
        """``calls + emails + reservations``."""
        return self.calls + self.emails + self.reservations


@attrs.frozen
class DailyKpi:
    """One ``daily_kpi_data`` row: a client's day on one platform.

    Examples:
        >>> DailyKpi(1, "2026-11-01", "meta_ads", 2, 10, 1, 5, 1, 0, 0, 1).month
        '2026-11'
    """

    client_id: int
    date: str
    platform: str
    campaigns: int
    impressions: int
    clicks: int
    spend_micros: int
    calls: int
    emails: int
    reservations: int
    conversions: int

    @property
    def month(self) -> str:
        """``YYYY-MM``."""
        return self.date[:7]


@attrs.frozen
class MonthlyTotal:
    """A client's month on one platform, summed over ``campaign_summaries``.

    Attributes:
        campaigns: Campaigns with at least one day in the month.
        days: Campaign-days summed (not calendar days).

    Examples:
        >>> MonthlyTotal("meta_ads", 1, "2026-11", 2, 30, 10, 1, 5, 1, 1, 1).conversions
        3
    """

    platform: str
    client_id: int
    month: str
    campaigns: int
    days: int
    impressions: int
    clicks: int
    spend_micros: int
    calls: int
    emails: int
    reservations: int

    @property
    def conversions(self) -> int:
        """``calls + emails + reservations``."""
        return self.calls + self.emails + self.reservations


def _filters(
    tx: Transaction, conditions: Sequence[tuple[str, str, object]]
) -> tuple[str, list[object]]:
    parts, params = [], []
    for column, op, value in conditions:
        if value is not None:
            parts.append(f"{tx.quote(column)} {op} {tx.placeholder}")
            params.append(value)
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


def _day(value: str | dt.date | None) -> str | None:
    return value.isoformat() if isinstance(value, dt.date) else value


def campaign_days(
    store: Store,
    *,
    platform: str | None = None,
    client_id: int | None = None,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
) -> list[CampaignDay]:
    """``campaign_daily`` rows, by platform, client, date and campaign.

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> ensure_schema(store)
        >>> campaign_days(store, platform="meta_ads")
        []
    """
    columns = [f.name for f in attrs.fields(CampaignDay)]
    with unit_of_work(store, name="kpi.campaign_days") as tx:
        where, params = _filters(
            tx,
            [
                ("platform", "=", platform),
                ("client_id", "=", client_id),
                ("date", ">=", _day(start)),
                ("date", "<=", _day(end)),
            ],
        )
        rows = tx.fetchall(
            f"SELECT {', '.join(columns)} FROM {tx.table(CAMPAIGN_DAILY)}{where} "  # noqa: S608
            "ORDER BY platform, client_id, date, campaign_id",
            params,
        )
    return [CampaignDay(*row) for row in rows]


def daily_totals(
    store: Store,
    *,
    platform: str | None = None,
    start: str | dt.date | None = None,
    end: str | dt.date | None = None,
) -> list[DailyKpi]:
    """``daily_kpi_data`` rows in [start, end], by platform, client and date.

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> ensure_schema(store)
        >>> daily_totals(store, start="2026-11-01")
        []
    """
    columns = [f.name for f in attrs.fields(DailyKpi)]
    with unit_of_work(store, name="kpi.daily_totals") as tx:
        where, params = _filters(
            tx,
            [("platform", "=", platform), ("date", ">=", _day(start)), ("date", "<=", _day(end))],
        )
        rows = tx.fetchall(
            f"SELECT {', '.join(columns)} FROM {tx.table(DAILY_KPI)}{where} "  # noqa: S608
            "ORDER BY platform, client_id, date",
            params,
        )
    return [DailyKpi(*row) for row in rows]


def monthly_totals(
    store: Store, *, platform: str | None = None, month: str | None = None
) -> list[MonthlyTotal]:
    """Per platform, client and month: the sums of ``campaign_summaries``.

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> ensure_schema(store)
        >>> monthly_totals(store, month="2026-11")
        []
    """
    sums = ", ".join(f"CAST(SUM({c}) AS BIGINT)" for c in ("days", *METRICS))
    with unit_of_work(store, name="kpi.monthly_totals") as tx:
        where, params = _filters(tx, [("platform", "=", platform), ("month", "=", month)])
        rows = tx.fetchall(
            f"SELECT platform, client_id, month, COUNT(*), {sums} "  # noqa: S608 -- quoted
            f"FROM {tx.table(CAMPAIGN_SUMMARIES)}{where} "
            "GROUP BY platform, client_id, month ORDER BY platform, client_id, month",
            params,
        )
    return [
        MonthlyTotal(platform, int(client), month, *(int(v) for v in values))
        for platform, client, month, *values in rows
    ]


def stale_months(store: Store) -> list[tuple[str, str]]:
    """``(platform, month)`` pairs whose partitions changed since they were last aggregated.

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> ensure_schema(store)
        >>> stale_months(store)
        []
    """
    with unit_of_work(store, name="kpi.stale_months") as tx:
        rows = tx.fetchall(
            f"SELECT DISTINCT platform, month FROM {tx.table(AGGREGATIONS)} "  # noqa: S608
            "WHERE version > aggregated ORDER BY platform, month"
        )
    return [(str(p), str(m)) for p, m in rows]
