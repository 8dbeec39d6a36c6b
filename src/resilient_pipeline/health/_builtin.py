"""Built-in health checks: the database, Redis, circuit breakers, ledger freshness, data checks.

Each factory returns a :class:`HealthCheck` to add to a registry. Their
details never show a password: texts pass through the library's redaction.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from resilient_pipeline._core import Clock, non_empty_str, number, redact, resolve_clock
from resilient_pipeline.alerting import severity_rank
from resilient_pipeline.breaker import CircuitBreaker, CircuitBreakerRegistry, CircuitStatistics
from resilient_pipeline.checks import CheckReport, CheckSuite
from resilient_pipeline.exceptions import ConfigurationError, MissingDependencyError
from resilient_pipeline.ledger import PartitionLedger
from resilient_pipeline.storage import Store, unit_of_work

from ._registry import DEFAULT_TIMEOUT, HealthCheck
from ._values import HealthOutcome

__all__ = ["breakers_closed", "checks_passing", "database_ready", "ledger_fresh", "redis_ready"]


def database_ready(
    store: Store, *, name: str = "database", timeout: float = DEFAULT_TIMEOUT, critical: bool = True
) -> HealthCheck:
    """The database answers a trivial query in a unit of work.

    ``failing`` when the store cannot connect or the query fails (the
    store's error, password masked), or when no answer comes within
    ``timeout`` (the connection attempt is abandoned; the store's own
    ``timeout`` ends it later).

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> from resilient_pipeline.health import HealthRegistry
        >>> registry = HealthRegistry([database_ready(SQLiteStore(":memory:"))])
        >>> registry.run().result("database").detail
        'sqlite answered SELECT 1'
    """
    if not callable(getattr(store, "connect", None)):
        raise ConfigurationError.for_option("store", store, "must be a Store")

    def probe() -> str:
        with unit_of_work(store, name="health.database") as tx:
            tx.fetchall("SELECT 1")
            return f"{tx.dialect} answered SELECT 1"

    return HealthCheck(name, probe, timeout=timeout, critical=critical)


def _redis_client(target: object, timeout: float) -> Any:
    if not isinstance(target, str):
        if not callable(getattr(target, "ping", None)):
            raise ConfigurationError.for_option(
                "target", target, "must be a Redis URL, a redis.Redis or a redis.asyncio.Redis"
            )
        return target
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise MissingDependencyError(
            package="redis", extra="redis", feature="The Redis health check"
        ) from exc
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        # No retries of its own: the check's timeout is the whole budget.
        return redis.Redis.from_url(
            target,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError:
        # redis-py quotes the URL it could not parse: never chain it, it may hold a password.
        raise ConfigurationError.for_option(
            "target", redact(target), "must be a redis://, rediss:// or unix:// URL"
        ) from None


def _is_async_client(client: Any) -> bool:
    # redis.asyncio's ping() is a plain method returning an awaitable: ask the class.
    try:
        import redis.asyncio
    except ImportError:  # pragma: no cover - the test extra installs it
        return inspect.iscoroutinefunction(client.ping)
    return isinstance(client, redis.asyncio.Redis) or inspect.iscoroutinefunction(client.ping)


def _where(client: Any) -> str:
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    host, port = kwargs.get("host"), kwargs.get("port")
    return f" at {host}:{port}" if host else ""


def redis_ready(
    target: object, *, name: str = "redis", timeout: float = DEFAULT_TIMEOUT, critical: bool = True
) -> HealthCheck:
    """Redis answers ``PING``.

    Args:
        target: A ``redis://`` URL (a client is made once, with socket
            timeouts of ``timeout`` seconds), a ``redis.Redis`` (pinged in a
            worker thread) or a ``redis.asyncio.Redis`` (pinged in the event
            loop by :meth:`~HealthRegistry.arun`; asyncio only).
        name: The check's name.
        timeout: Seconds to wait for ``PONG``.
        critical: Whether ``failing`` makes the service not ready.

    Examples:
        >>> check = redis_ready("redis://:s3cret@cache.internal:6379/0", timeout=0.5)
        >>> check.name, check.timeout
        ('redis', 0.5)
    """
    client = _redis_client(target, timeout)
    where = _where(client)
    if _is_async_client(client):

        async def aprobe() -> str:
            await client.ping()
            return f"PONG{where}"

        return HealthCheck(name, aprobe, timeout=timeout, critical=critical)

    def probe() -> str:
        client.ping()
        return f"PONG{where}"

    return HealthCheck(name, probe, timeout=timeout, critical=critical)


_BREAKER_STATUS = {
    "closed": "ok",
    "forced_closed": "ok",
    "half_open": "degraded",
    "open": "failing",
    "forced_open": "failing",
}


def _describe(stats: CircuitStatistics) -> str:
    if stats.state == "open" and stats.retry_after is not None:
        return f"{stats.name} (retry in {stats.retry_after:.0f} s)"
    return stats.name


def breakers_closed(
    *breakers: CircuitBreaker | CircuitBreakerRegistry,
    name: str = "breakers",
    timeout: float = DEFAULT_TIMEOUT,
    critical: bool = True,
) -> HealthCheck:
    """Every circuit breaker is closed: ``degraded`` while one is half-open, ``failing`` if open.

    A :class:`~resilient_pipeline.breaker.CircuitBreakerRegistry` counts as
    every keyed breaker it holds at the time of the probe, and a breaker as
    itself plus every breaker its ``for_key`` made. The detail names
    the breakers that are not closed.

    Examples:
        >>> from resilient_pipeline import CircuitBreaker
        >>> from resilient_pipeline.health import HealthRegistry
        >>> ads = CircuitBreaker(name="ads-api")
        >>> registry = HealthRegistry([breakers_closed(ads)], cache_ttl=0)
        >>> ads.force_open()
        >>> result = registry.run().result("breakers")
        >>> result.status, result.detail
        ('failing', 'open: ads-api')
    """
    for breaker in breakers:
        if not isinstance(breaker, (CircuitBreaker, CircuitBreakerRegistry)):
            raise ConfigurationError.for_option(
                "breakers", breaker, "must be CircuitBreaker or CircuitBreakerRegistry objects"
            )
    if not breakers:
        raise ConfigurationError.for_option("breakers", (), "give at least one breaker")

    def probe() -> HealthOutcome:
        stats: list[CircuitStatistics] = []
        for breaker in breakers:
            if isinstance(breaker, CircuitBreakerRegistry):
                stats.extend(breaker.all_statistics())
            else:
                stats.append(breaker.statistics())
                stats.extend(breaker.keyed_statistics())  # a template's for_key breakers
        opened = [_describe(s) for s in stats if _BREAKER_STATUS[s.state] == "failing"]
        trial = [s.name for s in stats if _BREAKER_STATUS[s.state] == "degraded"]
        parts = [f"open: {', '.join(opened)}"] if opened else []
        parts += [f"half-open: {', '.join(trial)}"] if trial else []
        if opened:
            return HealthOutcome("failing", "; ".join(parts))
        if trial:
            return HealthOutcome("degraded", "; ".join(parts))
        return HealthOutcome("ok", f"{len(stats)} closed")

    return HealthCheck(name, probe, timeout=timeout, critical=critical)


def _seconds(option: str, value: float | dt.timedelta) -> float:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    return number(gt=0, finite=True).check(option, value)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def ledger_fresh(
    ledger: PartitionLedger,
    source: str,
    *,
    max_age: float | dt.timedelta,
    name: str | None = None,
    clock: Clock | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    critical: bool = True,
) -> HealthCheck:
    """The ledger recorded a success for ``source`` within the last ``max_age``.

    The age is measured from the latest ``updated_at`` of the source's
    ``succeeded`` partitions. ``failing`` when that is older than
    ``max_age`` or when no partition of the source ever succeeded. It reads
    the source's ledger rows (:meth:`~resilient_pipeline.ledger.PartitionLedger.records`),
    so the registry's ``cache_ttl`` keeps probes from re-reading them each time.

    Args:
        ledger: The partition ledger.
        source: The source whose freshness is checked.
        max_age: Seconds (or a ``timedelta``) since the last success.
        name: The check's name (default ``"<source>_fresh"``).
        clock: Where "now" comes from (default: the ledger's clock).
        timeout: Seconds to wait for the ledger.
        critical: Whether ``failing`` makes the service not ready.

    Examples:
        >>> from resilient_pipeline import SQLiteStore, PartitionLedger
        >>> ledger = PartitionLedger(SQLiteStore(":memory:"))
        >>> check = ledger_fresh(ledger, "meta_ads", max_age=dt.timedelta(hours=26))
        >>> check.name
        'meta_ads_fresh'
    """
    if not isinstance(ledger, PartitionLedger):
        raise ConfigurationError.for_option("ledger", ledger, "must be a PartitionLedger")
    non_empty_str().check("source", source)
    bound = _seconds("max_age", max_age)

    def probe() -> HealthOutcome:
        now = resolve_clock(clock if clock is not None else ledger.clock).time()
        times = [
            r.updated_at
            for r in ledger.records(source)
            if r.status == "succeeded" and r.updated_at is not None
        ]
        if not times:
            return HealthOutcome("failing", f"{source}: no partition has succeeded yet")
        last = max(times)
        at = dt.datetime.fromtimestamp(last, dt.timezone.utc).isoformat(timespec="seconds")
        age = max(0.0, now - last)
        detail = f"{source}: last partition succeeded {_age(age)} ago ({at}); bound {_age(bound)}"
        return HealthOutcome("failing" if age > bound else "ok", detail)

    return HealthCheck(
        name if name is not None else f"{source}_fresh", probe, timeout=timeout, critical=critical
    )


def _judge_report(report: CheckReport) -> HealthOutcome:
    bad = [r for r in report.results if r.status != "passed"]
    serious = [r for r in bad if severity_rank(r.severity) >= severity_rank("error")]
    named = ", ".join(f"{r.name} [{r.severity}, {r.status}]" for r in (serious or bad))
    if serious:
        return HealthOutcome("failing", f"{report.suite}: {named}")
    if bad:
        return HealthOutcome("degraded", f"{report.suite}: {named}")
    return HealthOutcome("ok", f"{report.suite}: {len(report.results)} passed")


def checks_passing(
    source: CheckSuite | CheckReport | Callable[[], CheckReport | None],
    *,
    params: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    name: str = "checks",
    timeout: float = 5.0,
    critical: bool = True,
) -> HealthCheck:
    """No ``error`` or ``critical`` consistency check failed (or could not run).

    ``failing`` when one did, ``degraded`` when only ``info``/``warning``
    checks did; the detail names them.

    Args:
        source: A :class:`~resilient_pipeline.checks.CheckSuite` (run on each
            probe, with ``params``), a :class:`~resilient_pipeline.checks.CheckReport`
            (the last run's), or a function returning the latest report
            (``None``: no run yet, ``degraded``).
        params: The suite's params, or a function returning them per probe
            (``lambda: {"day": dt.date.today()}``).
        name: The check's name.
        timeout: Seconds to wait for the suite.
        critical: Whether ``failing`` makes the service not ready.

    Examples:
        >>> from resilient_pipeline.checks import CheckReport, CheckResult
        >>> from resilient_pipeline.health import HealthRegistry
        >>> report = CheckReport(results=(
        ...     CheckResult(name="spend_complete", severity="error", status="failed",
        ...                 message="3 rows"),
        ... ), suite="nightly")
        >>> HealthRegistry([checks_passing(report)]).run().result("checks").detail
        'nightly: spend_complete [error, failed]'
    """
    if params is not None and not (callable(params) or isinstance(params, Mapping)):
        raise ConfigurationError.for_option("params", params, "must be a mapping or a callable")
    if isinstance(source, CheckSuite):
        suite = source

        def probe() -> HealthOutcome:
            given = params() if callable(params) else params
            return _judge_report(suite.run(given))

    elif isinstance(source, CheckReport):
        report = source

        def probe() -> HealthOutcome:
            return _judge_report(report)

    elif callable(source):
        latest = source

        def probe() -> HealthOutcome:
            found = latest()
            if found is None:
                return HealthOutcome("degraded", "no check report yet")
            if not isinstance(found, CheckReport):
                raise TypeError(f"the report function returned {type(found).__name__}")
            return _judge_report(found)

    else:
        raise ConfigurationError.for_option(
            "source", source, "must be a CheckSuite, a CheckReport or a function returning one"
        )
    return HealthCheck(name, probe, timeout=timeout, critical=critical)
