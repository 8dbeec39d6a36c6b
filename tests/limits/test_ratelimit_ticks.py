"""A wait shorter than the clock can register still ends (it once spun for ever on a FakeClock)."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import RateLimiter
from resilient_pipeline.testing import FakeClock

# Far more than an acquire needs: the plan asks again after each sleep only when rounding
# left the bucket a hair short of a token, and one tick more always covers that.
SLEEPS_PER_ACQUIRE = 8


class Spun(Exception):
    """An acquire slept more often than any plan can need: it would spin for ever."""


@attrs.define
class CountingClock(FakeClock):
    """A FakeClock that refuses to sleep more than SLEEPS_PER_ACQUIRE times in a row."""

    in_a_row: int = attrs.field(default=0, kw_only=True)

    def sleep(self, seconds: float, /) -> None:
        self.in_a_row += 1
        if self.in_a_row > SLEEPS_PER_ACQUIRE:
            raise Spun(self.sleeps[-SLEEPS_PER_ACQUIRE:])
        super().sleep(seconds)

    async def asleep(self, seconds: float, /) -> None:
        self.sleep(seconds)


@given(
    rate=st.floats(1e-3, 1e15),
    burst=st.integers(1, 4),
    start=st.one_of(st.floats(0, 1e9), st.sampled_from([100.0, 2.0**33, 1e9])),
    calls=st.integers(2, 6),
)
def test_every_acquire_ends_within_a_few_sleeps(
    rate: float, burst: int, start: float, calls: int
) -> None:
    """Huge rates, tiny waits, large clock readings: each acquire returns, never early."""
    clock = CountingClock(start=start)
    limiter = RateLimiter(rate=rate, burst=burst, clock=clock)
    for _ in range(calls):
        clock.in_a_row = 0
        limiter.acquire()
    # Never more than the bucket allows (a tick more is never a token early).
    moved = clock.monotonic() - start
    assert calls <= rate * moved + burst + 1e-9 * calls
    # Every sleep moved the clock: none was below its resolution at that reading.
    assert all(s >= math.ulp(start) for s in clock.sleeps)


def test_the_case_that_spun_now_sleeps_one_tick() -> None:
    """rate=1e12 at 100 s: 1e-12 s leaves the bucket a hair short; the next sleep is one ulp."""
    clock = CountingClock(start=100.0)
    limiter = RateLimiter(rate=1e12, burst=1, clock=clock)
    limiter.acquire()
    limiter.acquire()
    assert clock.sleeps[0] == pytest.approx(1e-12)
    assert clock.sleeps[1:] == [math.ulp(clock.monotonic() - clock.sleeps[-1])]


@pytest.mark.anyio
async def test_async_acquire_ends_too() -> None:
    """The async twin takes the same tick (asyncio and trio)."""
    clock = CountingClock(start=100.0)
    limiter = RateLimiter(rate=1e12, burst=1, clock=clock)
    await limiter.aacquire()
    await limiter.aacquire()
    assert 2 == len(clock.sleeps)
    assert clock.sleeps[1] >= math.ulp(100.0)
