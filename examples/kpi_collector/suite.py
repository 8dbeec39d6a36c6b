"""The collector's tables and the checks that read them.

:func:`prepare` creates every table (data, ledger, quarantine) and one view
per platform over the data tables (for ad-hoc SQL and ``daily_checks``); the
run's own data checks read the shared tables with ``where={"platform": ...}``.
:func:`build_checks` is every check of a run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from resilient_pipeline import PartitionLedger, SQLiteStore, SQLQuarantine, checks, unit_of_work
from resilient_pipeline.checks import Check, CheckContext, CheckOutcome, CheckSuite
from resilient_pipeline.exceptions import ConfigurationError, StoreError
from resilient_pipeline.observability import redact
from resilient_pipeline.storage import PostgresStore, Store, Transaction
from resilient_pipeline.validation import unit_of_record

from . import repository
from .platforms import PLATFORMS
from .settings import Settings

__all__ = ["build_checks", "months_of", "open_store", "prepare", "shown_db", "views_of"]


# ---------------------------------------------------------------- the store
def open_store(db: str, *, workers: int = 8) -> Store:
    """A PostgreSQL store for a ``postgresql://`` DSN, else a SQLite file (created if missing).

    Example:
        >>> store = open_store(":memory:")
        >>> type(store).__name__
        'SQLiteStore'
        >>> store.close()
    """
    if db.startswith(("postgresql://", "postgres://")) or "dbname=" in db:
        return PostgresStore(db, max_connections=max(4, workers + 2))
    return SQLiteStore(db)


def shown_db(db: str) -> str:
    """``db`` as it may be shown: a DSN's password masked."""
    return redact(db)


def _create_view(tx: Transaction, name: str, table: str, platform: str) -> None:
    """A view of ``table`` holding one platform's rows (the data checks read one platform).

    The platform is one of :data:`PLATFORMS`' fixed names, checked here: a view's
    definition cannot take a bound parameter.
    """
    if platform not in PLATFORMS or not platform.replace("_", "").isalnum():
        raise ConfigurationError.for_option("platform", platform, "unknown platform")
    view, source = tx.table(name), tx.table(table)
    sql = f"SELECT * FROM {source} WHERE platform = '{platform}'"  # noqa: S608 -- checked above
    if tx.dialect == "sqlite":
        tx.execute(f"CREATE VIEW IF NOT EXISTS {view} AS {sql}")
        return
    exists = tx.fetchone("SELECT to_regclass(%s)", (view,))
    if exists is None or exists[0] is None:
        tx.execute(f"CREATE VIEW {view} AS {sql}")


def views_of(platform: str) -> tuple[str, str]:
    """The names of ``platform``'s views: its daily rows, its campaign rows."""
    return f"kpi_{platform}_daily", f"kpi_{platform}_campaigns"


def prepare(store: Store, platforms: Sequence[str]) -> None:
    """Create the data tables, the ledger, the quarantine table and the per-platform views.

    Idempotent, and safe when several workers start at once on one PostgreSQL
    database: two ``CREATE ... IF NOT EXISTS`` racing make one of them fail;
    the loser tries again and finds everything there.
    """
    for attempt in range(3):
        try:
            repository.ensure_schema(store)
            PartitionLedger(store).ensure_schema()
            SQLQuarantine(store).records(source="-")  # creates the table on first use
            with unit_of_work(store, name="kpi views") as tx:
                for platform in platforms:
                    daily, campaigns = views_of(platform)
                    _create_view(tx, daily, "daily_kpi_data", platform)
                    _create_view(tx, campaigns, "campaign_daily", platform)
        except StoreError:
            if attempt == 2:
                raise
            continue
        return


def months_of(start: dt.date, end: dt.date) -> list[str]:
    """``YYYY-MM`` of every month from ``start`` to ``end``.

    Example:
        >>> months_of(dt.date(2026, 10, 31), dt.date(2026, 12, 1))
        ['2026-10', '2026-11', '2026-12']
    """
    months, day = [], start.replace(day=1)
    while day <= end:
        months.append(day.strftime("%Y-%m"))
        day = (day + dt.timedelta(days=32)).replace(day=1)
    return months


# ---------------------------------------------------------------- checks
def build_checks(
    store: Store,
    settings: Settings,
    *,
    extra: Sequence[Check] = (),
) -> CheckSuite:
    """Every check of a run, for every platform of ``settings``.

    Per platform: the ledger says every partition succeeded; the data agrees
    (every client has a daily row each day, spend and conversions pair up
    between the campaign rows and the daily rows); rows are plausible
    (clicks <= impressions, conversions per click within bounds); the daily rows
    sum to the monthly summaries; nothing waits in quarantine.
    """
    ledger = PartitionLedger(store)
    days = [settings.start + dt.timedelta(days=n) for n in range(settings.days)]
    months = months_of(settings.start, settings.end)
    first = dt.date.fromisoformat(months[0] + "-01")
    after = (settings.end.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    with unit_of_work(store, name="kpi check tables") as tx:
        summaries = tx.table("campaign_summaries")
        daily_q = tx.table("daily_kpi_data")
    suite: list[Check] = []
    datasets: dict[str, Any] = {}
    for platform in settings.platforms:
        one = {"platform": platform}  # both platforms share the data tables
        datasets[f"{platform}_days"] = checks.query_dataset(
            # identifiers from the store's quoting helper; values bound
            f"SELECT client_id, date, platform, impressions, clicks, spend_micros, conversions "  # noqa: S608
            f"FROM {daily_q} WHERE platform = :platform AND date >= :lo AND date < :hi",
            {"platform": platform, "lo": first.isoformat(), "hi": after.isoformat()},
        )
        datasets[f"{platform}_months"] = checks.query_dataset(
            # PostgreSQL's SUMs are numerics (Decimals): sums_agree compares them exactly.
            f"SELECT client_id, month, SUM(spend_micros) AS spend_micros, "  # noqa: S608
            f"SUM(clicks) AS clicks, SUM(calls + emails + reservations) AS conversions "
            f"FROM {summaries} WHERE platform = :platform AND month >= :m0 AND month <= :m1 "
            f"GROUP BY client_id, month",
            {"platform": platform, "m0": months[0], "m1": months[-1]},
        )
        suite += [
            ledger.completeness_check(
                platform, settings.keys, start=settings.start, end=settings.end
            ),
            checks.missing_keys(
                table="daily_kpi_data",
                keys=settings.clients,
                periods=days,
                where=one,
                name=f"{platform}_daily_rows",
            ),
            checks.unpaired_rows(
                left="campaign_daily",
                right="daily_kpi_data",
                where=one,
                left_value="spend_micros",
                right_value="conversions",
                periods=days,
                name=f"{platform}_spend_conversions_paired",
            ),
            checks.clicks_exceed_impressions(
                dataset=f"{platform}_days", name=f"{platform}_clicks_le_impressions"
            ),
            checks.rate_out_of_bounds(
                numerator="conversions",
                denominator="clicks",
                maximum=1.0,
                dataset=f"{platform}_days",
                name=f"{platform}_conversions_per_click",
            ),
        ]
        for column in ("spend_micros", "clicks", "conversions"):
            suite.append(
                checks.sums_agree(
                    column=column,
                    detail=f"{platform}_days",
                    summary=f"{platform}_months",
                    detail_key=lambda r: (int(r["client_id"]), str(r["date"])[:7]),
                    summary_key=lambda r: (int(r["client_id"]), str(r["month"])),
                    tolerance=0,
                    name=f"{platform}_{column}_daily_equals_monthly",
                )
            )
        suite.append(_quarantine_check(store, platform, settings))
    return CheckSuite(checks=[*suite, *extra], connection=store, datasets=datasets, name="kpi")


def _quarantine_check(store: Store, platform: str, settings: Settings) -> Check:
    """No unit of the run's partitions waits in quarantine (other ranges are not this run's)."""
    wanted = {
        f"{platform}/{key}/{(settings.start + dt.timedelta(days=n)).isoformat()}"
        for key in settings.keys
        for n in range(settings.days)
    }

    def body(context: CheckContext) -> CheckOutcome:
        rows = []
        for record in SQLQuarantine(store).records(source=platform):
            unit = unit_of_record(record)
            if unit is not None and unit.unit_id in wanted:
                rows.append({"unit": unit.unit_id, "record": record.id, "verdict": unit.verdict})
        return CheckOutcome(rows)

    return Check(
        name=f"{platform}_quarantine_empty",
        severity="error",
        body=body,
        message="{count} unit(s) of the range still in quarantine",
        action="These units failed validation on every fetch of this run: read their issues "
        "in rp_quarantine, fix the cause, then re-run the collector for their days.",
    )
