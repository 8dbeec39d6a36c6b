"""Contract tests: every circuit-breaker store behaves the same (memory and Redis)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from resilient_pipeline import CircuitBreaker, CircuitOpenError, ConsecutiveFailures, OpenDuration
from resilient_pipeline.breaker import BreakerStore, FailureRate, HalfOpen
from resilient_pipeline.breaker._memory import MemoryBreakerStore
from resilient_pipeline.testing import FakeClock


class Down(ConnectionError):
    """The upstream failed."""


class Harness:
    """A store, a fake clock, and a way to move both the local and the store's time."""

    def __init__(self, store: Any, clock: FakeClock) -> None:
        self.store = store
        self.clock = clock

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if hasattr(self.store, "_skew"):
            self.store._skew += seconds  # the Redis server's clock, moved for the test

    def breaker(self, **options: Any) -> CircuitBreaker:
        options.setdefault("trip", ConsecutiveFailures(threshold=3))
        options.setdefault("open_duration", OpenDuration(seconds=10))
        return CircuitBreaker(name="ads", store=self.store, clock=self.clock, **options)


@pytest.fixture(params=["memory", "redis"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """The same contract, against each store."""
    if request.param == "memory":
        yield Harness(MemoryBreakerStore(), FakeClock())
        return
    import redis

    from resilient_pipeline.breaker._redis import RedisBreakerStore

    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    client = redis.Redis.from_url(url)
    # sync_interval=0: every call reads the shared state, so the contract is exact.
    yield Harness(RedisBreakerStore(client, prefix=prefix, sync_interval=0), FakeClock())
    client.close()


def run(breaker: CircuitBreaker, fn: Callable[[], object]) -> str:
    try:
        breaker.call(fn)
    except CircuitOpenError:
        return "rejected"
    except Down:
        return "failed"
    return "ok"


def fail() -> None:
    raise Down("down")


def ok() -> str:
    return "ok"


def trip(breaker: CircuitBreaker, times: int = 3) -> None:
    for _ in range(times):
        run(breaker, fail)


def test_store_satisfies_the_protocol(harness: Harness) -> None:
    """Every store is a BreakerStore."""
    assert isinstance(harness.store, BreakerStore)


def test_trips_after_threshold_and_reports_retry_after(harness: Harness) -> None:
    """Three failures open the circuit; the rejection says when to come back."""
    breaker = harness.breaker()
    trip(breaker, 2)
    assert "closed" == breaker.state
    trip(breaker, 1)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert 10.0 == pytest.approx(info.value.retry_after, abs=0.5)
    stats = breaker.statistics()
    assert ("open", 1) == (stats.state, stats.openings)
    assert stats.opened_at is not None


def test_half_open_admits_exactly_the_permits(harness: Harness) -> None:
    """With two permits, the third concurrent caller is rejected."""
    breaker = harness.breaker(half_open=HalfOpen(permits=2, success_threshold=2))
    trip(breaker)
    harness.advance(10)
    backend = breaker._backend
    tickets = [backend.admit(harness.clock) for _ in range(3)]
    assert [True, True, False] == [isinstance(t, int) for t in tickets]
    assert 2 == breaker.statistics().permits_in_use


def test_successful_trials_close_and_a_failed_one_reopens(harness: Harness) -> None:
    """Trials decide: success closes, failure re-opens with a longer open period."""
    breaker = harness.breaker(open_duration=OpenDuration(seconds=10, multiplier=2))
    trip(breaker)
    harness.advance(10)
    assert "failed" == run(breaker, fail)
    stats = breaker.statistics()
    assert ("open", 2) == (stats.state, stats.openings)
    assert 20.0 == pytest.approx(stats.retry_after, abs=0.5)
    harness.advance(20)
    assert "ok" == run(breaker, ok)
    assert "closed" == breaker.state


def test_expired_lease_frees_the_slot_and_the_late_result_is_ignored(harness: Harness) -> None:
    """A trial that outlives permit_ttl loses its permit; its late failure changes nothing."""
    breaker = harness.breaker(half_open=HalfOpen(permit_ttl=5, success_threshold=1))
    trip(breaker)
    harness.advance(10)
    backend = breaker._backend
    stale = backend.admit(harness.clock)
    assert isinstance(stale, int)
    assert not isinstance(backend.admit(harness.clock), int)
    harness.advance(6)
    assert "ok" == run(breaker, ok)
    backend.record(stale, 1, harness.clock, None)
    assert "closed" == breaker.state


def test_manual_control(harness: Harness) -> None:
    """force_open, force_closed and reset act on the shared state."""
    breaker = harness.breaker()
    breaker.force_open()
    assert ("forced_open", "rejected") == (breaker.state, run(breaker, ok))
    breaker.force_closed()
    trip(breaker, 5)
    assert "forced_closed" == breaker.state
    breaker.reset()
    assert "closed" == breaker.state


def test_failure_rate_count_window(harness: Harness) -> None:
    """A count window trips on the rate once minimum_calls are in."""
    breaker = harness.breaker(trip=FailureRate(threshold=0.5, window_calls=4, minimum_calls=4))
    for fn in (ok, fail, ok, ok, ok, fail):
        run(breaker, fn)
    stats = breaker.statistics()
    assert ("closed", 0.25, 4) == (stats.state, stats.failure_rate, stats.window_calls)
    run(breaker, fail)
    assert "open" == breaker.state


def test_failure_rate_time_window(harness: Harness) -> None:
    """A time window forgets calls older than window_seconds."""
    breaker = harness.breaker(trip=FailureRate(threshold=0.5, window_seconds=60, minimum_calls=3))
    run(breaker, fail)
    run(breaker, fail)
    harness.advance(63)
    for fn in (fail, ok, ok):
        run(breaker, fn)
    assert ("closed", 3) == (breaker.state, breaker.statistics().window_calls)
    run(breaker, fail)
    assert "open" == breaker.state


def test_retry_after_hint_extends_the_open_period(harness: Harness) -> None:
    """A failure that says Retry-After: 120 keeps the circuit open 120 s."""

    class Throttled(Exception):
        retry_after = 120

    def throttled() -> None:
        raise Throttled

    breaker = harness.breaker(trip=ConsecutiveFailures(threshold=1))
    with pytest.raises(Throttled):
        breaker.call(throttled)
    assert 120.0 == pytest.approx(breaker.statistics().retry_after, abs=0.5)


def test_two_breakers_with_one_name_share_state(harness: Harness) -> None:
    """Breakers bound to the same store and name trip together."""
    first, second = harness.breaker(), harness.breaker()
    trip(first)
    assert "rejected" == run(second, ok)


@pytest.mark.anyio
async def test_async_forms_use_the_store(harness: Harness, anyio_backend: str) -> None:
    """acall and async manual control work against the store."""
    # redis-py's asyncio client runs on asyncio only; under trio the store's
    # default path (the sync client in a worker thread) is what is tested.
    native_async = hasattr(harness.store, "aclient") and anyio_backend == "asyncio"
    if native_async:
        import redis.asyncio

        url = harness.store.client.connection_pool.connection_kwargs
        harness.store.aclient = redis.asyncio.Redis(host=url["host"], port=url["port"])
    breaker = harness.breaker(trip=ConsecutiveFailures(threshold=1))

    async def afail() -> None:
        raise Down

    with pytest.raises(Down):
        await breaker.acall(afail)
    with pytest.raises(CircuitOpenError):
        await breaker.acall(anyio.sleep, 0)
    await breaker.areset()
    assert "closed" == (await breaker.astatistics()).state
    if native_async:
        await harness.store.aclient.aclose()
