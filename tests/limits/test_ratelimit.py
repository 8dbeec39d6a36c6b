"""Tests for ``RateLimiter`` and its pure ``TokenBucket`` core."""

from __future__ import annotations

import hashlib
import threading
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import ConfigurationError, RateLimiter
from resilient_pipeline.exceptions import RateLimitedError
from resilient_pipeline.limits import (
    RateLimitAdapted,
    RateLimitRejected,
    RateLimitWaited,
    TokenBucket,
    deadline_scope,
    default_quota,
)
from resilient_pipeline.testing import FakeClock, capture_events

calls = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=3, allow_nan=False),  # time since the previous call
        st.sampled_from([1.0, 1.0, 2.0, 0.5]),  # cost
        st.one_of(st.none(), st.tuples(st.integers(0, 5), st.floats(0, 5))),  # a slow-down
    ),
    max_size=60,
)


@given(
    rate=st.floats(min_value=0.1, max_value=50),
    burst=st.integers(min_value=2, max_value=10),
    schedule=calls,
)
def test_bucket_never_admits_more_than_rate_times_t_plus_burst(
    rate: float, burst: int, schedule: list[tuple[float, float, tuple[int, float] | None]]
) -> None:
    """Over every window of any schedule, admitted units <= rate * window + burst."""
    bucket = TokenBucket(rate, burst, now=0.0)
    now, admitted = 0.0, []
    for gap, cost, slow in schedule:
        now += gap
        if slow is not None:
            bucket.slow_down(now, remaining=slow[0], reset=slow[1])
        if bucket.take(now, cost) == 0.0:
            admitted.append((now, cost))
    for i, (start, _) in enumerate(admitted):
        total = 0.0
        for end, cost in admitted[i:]:
            total += cost
            assert total <= rate * (end - start) + burst + 1e-6


@given(rate=st.floats(min_value=0.1, max_value=50), gap=st.floats(min_value=0, max_value=10))
def test_waiting_the_announced_time_is_enough(rate: float, gap: float) -> None:
    """After sleeping exactly the wait the bucket announced, the token is there."""
    bucket = TokenBucket(rate, 1, now=0.0)
    assert 0.0 == bucket.take(0.0)
    wait = bucket.take(gap)
    assert bucket.take(gap + wait) == 0.0 or wait == 0.0


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -5}, "rate"),
        ({"rate": 1, "per": 0}, "per"),
        ({"rate": 1, "burst": 0}, "burst"),
        ({"rate": 1, "on_limit": "drop"}, "on_limit"),
        ({"rate": 1, "max_wait": -1}, "max_wait"),
        ({"rate": 1, "key": "account"}, "key"),
        ({"rate": 1, "max_keys": 0}, "max_keys"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], option: str) -> None:
    """Invalid limits are refused at construction, naming the option."""
    with pytest.raises(ConfigurationError) as info:
        RateLimiter(**options)  # type: ignore[arg-type]
    assert option == info.value.option


def test_cost_beyond_burst_is_refused() -> None:
    """A cost the bucket could never hold is a configuration error, not an endless wait."""
    with pytest.raises(ConfigurationError) as info:
        RateLimiter(rate=1, burst=2).acquire(cost=3)
    assert "cost" == info.value.option


def test_wait_mode_sleeps_on_the_clock() -> None:
    """In wait mode a call sleeps (on the clock) until its token is free."""
    clock = FakeClock()
    limiter = RateLimiter(rate=100, per=60, burst=1, clock=clock, name="ads")
    with capture_events() as events:
        for _ in range(3):
            limiter.acquire()
    assert [0.6, 0.6] == pytest.approx(clock.sleeps)
    assert 2 == len([e for e in events if isinstance(e, RateLimitWaited)])


def test_reject_mode_says_when_to_come_back() -> None:
    """In reject mode the error carries retry_after, the time until a token is free."""
    clock = FakeClock()
    limiter = RateLimiter(rate=4, burst=2, on_limit="reject", clock=clock, name="ads")
    limiter.acquire("acct-1")
    limiter.acquire("acct-1")
    with capture_events() as events, pytest.raises(RateLimitedError) as info:
        limiter.acquire("acct-1")
    shown = "sha256:" + hashlib.sha256(b"'acct-1'").hexdigest()[:12]
    assert (0.25, shown) == (info.value.retry_after, info.value.key)
    assert [0.25] == [e.retry_after for e in events if isinstance(e, RateLimitRejected)]
    assert [] == clock.sleeps


def test_waiting_never_goes_past_the_deadline_or_max_wait() -> None:
    """A wait longer than the shared deadline or max_wait becomes a RateLimitedError."""
    clock = FakeClock()
    limiter = RateLimiter(rate=1, burst=1, clock=clock)
    limiter.acquire()
    with deadline_scope(0.5, clock=clock), pytest.raises(RateLimitedError) as info:
        limiter.acquire()
    assert 1.0 == info.value.retry_after
    capped = RateLimiter(rate=1, burst=1, clock=clock, max_wait=0.5)
    capped.acquire()
    with pytest.raises(RateLimitedError):
        capped.acquire()
    assert [] == clock.sleeps


def test_keys_have_separate_buckets_and_old_ones_are_dropped() -> None:
    """Each key has its own bucket; beyond max_keys the least recently used is dropped."""
    clock = FakeClock()
    limiter = RateLimiter(rate=1, burst=1, on_limit="reject", clock=clock, max_keys=2)
    limiter.acquire("a")
    limiter.acquire("b")
    assert (0.0, 1.0) == (limiter.available("a"), limiter.available("never-seen"))
    limiter.acquire("c")  # drops "a", the least recently used
    limiter.acquire("a")
    with pytest.raises(RateLimitedError):
        limiter.acquire("c")


def test_decorator_uses_the_key_function() -> None:
    """The decorator takes one token from the bucket its key function picks."""
    clock = FakeClock()
    limiter = RateLimiter(
        rate=1, burst=1, on_limit="reject", clock=clock, key=lambda account, day: account
    )

    @limiter
    def fetch(account: str, day: str) -> str:
        return f"{account}/{day}"

    assert "a/1" == fetch("a", "1")
    assert "b/1" == fetch("b", "1")
    with pytest.raises(RateLimitedError):
        fetch("a", "2")


@pytest.mark.anyio
async def test_async_wait_sleeps_on_the_clock() -> None:
    """aacquire and async decorated functions wait on the clock too (asyncio and trio)."""
    clock = FakeClock()
    limiter = RateLimiter(rate=2, burst=1, clock=clock)

    @limiter
    async def fetch() -> int:
        return 1

    assert [1, 1, 1] == [await fetch() for _ in range(3)]
    assert [0.5, 0.5] == pytest.approx(clock.sleeps)


class TooManyRequests(Exception):
    """A 429 with a Retry-After header."""

    def __init__(self) -> None:
        super().__init__("429")
        self.response = type("Response", (), {"headers": {"retry-after": "30"}})()


def test_adaptive_retry_after_pauses_only_that_key() -> None:
    """A 429 with Retry-After pauses the key's bucket; other keys go on."""
    clock = FakeClock()
    limiter = RateLimiter(
        rate=10, clock=clock, adaptive=True, key=lambda account: account, name="ads"
    )

    @limiter
    def fetch(account: str) -> str:
        if account == "throttled" and not clock.sleeps:
            raise TooManyRequests
        return account

    with capture_events() as events, pytest.raises(TooManyRequests):
        fetch("throttled")
    assert [(0.0, 30.0)] == [
        (e.remaining, e.reset) for e in events if isinstance(e, RateLimitAdapted)
    ]
    assert "other" == fetch("other")
    assert [] == clock.sleeps
    assert "throttled" == fetch("throttled")
    assert sum(clock.sleeps) >= 30.0


def test_adaptive_quota_headers_spread_what_is_left() -> None:
    """Quota headers cap the bucket at what the server still allows in its window."""
    clock = FakeClock()
    limiter = RateLimiter(rate=100, clock=clock, adaptive=True)

    class Response:
        headers: ClassVar = {"x-ratelimit-remaining": "2", "x-ratelimit-reset": "10"}

    @limiter
    def fetch() -> Response:
        return Response()

    for _ in range(4):
        fetch()
    # Every response says "2 left for 10 s": the bucket drops to what is left
    # and refills at the server's pace, so the 4th call has to wait for it.
    assert 5.0 <= sum(clock.sleeps) <= 10.1


def test_own_rejections_are_not_taken_as_server_signals() -> None:
    """observe() ignores our own RejectedErrors, which carry retry_after too."""
    clock = FakeClock()
    limiter = RateLimiter(rate=10, clock=clock)
    limiter.observe(RateLimitedError("other", retry_after=60.0))
    limiter.acquire()
    assert [] == clock.sleeps


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"RateLimit-Remaining": "5", "RateLimit-Reset": "20"}, (5.0, 20.0)),
        ({"RateLimit": '"default";r=7;t=3'}, (7.0, 3.0)),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1767225660"}, (0.0, 60.0)),
        ({"x-ratelimit-remaining": "many", "x-ratelimit-reset": "3"}, None),
        ({"x-ratelimit-remaining": "3"}, None),
    ],
)
def test_default_quota_reads_the_common_headers(
    headers: dict[str, str], expected: tuple[float, float] | None
) -> None:
    """IETF, X- and epoch-reset forms are read; anything unreadable gives None."""
    holder = type("Response", (), {"headers": {k.lower(): v for k, v in headers.items()}})()
    assert expected == default_quota(holder, now=1_767_225_600.0)


def test_threads_share_one_bucket() -> None:
    """Many threads racing for one bucket get exactly burst tokens when time stands still."""
    limiter = RateLimiter(rate=1, burst=5, on_limit="reject", clock=FakeClock())
    admitted = []

    def worker() -> None:
        for _ in range(10):
            try:
                limiter.acquire()
            except RateLimitedError:
                continue
            admitted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert 5 == len(admitted)
