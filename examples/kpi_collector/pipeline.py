"""One collector run: backfill → recover → aggregate → check → alert → summary.

Per platform (sequentially, so every retry and breaker event is counted for
the platform that caused it):

1. ``backfill`` the range with the platform's partition contract, a SQL
   quarantine sink and a look-back over the last days (restatements);
2. recovery: up to ``recovery_rounds`` more passes over the partitions that
   failed, quarantined units included (a later answer is usually whole and
   valid; a collected unit's quarantine record is discarded by ``backfill``);
3. ``aggregate_months`` for every month the range touches (idempotent: a
   month whose days did not change writes nothing).

Then one check suite over every platform (ledger completeness, the data-level
checks, daily-vs-monthly sums, an empty quarantine, and in the demo the
database compared with the fake API's ground truth), one alert per problem
through an :class:`~resilient_pipeline.Alerter`, and a :class:`RunSummary`
whose ``exit_code`` follows :class:`~resilient_pipeline.checks.CheckExitCode`:
0 only when every partition is complete and every check passed.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import attrs

from resilient_pipeline import (
    Alert,
    Alerter,
    LoggingNotifier,
    PartitionLedger,
    RateLimiter,
    RetryPolicy,
    SQLiteStore,
    SQLQuarantine,
    abackfill,
    checks,
    unit_of_work,
)
from resilient_pipeline.alerting import Route, SlackNotifier, WebhookNotifier
from resilient_pipeline.breaker import (
    CircuitBreaker,
    CircuitOpened,
    ConsecutiveFailures,
    HalfOpen,
    OpenDuration,
)
from resilient_pipeline.checks import (
    Check,
    CheckContext,
    CheckExitCode,
    CheckOutcome,
    CheckReport,
    CheckSuite,
)
from resilient_pipeline.events import Event
from resilient_pipeline.exceptions import ConfigurationError, ResilientPipelineError, StoreError
from resilient_pipeline.ledger import BackfillReport, Partition, PartitionFailure
from resilient_pipeline.observability import redact
from resilient_pipeline.retry import RetryScheduled
from resilient_pipeline.storage import PostgresStore, Store, Transaction
from resilient_pipeline.validation import CheckedUnit, PartitionQuarantined, unit_of_record

from . import repository
from .platforms import PLATFORMS
from .platforms.base import retryable as retryable_call
from .platforms.base import upstream_failed
from .settings import DEMO_HANG, KNOWN_PLATFORMS, Settings

if TYPE_CHECKING:
    from .fakeapi import FakeAdsAPI, GroundTruth

__all__ = [
    "EXIT_MEANINGS",
    "PlatformStats",
    "RunSummary",
    "UpstreamUnreachableError",
    "arun",
    "build_checks",
    "open_store",
    "run",
]

_log = logging.getLogger("kpi_collector")

EXIT_MEANINGS = {
    0: "every partition complete and every check passed",
    1: "collected, but a warning-level check failed (see the alerts)",
    2: "data missing or wrong: an error-level check failed (see the alerts)",
    3: "a check could not run: the data's state is unknown",
    64: "the command line was wrong",
}


class UpstreamUnreachableError(ResilientPipelineError):
    """The API's base URL does not answer at all (nothing was collected)."""


# ---------------------------------------------------------------- the summary
@attrs.frozen(kw_only=True)
class PlatformStats:
    """What one run did for one platform.

    Attributes:
        platform: The ledger source name.
        collected: Partitions collected for the first time.
        unchanged: Partitions collected again (look-back) with identical data.
        restated: Partitions whose data upstream changed (written anew).
        failed: Partitions still missing at the end of the run (later runs retry them).
        exhausted: ... of which out of attempts (need an operator's retry).
        recovered: Partitions that failed in the main pass and were collected in a
            recovery pass.
        replayed: Quarantined units collected whole in a recovery pass.
        rows_inserted: Rows inserted in the data tables.
        rows_updated: Rows rewritten with different values.
        rows_quarantined: Rows set aside in quarantine (whole units).
        retries: Retried requests and partition attempts.
        breaker_openings: Circuit-breaker openings.
        errors: Why a pass stopped early (the ledger unreachable), if one did.
    """

    platform: str
    collected: int = 0
    unchanged: int = 0
    restated: int = 0
    failed: int = 0
    exhausted: int = 0
    recovered: int = 0
    replayed: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_quarantined: int = 0
    retries: int = 0
    breaker_openings: int = 0
    errors: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class RunSummary:
    """Everything one run did, for the console, the report and a scheduler.

    Attributes:
        exit_code: 0 only when every partition is complete and every check passed
            (:class:`~resilient_pipeline.checks.CheckExitCode`).
        exit_meaning: What the exit code means, in words.
        report_path: The HTML report written, if any.
        mismatches: Demo only: differences from the fake API's ground truth.
    """

    started_at: dt.datetime
    finished_at: dt.datetime
    platforms: tuple[PlatformStats, ...]
    checks: CheckReport | None
    alerts: tuple[Alert, ...]
    exit_code: int
    exit_meaning: str
    report_path: str | None = None
    alerts_sent: int = 0
    alerts_failed: int = 0
    start: dt.date | None = None
    end: dt.date | None = None
    clients: int = 0
    mismatches: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """Seconds the run took."""
        return (self.finished_at - self.started_at).total_seconds()


# ---------------------------------------------------------------- counting events
@attrs.define
class _Tally:
    """One platform's counts, from the events of its own policies (platforms run at once)."""

    counts: dict[str, int] = attrs.Factory(dict)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def get(self, name: str) -> int:
        return self.counts.get(name, 0)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RetryScheduled):
            self.add("retries")
        elif isinstance(event, CircuitOpened):
            self.add("breaker_openings")
        elif isinstance(event, PartitionQuarantined):
            self.add("rows_quarantined", event.rows)


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


def _views(platform: str) -> tuple[str, str]:
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
                    daily, campaigns = _views(platform)
                    _create_view(tx, daily, "daily_kpi_data", platform)
                    _create_view(tx, campaigns, "campaign_daily", platform)
        except StoreError:
            if attempt == 2:
                raise
            continue
        return


# ---------------------------------------------------------------- collecting
def _months(start: dt.date, end: dt.date) -> list[str]:
    months, day = [], start.replace(day=1)
    while day <= end:
        months.append(day.strftime("%Y-%m"))
        day = (day + dt.timedelta(days=32)).replace(day=1)
    return months


def spend(unit: Any) -> float:
    """The partition's measure for restatement sizes: its spend, in currency units."""
    rows = unit.rows("campaigns") if isinstance(unit, CheckedUnit) else unit.get("campaigns", ())
    return sum(int(row["spend_micros"]) for row in rows) / 1_000_000


def _writer(tally: _Tally) -> Callable[[Transaction, Partition, Any], None]:
    """``write`` for backfill: the checked unit into the tables, rows counted."""

    def write(tx: Transaction, partition: Partition, unit: Any) -> None:
        collections = (
            {name: list(rows) for name, rows in unit.collections.items()}
            if isinstance(unit, CheckedUnit)
            else unit
        )
        result = repository.write_unit(tx, partition, collections)
        tally.add("rows_inserted", result.inserted)
        tally.add("rows_updated", result.updated + result.deleted)

    return write


def _final_failures(passes: Sequence[BackfillReport]) -> list[PartitionFailure]:
    """Each partition's failure in the last pass that tried it, unless a later pass collected it."""
    last: dict[Partition, PartitionFailure | None] = {}
    for report in passes:
        for partition, _ in report.collected:
            last[partition] = None
        for failure in report.failures:
            last[failure.partition] = failure
    return [f for f in last.values() if f is not None]


async def _wait_for_others(ledger: PartitionLedger, source: str, settings: Settings) -> bool:
    """Wait (up to ``settings.wait_for_others`` s) while other workers hold partitions of the
    range; whether any partition of the range is still not succeeded."""
    deadline = anyio.current_time() + settings.wait_for_others
    while True:
        records = await anyio.to_thread.run_sync(
            lambda: ledger.records(source, settings.start, settings.end)
        )
        wanted = {(k, p) for k in settings.keys for p in _days(settings)}
        mine = [r for r in records if (r.partition.key, r.partition.period) in wanted]
        now = ledger.clock.time() if ledger.clock is not None else time.time()
        # A live worker renews its leases; an expired one was a crash: take it over now.
        held = [r for r in mine if r.status == "running" and (r.lease_expires or 0) > now]
        if not held or anyio.current_time() >= deadline:
            break
        await anyio.sleep(0.2)
    return len(mine) < len(wanted) or any(r.status != "succeeded" for r in mine)


def _days(settings: Settings) -> list[str]:
    return [(settings.start + dt.timedelta(days=n)).isoformat() for n in range(settings.days)]


def _still_failing(
    ledger: PartitionLedger, source: str, settings: Settings, failures: list[PartitionFailure]
) -> list[PartitionFailure]:
    """The failures the ledger still shows (a worker elsewhere may have collected some)."""
    if not failures:
        return failures
    now = {r.partition: r for r in ledger.records(source, settings.start, settings.end)}
    kept = []
    for failure in failures:
        record = now.get(failure.partition)
        if record is not None and record.status == "succeeded" and record.last_error is None:
            continue  # collected (or re-checked) whole since
        kept.append(failure)
    return kept


def _discard_resolved_quarantine(
    ledger: PartitionLedger, sink: SQLQuarantine, source: str, settings: Settings
) -> int:
    """Discard quarantine records of units collected whole after they were set aside.

    ``backfill`` discards a unit's records when it collects the unit, but only the
    records it knew of when it started: with several workers, one may quarantine a
    unit that another then collects. The ledger says which: succeeded, no error
    since, updated after the record was written.
    """
    now = {str(r.partition): r for r in ledger.records(source, settings.start, settings.end)}
    resolved = []
    for record in sink.records(source=source):
        unit = unit_of_record(record)
        row = None if unit is None else now.get(unit.unit_id)
        if (
            row is not None
            and row.status == "succeeded"
            and row.last_error is None
            and row.updated_at is not None
            and record.quarantined_at <= row.updated_at
        ):
            resolved.append(record.id)
    if resolved:
        sink.discard(resolved)
        _log.info(
            "%s: %d quarantined unit(s) collected whole since: discarded", source, len(resolved)
        )
    return len(resolved)


async def _collect_platform(
    settings: Settings,
    store: Store,
    sink: SQLQuarantine,
    name: str,
    on_pass: Callable[[str, BackfillReport], None],
) -> tuple[PlatformStats, list[Alert]]:
    platform = PLATFORMS[name]
    tally = _Tally()
    ledger = PartitionLedger(
        store, max_attempts=settings.max_attempts, lease=settings.lease, on_event=tally
    )
    fetcher = platform.fetcher(
        base_url=settings.base_url,
        token=settings.token(name),
        timeout=settings.fetch_timeout,
        on_event=tally,
        # Each page is retried on its own (Retry-After honoured, refusals waited out).
        retry=RetryPolicy(
            max_attempts=6,
            base_delay=settings.retry_delay,
            max_delay=max(5.0, settings.retry_delay),
            deadline=60.0,
            retry_if=retryable_call,
            name=f"{name} call",
            on_event=tally,
        ),
        # One breaker per account, made from this template.
        breaker=CircuitBreaker(
            name=name,
            trip=ConsecutiveFailures(threshold=5),
            open_duration=OpenDuration(seconds=settings.breaker_open),
            half_open=HalfOpen(permits=4),  # several days of one account are in flight
            failure_if=upstream_failed,
            on_event=tally,
        ),
        # One fetcher per platform per run: one bucket per token.
        limiter=RateLimiter(
            rate=settings.rate_limit,
            per=1.0,
            adaptive=settings.adaptive_quota,
            name=f"{name} quota",
            on_event=tally,
        ),
    )
    # Partition-level retry: an incomplete unit (campaigns without conversions, an empty
    # answer) is asked again at once; the fetcher retries HTTP faults on its own.
    retry = RetryPolicy(
        max_attempts=3,
        base_delay=settings.retry_delay,
        max_delay=max(settings.retry_delay * 8, 0.0),
        name=f"{name} unit",
        on_event=tally,
    )
    options: dict[str, Any] = {
        "source": name,
        "fetch": fetcher.fetch_unit,
        "write": _writer(tally),
        "concurrency": settings.workers,
        "policies": (retry,),
        "progress": settings.progress,
        "contract": platform.contract,
        "quarantine": sink,
        "measure": spend,
    }
    passes: list[BackfillReport] = []
    try:
        main = await abackfill(
            ledger,
            keys=settings.keys,
            start=settings.start,
            end=settings.end,
            lookback=dt.timedelta(days=settings.lookback) if settings.lookback else None,
            **options,
        )
        passes.append(main)
        on_pass("main", main)

        async def recover() -> None:
            for _ in range(settings.recovery_rounds):
                final = _final_failures(passes)
                # failed: collect again; succeeded (a look-back re-check failed): again.
                for status in ("failed", "succeeded"):
                    todo = [f.partition for f in final if f.status == status]
                    if not todo:
                        continue
                    periods = sorted({p.period for p in todo})
                    extra: dict[str, Any] = {}
                    if status == "succeeded":
                        extra["lookback"] = len(periods)
                    again = await abackfill(
                        ledger,
                        keys=sorted({p.key for p in todo}),
                        periods=periods,
                        **extra,
                        **options,
                    )
                    passes.append(again)
                    on_pass("recovery", again)
                if not any(f.status in ("failed", "succeeded") for f in _final_failures(passes)):
                    return

        await recover()
        # Other workers on the same database: wait for what they hold, then take over
        # what they left (their failures, a crashed worker's expired leases).
        if await _wait_for_others(ledger, name, settings):
            last = await abackfill(
                ledger, keys=settings.keys, start=settings.start, end=settings.end, **options
            )
            passes.append(last)
            on_pass("catch-up", last)
            await recover()
    finally:
        await fetcher.aclose()

    # Each partition once, by what mattered most in any pass of the run.
    outcomes: dict[Partition, set[str]] = {}
    for report in passes:
        for partition, outcome in report.collected:
            outcomes.setdefault(partition, set()).add(outcome)
    # Other workers on the same database may have collected what failed here meanwhile.
    final = await anyio.to_thread.run_sync(
        _still_failing, ledger, name, settings, _final_failures(passes)
    )
    await anyio.to_thread.run_sync(_discard_resolved_quarantine, ledger, sink, name, settings)
    failed_before: dict[Partition, PartitionFailure] = {}
    for report in passes[:-1]:
        for failure in report.failures:
            failed_before.setdefault(failure.partition, failure)
    recovered = {p for p in outcomes if p in failed_before} - {f.partition for f in final}
    stats = PlatformStats(
        platform=name,
        collected=sum(1 for o in outcomes.values() if "new" in o),
        unchanged=sum(1 for o in outcomes.values() if o == {"unchanged"}),
        restated=sum(1 for o in outcomes.values() if "restated" in o and "new" not in o),
        failed=sum(1 for f in final if f.status != "succeeded"),
        exhausted=sum(1 for f in final if f.status == "exhausted"),
        recovered=len(recovered),
        replayed=sum(1 for p in recovered if failed_before[p].quarantine_id is not None),
        rows_inserted=tally.get("rows_inserted"),
        rows_updated=tally.get("rows_updated"),
        rows_quarantined=tally.get("rows_quarantined"),
        retries=tally.get("retries"),
        breaker_openings=tally.get("breaker_openings"),
        errors=tuple(dict.fromkeys(e for report in passes for e in report.errors)),
    )
    # One report for the whole run: the failures that still stand, every restatement.
    merged = BackfillReport(
        run_id=main.run_id,
        source=name,
        collected=tuple(c for report in passes for c in report.collected),
        failures=tuple(final),
        restated=tuple(r for report in passes for r in report.restated),
        recovered=tuple(p for report in passes for p in report.recovered),
        lost=tuple(p for report in passes for p in report.lost),
        measure="spend",
        errors=tuple(e for report in passes for e in report.errors),
    )
    return stats, merged.alerts(db=shown_db(settings.db))


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
    months = _months(settings.start, settings.end)
    first = dt.date.fromisoformat(months[0] + "-01")
    after = (settings.end.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    with unit_of_work(store, name="kpi check tables") as tx:
        summaries = tx.table("campaign_summaries")
        views = {p: tuple(tx.table(v) for v in _views(p)) for p in settings.platforms}
    suite: list[Check] = []
    datasets: dict[str, Any] = {}
    for platform in settings.platforms:
        daily_view, campaign_view = _views(platform)
        daily_q, _ = views[platform]
        datasets[f"{platform}_days"] = checks.query_dataset(
            # identifiers from the store's quoting helper; values bound
            f"SELECT client_id, date, platform, impressions, clicks, spend_micros, conversions "  # noqa: S608
            f"FROM {daily_q} WHERE date >= :lo AND date < :hi",
            {"lo": first.isoformat(), "hi": after.isoformat()},
        )
        datasets[f"{platform}_months"] = checks.query_dataset(
            # CAST: PostgreSQL's SUM is a numeric (a Decimal), which sums_agree cannot add
            # to its float totals.
            f"SELECT client_id, month, CAST(SUM(spend_micros) AS BIGINT) AS spend_micros, "  # noqa: S608
            f"CAST(SUM(clicks) AS BIGINT) AS clicks, "
            f"CAST(SUM(calls + emails + reservations) AS BIGINT) AS conversions "
            f"FROM {summaries} WHERE platform = :platform AND month >= :m0 AND month <= :m1 "
            f"GROUP BY client_id, month",
            {"platform": platform, "m0": months[0], "m1": months[-1]},
        )
        suite += [
            ledger.completeness_check(
                platform, settings.keys, start=settings.start, end=settings.end
            ),
            checks.missing_keys(
                table=daily_view, keys=settings.clients, periods=days, name=f"{platform}_daily_rows"
            ),
            checks.unpaired_rows(
                left=campaign_view,
                right=daily_view,
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


# ---------------------------------------------------------------- alerts
def build_alerter(settings: Settings) -> Alerter:
    """Alerts go to the log always, and to Slack / a webhook when configured."""
    routes: list[Route] = [Route(LoggingNotifier())]
    if settings.slack_webhook:
        routes.append(Route(SlackNotifier(settings.slack_webhook, timeout=10.0)))
    if settings.webhook:
        routes.append(Route(WebhookNotifier(settings.webhook, timeout=10.0)))
    return Alerter(routes, raise_on_failure=False, rate_limit=None, name="kpi_collector")


# ---------------------------------------------------------------- the run
def check_reachable(base_url: str, timeout: float) -> None:
    """Fail fast, with one line, when nothing answers at ``base_url``."""
    import httpx

    try:
        httpx.get(base_url, timeout=max(timeout, 1.0))
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise UpstreamUnreachableError(
            f"cannot reach the API at {redact(base_url)}: {redact(reason)}"
        ) from None
    except httpx.HTTPError:
        return  # it answered something: the fetchers deal with faults


def run_checks(settings: Settings, *, store: Store | None = None) -> CheckReport:
    """Only the checks of ``settings``' range (the ``check`` command)."""
    own = store is None
    store = open_store(settings.db) if store is None else store
    try:
        prepare(store, settings.platforms)
        params = {"start": settings.start.isoformat(), "end": settings.end.isoformat()}
        return build_checks(store, settings).run(params)
    finally:
        if own:
            store.close()


def _write_report(store: Store, summary: RunSummary) -> RunSummary:
    """Render the HTML report; a failure is one ERROR line, never the run's outcome."""
    if summary.report_path is None:
        return summary
    from .report import render_report

    try:
        path = render_report(
            store, Path(summary.report_path), summary=summary, platforms=summary_platforms(summary)
        )
    except Exception as exc:
        _log.error("the report could not be written: %s", redact(f"{type(exc).__name__}: {exc}"))
        return attrs.evolve(summary, report_path=None)
    return attrs.evolve(summary, report_path=str(path))


async def arun(
    settings: Settings,
    *,
    store: Store | None = None,
    alerter: Alerter | None = None,
    extra_checks: Sequence[Check] = (),
    on_pass: Callable[[str, BackfillReport], None] = lambda _kind, _report: None,
) -> RunSummary:
    """Collect, recover, aggregate, check, alert, and write the report if asked.

    Args:
        settings: The run.
        store: An open store (default: ``open_store(settings.db)``, closed at the end).
        alerter: Where alerts go (default: :func:`build_alerter`).
        extra_checks: More checks (the demo compares the database with the ground truth).
        on_pass: Called after each backfill pass (the console prints a line).

    Raises:
        UpstreamUnreachableError: Nothing answers at ``settings.base_url``.
        ConfigurationError: A token is missing, an option is wrong.
    """
    started = dt.datetime.now(dt.timezone.utc)
    for name in settings.platforms:
        settings.token(name)  # a missing token fails before anything runs
    await anyio.to_thread.run_sync(check_reachable, settings.base_url, settings.fetch_timeout)
    own = store is None
    store = open_store(settings.db, workers=settings.workers) if store is None else store
    alerter = build_alerter(settings) if alerter is None else alerter
    try:
        await anyio.to_thread.run_sync(prepare, store, settings.platforms)
        sink = SQLQuarantine(store)
        stats: list[PlatformStats] = []
        alerts: list[Alert] = []
        results: dict[str, tuple[PlatformStats, list[Alert]]] = {}

        async def collect(name: str) -> None:
            results[name] = await _collect_platform(settings, store, sink, name, on_pass)

        # Platforms run side by side: each has its own token, quota and breakers.
        async with anyio.create_task_group() as group:
            for name in settings.platforms:
                group.start_soon(collect, name)
        for name in settings.platforms:
            stats.append(results[name][0])
            alerts += results[name][1]
        # Months whose days changed since they were last aggregated (a crash in between
        # is caught up by the next run: the bookkeeping commits with the data).
        await anyio.to_thread.run_sync(lambda: repository.aggregate_months(store))
        suite = build_checks(store, settings, extra=extra_checks)
        report = await suite.arun(
            {"start": settings.start.isoformat(), "end": settings.end.isoformat()}
        )
        alerts += report.alerts()
        deliveries = await anyio.to_thread.run_sync(alerter.send_all, alerts)
        code = int(report.exit_code)
        if code == 0 and any(s.failed or s.errors for s in stats):
            code = int(CheckExitCode.ERRORS)  # the completeness check says so too
        mismatches: tuple[str, ...] = ()
        for result in report.results:
            if result.name == TRUTH_CHECK and not result.passed:
                mismatches = tuple(str(row["difference"]) for row in result.offending)
        summary = RunSummary(
            started_at=started,
            finished_at=dt.datetime.now(dt.timezone.utc),
            platforms=tuple(stats),
            checks=report,
            alerts=tuple(alerts),
            exit_code=code,
            exit_meaning=EXIT_MEANINGS.get(code, "unknown"),
            report_path=None if settings.report is None else str(settings.report),
            alerts_sent=sum(1 for d in deliveries if d.status == "sent"),
            alerts_failed=sum(1 for d in deliveries if d.status == "failed"),
            start=settings.start,
            end=settings.end,
            clients=len(settings.clients),
            mismatches=mismatches,
        )
        return await anyio.to_thread.run_sync(_write_report, store, summary)
    finally:
        if own:
            store.close()


def run(settings: Settings, **options: Any) -> RunSummary:
    """:func:`arun` from sync code (its own event loop)."""
    return anyio.run(functools.partial(arun, settings, **options))


# ---------------------------------------------------------------- the demo
TRUTH_CHECK = "matches_ground_truth"


_CAMPAIGN_FIELDS = ("campaign_name", "impressions", "clicks", "spend_micros")


def _campaign_row(unit: Mapping[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    conversions = {row["campaign_id"]: row for row in unit["conversions"]}
    merged = {}
    for row in unit["campaigns"]:
        extra = conversions.get(row["campaign_id"], {})
        merged[row["campaign_id"]] = {
            **{k: row[k] for k in _CAMPAIGN_FIELDS},
            **{k: int(extra.get(k, 0)) for k in ("calls", "emails", "reservations")},
        }
    return merged


def truth_differences(store: Store, truth: GroundTruth, settings: Settings) -> list[str]:
    """Every difference between the database and the fake API's ground truth, value by value.

    Compares ``campaign_daily``, ``daily_kpi_data`` and ``campaign_summaries``
    for every partition of the range and every partition the database holds
    (extra rows are differences too); the monthly truth is summed over the days
    the database holds, which are themselves compared.
    """
    diffs: list[str] = []
    stored_campaigns: dict[tuple[str, int, str], dict[str, dict[str, Any]]] = {}
    for c in repository.campaign_days(store):
        stored_campaigns.setdefault((c.platform, c.client_id, c.date), {})[c.campaign_id] = {
            k: getattr(c, k) for k in (*_CAMPAIGN_FIELDS, "calls", "emails", "reservations")
        }
    stored_daily = {
        (d.platform, d.client_id, d.date): attrs.asdict(d) for d in repository.daily_totals(store)
    }
    with unit_of_work(store, name="kpi truth summaries") as tx:
        rows = tx.fetchall(
            "SELECT platform, client_id, month, campaign_id, days, impressions, clicks, "  # noqa: S608
            f"spend_micros, calls, emails, reservations FROM {tx.table('campaign_summaries')}"
        )
    fields = ("days", "impressions", "clicks", "spend_micros", "calls", "emails", "reservations")
    stored_months: dict[tuple[str, int, str], dict[str, dict[str, int]]] = {}
    for platform, client, month, campaign, *values in rows:
        stored_months.setdefault((platform, int(client), month), {})[campaign] = {
            f: int(v) for f, v in zip(fields, values, strict=True)
        }

    wanted = {
        (p, c, (settings.start + dt.timedelta(days=n)).isoformat())
        for p in settings.platforms
        for c in settings.clients
        for n in range(settings.days)
    }
    partitions = sorted(wanted | set(stored_campaigns) | set(stored_daily))
    for platform, client, day in partitions:
        where = f"{platform}/{client}/{day}"
        if platform not in KNOWN_PLATFORMS:
            diffs.append(f"{where}: a platform the API does not have")
            continue
        unit = truth.unit(platform, client, day)
        expected = _campaign_row(unit)
        got = stored_campaigns.get((platform, client, day), {})
        if not got and (platform, client, day) in wanted:
            diffs.append(f"{where}: no campaign_daily rows (expected {len(expected)})")
        diffs.extend(
            f"{where} campaign {campaign}: stored {got.get(campaign)}, "
            f"truth {expected.get(campaign)}"
            for campaign in sorted(set(expected) | set(got))
            if expected.get(campaign) != got.get(campaign)
        )
        kpi = truth.daily_kpi(platform, client, day)
        kpi["date"] = kpi["date"].isoformat()
        stored = stored_daily.get((platform, client, day))
        if stored != kpi:
            diffs.append(f"{where} daily_kpi_data: stored {stored}, truth {kpi}")

    days_by_month: dict[tuple[str, int, str], set[str]] = {}
    for platform, client, day in partitions:
        days_by_month.setdefault((platform, client, day[:7]), set()).add(day)
    for key in sorted(set(days_by_month) | set(stored_months)):
        platform, client, month = key
        expected_month = (
            truth.monthly(platform, client, month, days_by_month[key])
            if key in days_by_month and platform in KNOWN_PLATFORMS
            else {}
        )
        got_month = stored_months.get(key, {})
        diffs.extend(
            f"{platform}/{client}/{month} campaign_summaries {campaign}: stored "
            f"{got_month.get(campaign)}, truth {expected_month.get(campaign)}"
            for campaign in sorted(set(expected_month) | set(got_month))
            if expected_month.get(campaign) != got_month.get(campaign)
        )
    return diffs


def ground_truth_check(truth: GroundTruth, settings: Settings) -> Check:
    """A check failing with every difference between the database and the ground truth."""

    def body(context: CheckContext) -> CheckOutcome:
        diffs = truth_differences(context.connection, truth, settings)
        return CheckOutcome(
            [{"difference": d} for d in diffs],
            message=f"{len(diffs)} difference(s) from the API's ground truth, first: "
            + (diffs[0] if diffs else ""),
        )

    return Check(
        name=TRUTH_CHECK,
        severity="error",
        body=body,
        max_offending=1000,
        action="The collector stored something the API did not say: a bug in the collector.",
        description="Demo only: the database equals the fake API's ground truth, value by value.",
    )


def run_demo(
    settings: Settings,
    *,
    api: FakeAdsAPI | None = None,
    store: Store | None = None,
    on_pass: Callable[[str, BackfillReport], None] = lambda _kind, _report: None,
) -> RunSummary:
    """The demo: one run against the local flaky API, checked against the API's ground truth.

    Args:
        settings: The run; its ``base_url`` and ``tokens`` are replaced by the local API's.
        api: A running :class:`FakeAdsAPI` (tests choose its truth and faults);
            default: one for ``settings.seed`` and ``settings.fault_rate``, for this run.
        store: An open store (default: ``settings.db``).
        on_pass: Called after each backfill pass.
    """
    if api is None:
        from .fakeapi import FakeAdsAPI, Faults, GroundTruth

        truth = GroundTruth(seed=settings.seed)
        faults = attrs.evolve(
            Faults.demo(seed=settings.seed, rate=settings.fault_rate), hang=DEMO_HANG
        )
        with FakeAdsAPI(truth, faults) as started:
            return run_demo(settings, api=started, store=store, on_pass=on_pass)
    local = attrs.evolve(settings, base_url=api.base_url, tokens=dict(api.tokens))
    check = ground_truth_check(api.truth, local)
    return run(local, store=store, extra_checks=[check], on_pass=on_pass)


def summary_platforms(summary: RunSummary) -> list[str]:
    """The platforms a summary covers, in order."""
    return [stats.platform for stats in summary.platforms]
