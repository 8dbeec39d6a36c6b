"""The collector's backfill passes run by a fleet: plain processes, Celery or Dask workers.

With ``--workers N`` (more than one) or ``--engine celery|dask`` a pass of the
run (the main pass, a recovery pass, the catch-up) is not run in this
process: :func:`fleet_pass` sends :data:`JOB` with the pass's parameters to
the engine, which runs it in ``N`` workers sharing the ledger, and merges
their :class:`~resilient_pipeline.engines.WorkResult` into one
:class:`~resilient_pipeline.ledger.BackfillReport`. Everything else of the run
(recovery rounds, aggregation, checks, alerts, the summary) stays here, the
same code as in a one-process run.

* ``local``: ``N`` spawned processes of this machine
  (:func:`resilient_pipeline.engines.local.run_processes`); the tokens, and a
  database or Redis URL holding a password, reach them through the
  environment of the child processes, never the parameters.
* ``celery``: :func:`resilient_pipeline.engines.celery.dispatch` on the app
  of :mod:`examples.kpi_collector.celery_app` (``KPI_CELERY_BROKER``,
  ``KPI_CELERY_BACKEND``); start its workers with
  ``celery -A examples.kpi_collector.celery_app worker``, their environment
  holding ``KPI_META_TOKEN`` / ``KPI_GOOGLE_TOKEN`` (and ``KPI_DB`` /
  ``KPI_REDIS_URL`` when they hold a password).
* ``dask``: :func:`resilient_pipeline.engines.dask.dispatch` on the scheduler
  at ``KPI_DASK_SCHEDULER``, or on a local cluster of ``N`` worker processes
  started for the pass (a few seconds each: point at a running scheduler for
  real use). The workers inherit the tokens from this environment, or have
  their own.

The workers' own counters (rows written, retries, breaker openings, rows
quarantined) come back in each result (:attr:`WorkResult.counters`) and are
added to this process's tally, so the summary counts what the fleet did.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import anyio.to_thread

from resilient_pipeline.engines import WorkResult
from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.ledger import BackfillReport, Partition, PartitionFailure
from resilient_pipeline.observability import redact

from .collection import Tally
from .jobs import DB_ENV
from .settings import ENGINES, REDIS_ENV, TOKEN_ENV, Settings

__all__ = [
    "FLEET_TIMEOUT",
    "JOB",
    "check_engine",
    "fleet_pass",
    "job_params",
    "merged_report",
    "uses_fleet",
]

JOB = "examples.kpi_collector.jobs:collector_job"
"""The job every worker of the fleet runs."""

FLEET_TIMEOUT = 6 * 3600.0
"""Seconds a pass waits at most for a Celery fleet's workers (they run on after)."""


def uses_fleet(settings: Settings) -> bool:
    """Whether the passes run in a fleet (``--workers`` > 1 or an engine other than ``local``)."""
    return settings.engine != "local" or settings.slots > 1


def job_params(
    settings: Settings,
    platform: str,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    periods: Sequence[str] | None = None,
    lookback: int = 0,
) -> dict[str, Any]:
    """The JSON parameters of one pass of ``platform``, as :data:`JOB` takes them.

    A database or Redis URL holding a password is left out (the workers read
    ``KPI_DB`` / ``KPI_REDIS_URL`` from their environment); a SQLite path is
    made absolute, the workers' working directory being another.

    Example:
        >>> s = Settings(db="postgresql://kpi:pw@db/kpi", clients=(1, 2), days=2, lookback=0)
        >>> p = job_params(s, "meta_ads", start=s.start, end=s.end)
        >>> "db" in p, p["clients"], p["start"], p["end"]
        (False, [1, 2], '2026-11-28', '2026-11-29')
    """
    params: dict[str, Any] = {
        "platform": platform,
        "base_url": settings.base_url,
        "clients": list(settings.clients),
        "lookback": lookback,
        "concurrency": settings.concurrency,
        "max_attempts": settings.max_attempts,
        "lease": settings.lease,
        "rate_limit": settings.rate_limit,
        "adaptive_quota": settings.adaptive_quota,
        "retry_delay": settings.retry_delay,
        "fetch_timeout": settings.fetch_timeout,
        "breaker_open": settings.breaker_open,
        "redis_prefix": settings.redis_prefix,
    }
    if periods is not None:
        params["periods"] = list(periods)
    else:
        params["start"] = (start or settings.start).isoformat()
        params["end"] = (end or settings.end).isoformat()
    if redact(settings.db) == settings.db:
        dsn = settings.db.startswith(("postgresql://", "postgres://")) or "dbname=" in settings.db
        params["db"] = settings.db if dsn else os.path.abspath(settings.db)
    if settings.redis_url is not None and redact(settings.redis_url) == settings.redis_url:
        params["redis_url"] = settings.redis_url
    return params


def _secrets(settings: Settings) -> dict[str, str]:
    """What a local worker process gets through its environment: tokens, a DSN with a password."""
    environ = {TOKEN_ENV[name]: token for name, token in settings.tokens.items()}
    if redact(settings.db) != settings.db:
        environ[DB_ENV] = settings.db
    if settings.redis_url is not None and redact(settings.redis_url) != settings.redis_url:
        environ[REDIS_ENV] = settings.redis_url
    return environ


def check_engine(settings: Settings) -> None:
    """Fail before anything runs when the engine cannot be reached as configured (one line)."""
    if settings.engine == "celery":
        from .celery_app import configured

        configured()
    elif settings.engine == "dask":
        from resilient_pipeline.engines import dask  # noqa: F401 - names the extra if missing


def _dispatch(settings: Settings, params: Mapping[str, Any], keys: list[str]) -> list[WorkResult]:
    """Run one pass in the engine's workers (blocking); their results."""
    if settings.engine == "local":
        from resilient_pipeline.engines.local import run_processes

        return run_processes(
            JOB, params=params, workers=settings.slots, keys=keys, environ=_secrets(settings)
        )
    if settings.engine == "celery":
        from resilient_pipeline.engines import celery

        from .celery_app import app

        sent = celery.dispatch(app, JOB, params=params, slots=settings.slots, keys=keys)
        return sent.results(timeout=FLEET_TIMEOUT)
    if settings.engine == "dask":
        return _dask(settings, params, keys)
    raise ConfigurationError.for_option("engine", settings.engine, f"choose from {ENGINES}")


def _dask(settings: Settings, params: Mapping[str, Any], keys: list[str]) -> list[WorkResult]:
    from distributed import Client, LocalCluster  # untyped: Any below

    from resilient_pipeline.engines import dask

    address = os.environ.get("KPI_DASK_SCHEDULER", "").strip()
    if address:
        with Client(address) as client:  # type: ignore[no-untyped-call]
            return dask.dispatch(
                client, JOB, params=params, slots=settings.slots, keys=keys
            ).results()
    # No scheduler: a cluster of worker processes of this machine, for this pass.
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=settings.slots, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        return dask.dispatch(client, JOB, params=params, slots=settings.slots, keys=keys).results()


def merged_report(platform: str, results: Iterable[WorkResult]) -> BackfillReport:
    """One report of a pass from its workers' results (partitions, outcomes, failures, errors).

    Example:
        >>> r = WorkResult(run_id="r1", source="meta_ads", worker="h:1",
        ...                collected=(("1", "2026-11-28", "new"),),
        ...                failed=(("2", "2026-11-28", "failed", "HTTPStatusError: 503"),))
        >>> report = merged_report("meta_ads", [r])
        >>> report.counts()["new"], report.failures[0].error_class
        (1, 'HTTPStatusError')
    """
    results = list(results)
    return BackfillReport(
        run_id=results[0].run_id if results else "",
        source=platform,
        collected=tuple(
            (Partition(platform, key, period), outcome)  # type: ignore[misc]
            for r in results
            for key, period, outcome in r.collected
        ),
        failures=tuple(
            PartitionFailure(
                partition=Partition(platform, key, period),
                status=status,  # type: ignore[arg-type]
                error=error,
                error_class=error.split(":", 1)[0],
                attempts=0,
            )
            for r in results
            for key, period, status, error in r.failed
        ),
        measure="spend",
        errors=tuple(dict.fromkeys(e for r in results for e in r.errors)),
        duration=max((r.duration for r in results), default=0.0),
    )


async def fleet_pass(
    settings: Settings,
    platform: str,
    *,
    keys: Sequence[str],
    start: dt.date | None = None,
    end: dt.date | None = None,
    periods: Sequence[str] | None = None,
    lookback: int | dt.timedelta | None = None,
    tally: Tally | None = None,
) -> BackfillReport:
    """One backfill pass of ``platform`` by the fleet (``backfill``'s range arguments).

    The workers' counters are added to ``tally``.
    """
    days = lookback.days if isinstance(lookback, dt.timedelta) else (lookback or 0)
    params = job_params(settings, platform, start=start, end=end, periods=periods, lookback=days)
    results = await anyio.to_thread.run_sync(_dispatch, settings, params, list(keys))
    if tally is not None:
        for result in results:
            tally.merge(result.counters)
    return merged_report(platform, results)
