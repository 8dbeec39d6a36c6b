"""Built-in checks against real servers: PostgreSQL, Redis, breakers, the ledger, check reports."""

from __future__ import annotations

import datetime as dt
import time

import anyio
import pytest

from resilient_pipeline.breaker import (
    CircuitBreaker,
    CircuitBreakerRegistry,
    ConsecutiveFailures,
)
from resilient_pipeline.checks import Check, CheckContext, CheckReport, CheckResult, CheckSuite, Row
from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.health import (
    HealthRegistry,
    HealthResult,
    breakers_closed,
    checks_passing,
    database_ready,
    ledger_fresh,
    redis_ready,
)
from resilient_pipeline.health._registry import HealthCheck
from resilient_pipeline.ledger import Partition, PartitionLedger
from resilient_pipeline.storage import PostgresStore, SQLiteStore, unit_of_work
from resilient_pipeline.testing import FakeClock

TIMEOUT = 0.2
SLACK = 2.0


def run_one(check: HealthCheck) -> HealthResult:
    """The check's result from a registry of its own, uncached."""
    return HealthRegistry([check], cache_ttl=0).run().result(check.name)


# ------------------------------------------------------------------ database
@pytest.mark.postgres
def test_database_ready_on_real_postgres(postgres_dsn: str) -> None:
    """The database check passes on a reachable PostgreSQL and says which dialect answered."""
    store = PostgresStore(postgres_dsn)
    try:
        result = run_one(database_ready(store))
    finally:
        store.close()
    assert ("ok", "postgres answered SELECT 1") == (result.status, result.detail)


def test_database_ready_on_sqlite() -> None:
    """The database check passes on SQLite too."""
    result = run_one(database_ready(SQLiteStore(":memory:"), name="db"))
    assert ("db", "ok", "sqlite answered SELECT 1") == (result.name, result.status, result.detail)


@pytest.mark.postgres
def test_database_down_is_failing_without_the_password(closed_port: int) -> None:
    """A PostgreSQL that refuses connections is failing; the DSN's password is masked."""
    store = PostgresStore(f"postgresql://app:s3cret-pw@127.0.0.1:{closed_port}/kpi", timeout=1)
    try:
        result = run_one(database_ready(store, timeout=5))
    finally:
        store.close()
    assert "failing" == result.status
    assert "s3cret-pw" not in result.detail
    assert "StoreError" in result.detail


@pytest.mark.postgres
def test_database_hanging_is_failing_within_timeout(hanging_port: int) -> None:
    """A server that accepts and never answers makes the check failing within its timeout."""
    store = PostgresStore(f"postgresql://app:pw@127.0.0.1:{hanging_port}/kpi", timeout=1)
    started = time.perf_counter()
    result = run_one(database_ready(store, timeout=TIMEOUT))
    assert time.perf_counter() - started < SLACK
    assert ("failing", f"no answer within {TIMEOUT:g} s") == (result.status, result.detail)


def test_database_ready_refuses_a_non_store() -> None:
    """Something that is not a store is refused when the check is made."""
    with pytest.raises(ConfigurationError) as info:
        database_ready("postgresql://db/kpi")  # type: ignore[arg-type]
    assert "store" == info.value.option


# --------------------------------------------------------------------- redis
@pytest.mark.redis
def test_redis_ready_on_real_redis_by_url_and_client(redis_url: str) -> None:
    """PING answered: by URL (a client of its own) and through a given redis.Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        results = [run_one(redis_ready(redis_url)), run_one(redis_ready(client, name="r2"))]
    finally:
        client.close()
    assert [("ok", "PONG at 127.0.0.1:6379")] * 2 == [(r.status, r.detail) for r in results]


@pytest.mark.redis
def test_redis_ready_with_an_async_client(redis_url: str) -> None:
    """A redis.asyncio client is pinged in the event loop (asyncio)."""
    import redis.asyncio

    async def main() -> HealthResult:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            report = await HealthRegistry([redis_ready(client)]).arun()
        finally:
            await client.aclose()
        return report.result("redis")

    result = anyio.run(main)
    assert ("ok", "PONG at 127.0.0.1:6379") == (result.status, result.detail)


def test_redis_down_is_failing_without_the_password(closed_port: int) -> None:
    """A refused connection is failing at once; the URL's password is not in the detail."""
    result = run_one(redis_ready(f"redis://:hunter2@127.0.0.1:{closed_port}/0", timeout=5))
    assert "failing" == result.status
    assert "ConnectionError" in result.detail
    assert "hunter2" not in result.detail
    assert result.latency < SLACK


def test_redis_hanging_is_failing_within_timeout(hanging_port: int) -> None:
    """A server that accepts and never answers PING: failing within the timeout."""
    started = time.perf_counter()
    result = run_one(redis_ready(f"redis://127.0.0.1:{hanging_port}/0", timeout=TIMEOUT))
    assert time.perf_counter() - started < SLACK
    assert "failing" == result.status
    # The client's own socket timeout equals the check's: either may fire first.
    assert result.detail in {
        f"no answer within {TIMEOUT:g} s",
        "TimeoutError: Timeout reading from socket",
    }
    assert TIMEOUT * 0.9 <= result.latency


def test_redis_bad_url_never_shows_the_password() -> None:
    """An unparsable URL is a ConfigurationError with the password masked, and no chained cause."""
    with pytest.raises(ConfigurationError) as info:
        redis_ready("mysql://:hunter2@db/0")
    assert "hunter2" not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


# ------------------------------------------------------------------ breakers
@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def open_breaker(breaker: CircuitBreaker) -> None:
    def fail() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        breaker.call(fail)


def test_breakers_closed_open_and_half_open(clock: FakeClock) -> None:
    """Closed is ok, half-open degraded, open failing; the detail names those not closed."""
    ads = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=1), clock=clock)
    crm = CircuitBreaker(name="crm", trip=ConsecutiveFailures(threshold=1), clock=clock)
    check = breakers_closed(ads, crm)
    assert ("ok", "2 closed") == (run_one(check).status, run_one(check).detail)
    open_breaker(ads)
    failing = run_one(check)
    assert ("failing", "open: ads (retry in 60 s)") == (failing.status, failing.detail)
    clock.advance(60)
    degraded = run_one(check)
    assert ("degraded", "half-open: ads") == (degraded.status, degraded.detail)
    open_breaker(crm)
    both = run_one(check)
    assert ("failing", "open: crm (retry in 60 s); half-open: ads") == (both.status, both.detail)
    crm.force_closed()
    ads.reset()
    assert "ok" == run_one(check).status


def test_breakers_closed_counts_every_key_of_a_registry(clock: FakeClock) -> None:
    """A registry's keyed breakers are all counted, the open ones named."""
    keyed = CircuitBreakerRegistry(
        template=CircuitBreaker(name="api", trip=ConsecutiveFailures(threshold=1), clock=clock)
    )
    keyed.get("meta")
    open_breaker(keyed.get("google"))
    keyed.get("tiktok").force_open()
    result = run_one(breakers_closed(keyed))
    assert ("failing", "open: api[google] (retry in 60 s), api[tiktok]") == (
        result.status,
        result.detail,
    )


def test_breakers_closed_counts_the_keyed_breakers_of_a_template(clock: FakeClock) -> None:
    """A template's for_key breakers (one per account) are counted, the open one named."""
    template = CircuitBreaker(name="meta", trip=ConsecutiveFailures(threshold=1), clock=clock)
    template.for_key("1")
    template.for_key("7").force_open()
    result = run_one(breakers_closed(template))
    assert ("failing", "open: meta[7]") == (result.status, result.detail)
    template.for_key("7").reset()
    result = run_one(breakers_closed(template))
    assert ("ok", "3 closed") == (result.status, result.detail)


@pytest.mark.parametrize("given", [(), ("ads",)])
def test_breakers_closed_refuses_bad_input(given: tuple[object, ...]) -> None:
    """No breaker, or something else than a breaker, is a ConfigurationError."""
    with pytest.raises(ConfigurationError) as info:
        breakers_closed(*given)  # type: ignore[arg-type]
    assert "breakers" == info.value.option


# ---------------------------------------------------------------- freshness
def test_ledger_fresh_with_an_injected_clock(clock: FakeClock) -> None:
    """Fresh until max_age after the last success; failing after, and when nothing succeeded."""
    ledger = PartitionLedger(SQLiteStore(":memory:"), clock=clock)
    check = ledger_fresh(ledger, "meta_ads", max_age=dt.timedelta(hours=2))
    assert ("failing", "meta_ads: no partition has succeeded yet") == (
        run_one(check).status,
        run_one(check).detail,
    )
    ledger.plan("meta_ads", [1], periods=["2026-01-01"])
    ledger.fail(Partition("meta_ads", 1, "2026-01-01"), ConnectionError("down"))
    assert "failing" == run_one(check).status  # a failure is not a success
    with unit_of_work(ledger.store) as tx:
        ledger.succeed(tx, Partition("meta_ads", 2, "2026-01-01"), rows=[{"spend": 1}])
    succeeded_at = clock.time()
    clock.advance(7200)
    fresh = run_one(check)
    assert (
        "ok",
        "meta_ads: last partition succeeded 2.0 h ago (2026-01-01T00:00:00+00:00); bound 2.0 h",
    ) == (fresh.status, fresh.detail)
    clock.advance(0.5)
    stale = run_one(check)
    assert "failing" == stale.status
    assert dt.datetime.fromtimestamp(succeeded_at, dt.timezone.utc).isoformat() in stale.detail
    other = run_one(ledger_fresh(ledger, "google_ads", max_age=60, clock=clock))
    assert ("google_ads_fresh", "failing") == (other.name, other.status)


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"source": "s", "max_age": 0}, "max_age"),
        ({"source": "s", "max_age": dt.timedelta(0)}, "max_age"),
        ({"source": "", "max_age": 1}, "source"),
    ],
)
def test_ledger_fresh_refuses_bad_options(options: dict[str, object], option: str) -> None:
    """A non-positive bound or an empty source is refused, naming the option."""
    ledger = PartitionLedger(SQLiteStore(":memory:"))
    with pytest.raises(ConfigurationError) as info:
        ledger_fresh(ledger, **options)  # type: ignore[arg-type]
    assert option == info.value.option


# ------------------------------------------------------------------- checks
def check_result(name: str, severity: str, status: str) -> CheckResult:
    return CheckResult(name=name, severity=severity, status=status, message="")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([("a", "error", "passed"), ("b", "info", "passed")], ("ok", "nightly: 2 passed")),
        (
            [("a", "warning", "failed"), ("b", "info", "errored")],
            ("degraded", "nightly: a [warning, failed], b [info, errored]"),
        ),
        (
            [("a", "warning", "failed"), ("b", "error", "failed"), ("c", "critical", "errored")],
            ("failing", "nightly: b [error, failed], c [critical, errored]"),
        ),
    ],
)
def test_checks_passing_judges_a_report_by_severity(
    results: list[tuple[str, str, str]], expected: tuple[str, str]
) -> None:
    """error/critical failures fail it; only lesser ones degrade it; the detail names them."""
    report = CheckReport(results=tuple(check_result(*r) for r in results), suite="nightly")
    result = run_one(checks_passing(report))
    assert expected == (result.status, result.detail)


def test_checks_passing_runs_a_suite_with_params_each_probe() -> None:
    """A suite is run on each probe, with the params the callable gives then."""
    days: list[object] = []

    def body(rows: list[Row]) -> list[Row]:
        return [{"rows": 0}] if not rows else []

    def load(context: CheckContext) -> list[Row]:
        days.append(context.params["day"])
        return []

    suite = CheckSuite(
        checks=[Check.rows("has_rows", body, dataset="rows")], datasets={"rows": load}, name="daily"
    )
    day = [dt.date(2026, 11, 28)]
    check = checks_passing(suite, params=lambda: {"day": day[0]})
    first = run_one(check)
    day[0] = dt.date(2026, 11, 29)
    run_one(check)
    assert ("failing", "daily: has_rows [error, failed]") == (first.status, first.detail)
    assert [dt.date(2026, 11, 28), dt.date(2026, 11, 29)] == days


def test_checks_passing_from_a_latest_report_function() -> None:
    """A function giving the latest report: None is degraded, a wrong type failing."""
    latest: list[object] = [None]
    check = checks_passing(lambda: latest[0])  # type: ignore[arg-type,return-value]
    assert ("degraded", "no check report yet") == (run_one(check).status, run_one(check).detail)
    latest[0] = CheckReport(results=(check_result("a", "critical", "failed"),))
    assert "failing" == run_one(check).status
    latest[0] = "passed"
    assert ("failing", "TypeError: the report function returned str") == (
        run_one(check).status,
        run_one(check).detail,
    )


def test_checks_passing_refuses_bad_input() -> None:
    """Neither a suite, a report nor a function; params neither mapping nor callable."""
    with pytest.raises(ConfigurationError) as source:
        checks_passing(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as params:
        checks_passing(CheckReport(results=()), params=[1])  # type: ignore[arg-type]
    assert ("source", "params") == (source.value.option, params.value.option)
