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
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from resilient_pipeline import (
    Alert,
    Alerter,
    LoggingNotifier,
    PartitionLedger,
    SQLQuarantine,
    abackfill,
)
from resilient_pipeline.alerting import Route, SlackNotifier, WebhookNotifier
from resilient_pipeline.breaker import CircuitBreaker, CircuitBreakerRegistry
from resilient_pipeline.checks import Check, CheckExitCode, CheckReport
from resilient_pipeline.exceptions import ResilientPipelineError
from resilient_pipeline.flags import Flags
from resilient_pipeline.ledger import BackfillReport, Partition, PartitionFailure
from resilient_pipeline.observability import redact
from resilient_pipeline.storage import Store

from . import repository
from .collection import Tally, build_collection, spend
from .fleet import check_engine, fleet_pass, uses_fleet
from .monitoring import RunMonitor
from .settings import Settings, load_flags
from .suite import build_checks, open_store, prepare, shown_db
from .summary import EXIT_MEANINGS, PlatformStats, RunSummary

__all__ = [
    "UpstreamUnreachableError",
    "arun",
    "build_alerter",
    "check_reachable",
    "run",
    "run_checks",
    "spend",
]

_log = logging.getLogger("kpi_collector")


class UpstreamUnreachableError(ResilientPipelineError):
    """The API's base URL does not answer at all (nothing was collected)."""


# ---------------------------------------------------------------- collecting
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


async def _collect_platform(
    settings: Settings,
    store: Store,
    sink: SQLQuarantine,
    name: str,
    on_pass: Callable[[str, BackfillReport], None],
    flags: Flags,
    monitor: RunMonitor | None,
) -> tuple[PlatformStats, list[Alert]]:
    tally = Tally()
    run_pass: Callable[..., Awaitable[BackfillReport]]
    if uses_fleet(settings):
        # The fleet's workers fetch and write; this process keeps the run's bookkeeping.
        collection = None
        ledger = PartitionLedger(store, max_attempts=settings.max_attempts, lease=settings.lease)
        breakers = CircuitBreakerRegistry(template=CircuitBreaker(name=name))  # theirs, not here
        run_pass = functools.partial(fleet_pass, settings, name, tally=tally)
    else:
        collection = build_collection(settings, store, name, tally=tally, sink=sink, flags=flags)
        ledger, breakers = collection.ledger, collection.breakers
        run_pass = functools.partial(abackfill, ledger, **collection.backfill_options())
    if monitor is not None:
        monitor.watch_platform(name, ledger, breakers)
    passes: list[BackfillReport] = []
    try:
        main = await run_pass(
            keys=settings.keys,
            start=settings.start,
            end=settings.end,
            lookback=dt.timedelta(days=settings.lookback) if settings.lookback else None,
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
                    again = await run_pass(
                        keys=sorted({p.key for p in todo}), periods=periods, **extra
                    )
                    passes.append(again)
                    on_pass("recovery", again)
                if not any(f.status in ("failed", "succeeded") for f in _final_failures(passes)):
                    return

        await recover()
        # Other workers on the same database: wait for what they hold, then take over
        # what they left (their failures, a crashed worker's expired leases).
        if await _wait_for_others(ledger, name, settings):
            last = await run_pass(keys=settings.keys, start=settings.start, end=settings.end)
            passes.append(last)
            on_pass("catch-up", last)
            await recover()
    finally:
        if collection is not None:
            await collection.aclose()

    # Each partition once, by what mattered most in any pass of the run.
    outcomes: dict[Partition, set[str]] = {}
    for report in passes:
        for partition, outcome in report.collected:
            outcomes.setdefault(partition, set()).add(outcome)
    # Other workers on the same database may have collected what failed here meanwhile.
    final = await anyio.to_thread.run_sync(
        _still_failing, ledger, name, settings, _final_failures(passes)
    )
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
    flags: Flags | None = None,
    monitor: RunMonitor | None = None,
) -> RunSummary:
    """Collect, recover, aggregate, check, alert, and write the report if asked.

    Args:
        settings: The run.
        store: An open store (default: ``open_store(settings.db)``, closed at the end).
        alerter: Where alerts go (default: :func:`build_alerter`).
        extra_checks: More checks (the demo compares the database with the ground truth).
        on_pass: Called after each backfill pass (the console prints a line).
        flags: Feature flags (default: ``load_flags(settings.flags_file)``: the
            ``RP_FLAG_*`` variables, then the flags file).
        monitor: Health checks and metrics to keep up to date while running
            (``--serve-metrics``); its ``at_end`` hooks run before the store closes.

    Raises:
        UpstreamUnreachableError: Nothing answers at ``settings.base_url``.
        ConfigurationError: A token is missing, an option is wrong.
    """
    started = dt.datetime.now(dt.timezone.utc)
    if settings.engine == "local":  # a Celery or Dask fleet's workers hold the tokens
        for name in settings.platforms:
            settings.token(name)  # a missing token fails before anything runs
    check_engine(settings)  # so does a Celery broker not configured
    # A bad flags file fails before anything runs too.
    flags = load_flags(settings.flags_file) if flags is None else flags
    await anyio.to_thread.run_sync(check_reachable, settings.base_url, settings.fetch_timeout)
    own = store is None
    store = open_store(settings.db, workers=settings.concurrency) if store is None else store
    alerter = build_alerter(settings) if alerter is None else alerter
    if monitor is not None:
        monitor.watch_store(store)
        monitor.start_recording()
    try:
        await anyio.to_thread.run_sync(prepare, store, settings.platforms)
        sink = SQLQuarantine(store)
        stats: list[PlatformStats] = []
        alerts: list[Alert] = []
        results: dict[str, tuple[PlatformStats, list[Alert]]] = {}

        async def collect(name: str) -> None:
            results[name] = await _collect_platform(
                settings, store, sink, name, on_pass, flags, monitor
            )

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
        if monitor is not None:
            await anyio.to_thread.run_sync(
                monitor.record_spend, store, settings.platforms, settings.start, settings.end
            )
        suite = build_checks(store, settings, extra=extra_checks)
        report = await suite.arun(
            {"start": settings.start.isoformat(), "end": settings.end.isoformat()}
        )
        if monitor is not None:
            monitor.checked(report)
        alerts += report.alerts()
        deliveries = await anyio.to_thread.run_sync(alerter.send_all, alerts)
        code = int(report.exit_code)
        if code == 0 and any(s.failed or s.errors for s in stats):
            code = int(CheckExitCode.ERRORS)  # the completeness check says so too
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
        )
        summary = await anyio.to_thread.run_sync(_write_report, store, summary)
        if monitor is not None:
            monitor.stop_recording()
            await anyio.to_thread.run_sync(monitor.finished)
        return summary
    finally:
        if monitor is not None:
            monitor.stop_recording()
        if own:
            store.close()


def run(settings: Settings, **options: Any) -> RunSummary:
    """:func:`arun` from sync code (its own event loop)."""
    return anyio.run(functools.partial(arun, settings, **options))


def summary_platforms(summary: RunSummary) -> list[str]:
    """The platforms a summary covers, in order."""
    return [stats.platform for stats in summary.platforms]
