"""The collector as a fleet's job: ``"examples.kpi_collector.jobs:collector_job"`` and JSON params.

Every engine (Celery, Dask, plain processes) gives its workers this reference
and the parameters below; each worker builds the job in its own process and
runs one backfill pass with :func:`resilient_pipeline.engines.run_job`. The
job is what ``collect``/``backfill`` run for one platform, built by the same
:func:`~examples.kpi_collector.collection.build_collection`: the same fetch
(retry per page, breaker per account, quota per token), the same partition
contract, writes and quarantine, on the same ledger. The ledger's leases share
the partitions out, so an engine's retries and duplicate deliveries are
harmless.

What a job does not do: the recovery passes, the monthly aggregation and the
checks of a collector run. Run the fleet again for what failed (a failed
partition is a gap), then ``python -m examples.kpi_collector aggregate`` and
``check`` once the fleet is done.

Secrets never travel in the parameters (brokers store them, dashboards show
them): each worker reads the platform's token from ``KPI_META_TOKEN`` /
``KPI_GOOGLE_TOKEN``, and a database DSN or Redis URL holding a password from
``KPI_DB`` / ``KPI_REDIS_URL``. A parameter holding a password is refused.

With a Redis URL (``redis_url``, or ``KPI_REDIS_URL`` in the workers'
environment) every worker shares the breakers of the accounts and the quota
of the token: ten workers together keep to the API's quota, and once one of
them found an account dead none of them calls it until its circuit half-opens.

Examples:
    ```python
    from resilient_pipeline.engines import run_job

    result = run_job(
        "examples.kpi_collector.jobs:collector_job",
        params={"platform": "meta_ads", "base_url": "https://ads-proxy.internal",
                "clients": "1-16", "start": "2026-11-01", "end": "2026-11-30"},
        limit=50,  # this worker's share; the others take the rest
    )
    ```

    >>> collector_job(platform="meta_ads", base_url="http://127.0.0.1:9", clients="1-2",
    ...               start="2026-11-28", end="2026-11-29", db="postgresql://kpi:s3cret@db/kpi")
    Traceback (most recent call last):
    ...
    resilient_pipeline.exceptions.ConfigurationError: db holds a password: ...
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import threading
from typing import Any

from resilient_pipeline.engines import Job
from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.observability import redact
from resilient_pipeline.storage import Store

from .collection import Tally, build_collection, redis_client
from .settings import (
    KNOWN_PLATFORMS,
    REDIS_ENV,
    Settings,
    load_flags,
    parse_clients,
    tokens_from_env,
)
from .suite import open_store, prepare

__all__ = ["DB_ENV", "collector_job"]

DB_ENV = "KPI_DB"
"""The variable holding the database (a DSN with its password) when ``db`` is left out."""

_stores: dict[tuple[int, int, str, int], Store] = {}
_redis: dict[tuple[int, str], Any] = {}
_shared_lock = threading.Lock()


def _no_password(option: str, value: str, variable: str) -> str:
    if redact(value) != value:
        raise ConfigurationError(
            f"{option} holds a password: job parameters are stored by the broker and shown by "
            f"dashboards; leave {option} out and set {variable} in the workers' environment",
            option=option,
            value=None,
        )
    return value


def _day(option: str, value: object) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigurationError.for_option(option, value, "must be a day, YYYY-MM-DD") from None


def _store(db: str, concurrency: int) -> Store:
    """One store per database per worker thread, reused by every job the thread runs.

    A job has no end hook to close a store in, and a worker runs many jobs:
    one connection pool each, tables created once, closed when the process
    exits. Keyed by process (a forked worker never uses its parent's
    connections), by thread (a worker running tasks in several threads gives
    each a pool sized for its job) and by the job's concurrency.
    """
    key = (os.getpid(), threading.get_ident(), db, concurrency)
    with _shared_lock:
        store = _stores.get(key)
        if store is None:
            store = open_store(db, workers=concurrency)
            prepare(store, KNOWN_PLATFORMS)
            _stores[key] = store
            atexit.register(store.close)
        return store


def _redis_client(url: str) -> Any:
    """One Redis client (one connection pool) per URL per worker process, like the stores."""
    key = (os.getpid(), url)
    with _shared_lock:
        client = _redis.get(key)
        if client is None:
            client = _redis[key] = redis_client(url)
            atexit.register(client.close)
        return client


def _from_env(option: str, value: str | None, variable: str) -> str | None:
    """``value`` (refused if it holds a password), else ``$variable``, else ``None``."""
    if value is not None:
        return _no_password(option, value, variable)
    return os.environ.get(variable, "").strip() or None


def collector_job(
    *,
    platform: str,
    base_url: str,
    clients: str | list[int],
    start: str | None = None,
    end: str | None = None,
    periods: list[str] | None = None,
    db: str | None = None,
    redis_url: str | None = None,
    redis_prefix: str = "kpi:",
    lookback: int = 0,
    concurrency: int = 4,
    max_attempts: int = 5,
    lease: float = 30.0,
    rate_limit: float = 20.0,
    adaptive_quota: bool = True,
    retry_delay: float = 0.5,
    fetch_timeout: float = 30.0,
    breaker_open: float = 5.0,
) -> Job:
    """One platform's backfill of ``clients`` x [``start``, ``end``], as a fleet's job.

    Args:
        platform: ``"meta_ads"`` or ``"google_ads"``.
        base_url: The ads API's root URL.
        clients: Client ids: ``"1-16"``, ``"3,5,9"``, or a list of ints.
        start: The first day, ``YYYY-MM-DD`` ...
        end: ... and the last, both included; or
        periods: The days themselves (a recovery pass over some days).
        db: A SQLite file (a path every worker sees) or a ``postgresql://`` DSN
            *without* a password; default: ``$KPI_DB``.
        redis_url: A Redis every worker reaches, *without* a password, to share
            the breakers and the quota; default: ``$KPI_REDIS_URL``; neither:
            each worker keeps its own.
        redis_prefix: Prepended to the Redis keys (one fleet per prefix).
        lookback: Days at the end of the range collected again (restatements).
        concurrency: Partitions in flight at once in one worker.
        max_attempts: Failed runs after which a partition is ``exhausted``.
        lease: Seconds a claim lasts without renewal (a dead worker's
            partitions are taken over this long after it died).
        rate_limit: HTTP calls per second per token.
        adaptive_quota: A 429's ``Retry-After`` pauses every call of the token.
        retry_delay: Base delay of the retries, seconds.
        fetch_timeout: Seconds per HTTP call (one page).
        breaker_open: Seconds an account's circuit stays open.

    Raises:
        ConfigurationError: A parameter is wrong or holds a password, the
            token's variable is not set, or there is no database (naming it).
    """
    db = _from_env("db", db, DB_ENV)
    if db is None:
        raise ConfigurationError(
            f"no database: give db (a path or a DSN without a password) or set {DB_ENV}",
            option="db",
            value=None,
        )
    redis_url = _from_env("redis_url", redis_url, REDIS_ENV)
    if periods is not None:
        if start is not None or end is not None or not periods:
            raise ConfigurationError.for_option(
                "periods", periods, "give a non-empty list of days, or start and end, not both"
            )
        days = sorted({_day("periods", p) for p in periods})
        first, last = days[0], days[-1]
    else:
        if start is None or end is None:
            raise ConfigurationError.for_option(
                "start" if start is None else "end", None, "give start and end, or periods"
            )
        first, last = _day("start", start), _day("end", end)
        if first > last:
            raise ConfigurationError.for_option("start", start, f"is after end={end}")
    if platform not in KNOWN_PLATFORMS:
        raise ConfigurationError.for_option(
            "platform", platform, f"choose from {', '.join(KNOWN_PLATFORMS)}"
        )
    if type(concurrency) is not int or concurrency < 1:
        raise ConfigurationError.for_option("concurrency", concurrency, "must be an integer >= 1")
    settings = Settings(
        db=db,
        base_url=base_url,
        tokens=tokens_from_env([platform]),
        platforms=(platform,),
        clients=parse_clients(clients) if isinstance(clients, str) else tuple(clients),
        end=last,
        days=(last - first).days + 1,
        lookback=lookback,
        concurrency=concurrency,
        max_attempts=max_attempts,
        lease=lease,
        rate_limit=rate_limit,
        adaptive_quota=adaptive_quota,
        retry_delay=retry_delay,
        fetch_timeout=fetch_timeout,
        breaker_open=breaker_open,
        progress=False,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    tally = Tally()
    collection = build_collection(
        settings,
        _store(db, concurrency),
        platform,
        tally=tally,
        flags=load_flags(),  # RP_FLAG_* of the worker's environment
        close_when_idle=True,  # Job.run runs each pass in an event loop of its own
        redis=None if redis_url is None else _redis_client(redis_url),
    )
    options = collection.backfill_options()
    del options["progress"]  # a worker's run draws no progress bar (Job.run's progress=False)
    return Job(
        ledger=collection.ledger,
        source=options.pop("source"),
        keys=settings.keys,
        start=None if periods is not None else settings.start,
        end=None if periods is not None else settings.end,
        periods=None if periods is None else [d.isoformat() for d in days],
        fetch=options.pop("fetch"),
        write=options.pop("write"),
        concurrency=options.pop("concurrency"),
        options={**options, "lookback": lookback or None},
        counters=tally.snapshot,  # rows, retries, breaker openings: back to the caller
    )
