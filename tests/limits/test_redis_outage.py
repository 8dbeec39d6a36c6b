"""Redis limiters when Redis is unreachable: on_unavailable, the typed error, the event."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from resilient_pipeline import CircuitBreaker, ConfigurationError, ConsecutiveFailures
from resilient_pipeline import retry_with_backoff as retry
from resilient_pipeline.exceptions import (
    BulkheadFullError,
    LimitStoreUnavailableError,
    RateLimitedError,
)
from resilient_pipeline.limits import LimitStoreFailed, RedisBulkhead, RedisRateLimiter
from resilient_pipeline.retry import RetryExhausted
from resilient_pipeline.testing import FakeClock, capture_events

redis = pytest.importorskip("redis")

from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

CLOSED_PORT = 1  # nobody listens there


def no_retries() -> Any:
    return Retry(NoBackoff(), 0)


def unreachable() -> Any:
    """A client for a closed port, without redis-py's own connection retries."""
    return redis.Redis(
        host="127.0.0.1", port=CLOSED_PORT, socket_connect_timeout=0.2, retry=no_retries()
    )


class Switch:
    """A client on the real server; the server can go away mid-use and come back."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, retry=no_retries())
        self._kwargs = self.client.connection_pool.connection_kwargs
        self._port = self._kwargs["port"]

    def down(self) -> None:
        """Drop every connection; reconnecting now fails."""
        self._move(CLOSED_PORT)

    def up(self) -> None:
        self._move(self._port)

    def _move(self, port: int) -> None:
        # New connections are made from these kwargs once the old ones are gone.
        self._kwargs["port"] = port
        self.client.connection_pool.disconnect()
        self.client.connection_pool.reset()


@pytest.fixture
def switch(redis_url: str) -> Iterator[Switch]:
    switch = Switch(redis_url)
    yield switch
    switch.up()
    switch.client.close()


def outcome(call: Callable[[], object]) -> str:
    """What one call did, as a word."""
    try:
        call()
    except RateLimitedError:
        return "rate limited"
    except BulkheadFullError:
        return "full"
    except LimitStoreUnavailableError:
        return "unavailable"
    return "admitted"


def store_failures(events: list[Any]) -> list[tuple[str, str, str]]:
    return [
        (e.source, e.fallback, e.error.split(":")[0])
        for e in events
        if isinstance(e, LimitStoreFailed)
    ]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("local", ["admitted", "admitted", "rate limited", "rate limited"]),
        ("reject", ["unavailable"] * 4),
        ("allow", ["admitted"] * 4),
    ],
)
def test_unreachable_limiter_follows_on_unavailable(policy: str, expected: list[str]) -> None:
    """A closed port: a local bucket, a typed refusal, or no limit; one event per outage."""
    dead = unreachable()
    limiter = RedisRateLimiter(
        client=dead,
        rate=1,
        per=3600,
        burst=2,
        on_limit="reject",
        name="quota",
        clock=FakeClock(),
        on_unavailable=policy,  # type: ignore[arg-type]
    )
    with capture_events() as events:
        outcomes = [outcome(lambda: limiter.acquire("acct")) for _ in range(4)]
    assert expected == outcomes
    assert [("quota", policy, "ConnectionError")] == store_failures(events)
    dead.close()


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("local", ["admitted", "full", "admitted after release"]),
        ("reject", ["unavailable", "unavailable", "unavailable"]),
        ("allow", ["admitted", "admitted", "admitted after release"]),
    ],
)
def test_unreachable_bulkhead_follows_on_unavailable(policy: str, expected: list[str]) -> None:
    """A closed port: an in-process bulkhead, a typed refusal, or no limit; one event."""
    dead = unreachable()
    bulkhead = RedisBulkhead(
        client=dead,
        max_concurrent=1,
        name="slots",
        clock=FakeClock(),
        on_unavailable=policy,  # type: ignore[arg-type]
    )
    leases: list[str] = []
    with capture_events() as events:
        first = outcome(lambda: leases.append(bulkhead.acquire()))
        second = outcome(lambda: leases.append(bulkhead.acquire()))
        for lease in leases:
            bulkhead.release(lease)
        third = outcome(lambda: leases.append(bulkhead.acquire()))
    third += " after release" if third == "admitted" else ""
    assert expected == [first, second, third]
    assert [("slots", policy, "ConnectionError")] == store_failures(events)
    dead.close()


def test_redis_is_tried_again_after_recheck_interval() -> None:
    """Within recheck_interval Redis is not contacted; after it, it is, in the same outage."""
    dead, clock = unreachable(), FakeClock()
    limiter = RedisRateLimiter(
        client=dead, rate=10, on_unavailable="reject", recheck_interval=5, clock=clock
    )
    causes = []
    with capture_events() as events:
        for advance in (0, 4.9, 0.1, 1):
            clock.advance(advance)
            with pytest.raises(LimitStoreUnavailableError) as info:
                limiter.acquire()
            causes.append(type(info.value.__cause__).__name__)
    # A cause only when this call reached for Redis and failed.
    assert ["ConnectionError", "NoneType", "ConnectionError", "NoneType"] == causes
    assert 1 == len(store_failures(events))
    dead.close()


LIMITS: dict[str, Callable[..., RedisRateLimiter | RedisBulkhead]] = {
    "limiter": lambda **kw: RedisRateLimiter(rate=10, **kw),
    "bulkhead": lambda **kw: RedisBulkhead(max_concurrent=2, **kw),
}


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_refusal_is_not_retried_and_not_an_upstream_failure(kind: str) -> None:
    """The typed refusal: retry stops at once (even with a deadline), a breaker ignores it."""
    dead, clock = unreachable(), FakeClock()
    limit = LIMITS[kind](client=dead, on_unavailable="reject", clock=clock, name="ads")
    breaker = CircuitBreaker(name="ads", clock=clock, trip=ConsecutiveFailures(threshold=1))
    attempts: list[int] = []
    ran: list[int] = []

    def count(fn: Callable[[], None]) -> Callable[[], None]:
        def counted() -> None:
            attempts.append(1)
            fn()

        return counted

    def call() -> None:
        ran.append(1)

    guarded: Callable[[], None] = breaker(limit(call))
    fetch = retry(max_attempts=5, base_delay=0, deadline=60, clock=clock)(count(guarded))

    with capture_events() as events, pytest.raises(LimitStoreUnavailableError) as info:
        fetch()
    assert "ads" == info.value.name
    assert (1, 0) == (len(attempts), len(ran))
    assert ["rejected"] == [e.reason for e in events if isinstance(e, RetryExhausted)]
    stats = breaker.statistics()
    assert ("closed", 0, 1) == (stats.state, stats.failures, stats.ignored)
    dead.close()


@pytest.mark.anyio
async def test_async_calls_get_the_typed_error() -> None:
    """Async decorated functions see the same refusal (asyncio and trio)."""
    dead = unreachable()
    limiter = RedisRateLimiter(client=dead, rate=10, on_unavailable="reject", name="quota")

    @limiter
    async def fetch() -> int:
        await anyio.lowlevel.checkpoint()
        return 1

    with pytest.raises(LimitStoreUnavailableError):
        await fetch()
    dead.close()


@pytest.mark.redis
def test_limiter_falls_back_when_redis_goes_away_and_returns_to_it(
    switch: Switch, redis_prefix: str
) -> None:
    """Mid-use outage: a local bucket takes over, then the Redis bucket again; one event each."""
    clock = FakeClock()
    limiter = RedisRateLimiter(
        client=switch.client,
        prefix=redis_prefix,
        rate=1,
        per=3600,
        burst=2,
        on_limit="reject",
        name="quota",
        clock=clock,
        recheck_interval=1,
    )

    def acquire() -> str:
        return outcome(lambda: limiter.acquire("acct"))

    with capture_events() as events:
        in_redis = [acquire(), acquire(), acquire()]  # Redis's bucket is now empty
        switch.down()
        local = [acquire(), acquire(), acquire()]  # a fresh in-process bucket
        switch.up()
        still_local = [acquire()]  # within recheck_interval: Redis not asked yet
        clock.advance(1)
        back = [acquire()]  # Redis's bucket: still empty
        switch.down()
        clock.advance(1)
        again = [acquire()]  # the local bucket is empty too
    assert ["admitted", "admitted", "rate limited"] == in_redis
    assert ["admitted", "admitted", "rate limited"] == local
    assert (["rate limited"], ["rate limited"], ["rate limited"]) == (still_local, back, again)
    assert [("quota", "local", "ConnectionError")] * 2 == store_failures(events)


@pytest.mark.redis
def test_bulkhead_lease_outlives_an_outage_without_hiding_the_result(
    switch: Switch, redis_prefix: str
) -> None:
    """Redis gone while a call holds a lease: the result comes back, the lease expires later."""
    clock = FakeClock()
    bulkhead = RedisBulkhead(
        client=switch.client,
        prefix=redis_prefix,
        max_concurrent=1,
        lease_ttl=30,
        name="slots",
        clock=clock,
    )

    @bulkhead
    def fetch() -> str:
        switch.down()
        return "rows"

    with capture_events() as events:
        assert "rows" == fetch()
    assert [("slots", "local", "ConnectionError")] == store_failures(events)
    switch.up()
    # The release could not reach Redis: the lease is still held until lease_ttl.
    assert 1 == bulkhead.in_flight()


@pytest.mark.redis
def test_a_lease_taken_before_the_outage_is_given_back_when_redis_returns(
    switch: Switch, redis_prefix: str
) -> None:
    """release() reaches for Redis even within recheck_interval: the slot is not lost."""
    clock = FakeClock()
    bulkhead = RedisBulkhead(
        client=switch.client, prefix=redis_prefix, max_concurrent=1, clock=clock, name="slots"
    )
    held = bulkhead.acquire()
    switch.down()
    stand_in = bulkhead.acquire()  # from the in-process bulkhead
    switch.up()
    bulkhead.release(stand_in)
    bulkhead.release(held)  # within recheck_interval, yet Redis is asked
    assert 0 == bulkhead.in_flight()


def test_bad_outage_options_name_the_option() -> None:
    """on_unavailable, recheck_interval and name are checked at construction."""
    dead = unreachable()
    bad: list[tuple[dict[str, Any], str]] = [
        ({"on_unavailable": "maybe"}, "on_unavailable"),
        ({"recheck_interval": -1}, "recheck_interval"),
        ({"name": ""}, "name"),
    ]
    for options, option in bad:
        for make in LIMITS.values():
            with pytest.raises(ConfigurationError) as info:
                make(client=dead, **options)
            assert option == info.value.option
    dead.close()
