"""Helpers shipped for users' own tests: FakeClock, set_testing(), capture_events(), fixtures."""

from __future__ import annotations

import anyio
import pytest

from resilient_pipeline import Event, retry_with_backoff
from resilient_pipeline._core import SystemClock, get_default_clock
from resilient_pipeline.retry import RetryScheduled
from resilient_pipeline.testing import FakeClock, capture_events, set_testing
from resilient_pipeline.typing import Clock


def test_fake_clock_moves_only_when_told() -> None:
    """monotonic() and time() advance together, by sleeps and advance() only."""
    clock = FakeClock(start=10.0, wall_start=1000.0)
    assert (10.0, 1000.0) == (clock.monotonic(), clock.time())
    clock.sleep(2.0)
    clock.advance(0.5)
    assert (12.5, 1002.5) == (clock.monotonic(), clock.time())
    assert [2.0] == clock.sleeps
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)


def test_clocks_satisfy_the_protocol() -> None:
    """Both shipped clocks are Clocks."""
    assert isinstance(FakeClock(), Clock)
    assert isinstance(SystemClock(), Clock)


@pytest.mark.anyio
async def test_fake_async_sleep_is_instant_and_recorded() -> None:
    """asleep() records the delay and returns at once."""
    clock = FakeClock()
    with anyio.fail_after(5):
        await clock.asleep(3600)
    assert [3600] == clock.sleeps


def test_set_testing_swaps_and_restores_the_default_clock() -> None:
    """set_testing() installs a fake clock and restores the previous one on exit."""
    before = get_default_clock()
    with set_testing() as clock:
        assert clock is get_default_clock()
    assert before is get_default_clock()


def test_set_testing_restore_is_idempotent() -> None:
    """Calling restore() twice does not clobber a later change."""
    before = get_default_clock()
    ctx = set_testing()
    ctx.restore()
    ctx.restore()
    assert before is get_default_clock()


def test_set_testing_makes_users_retries_instant() -> None:
    """A decorated function with real-looking delays runs without waiting."""

    @retry_with_backoff(max_attempts=4, base_delay=30, jitter=None)
    def fetch() -> None:
        raise ConnectionError("down")

    with set_testing() as clock, pytest.raises(ConnectionError):
        fetch()
    assert [30.0, 60.0, 60.0] == clock.sleeps


def test_capture_events_collects_only_inside_the_block() -> None:
    """Events emitted outside the block are not captured."""
    fn = retry_with_backoff(base_delay=0, max_attempts=2)(_fails_once())
    with capture_events() as events:
        fn()
    fn2 = retry_with_backoff(base_delay=0, max_attempts=2)(_fails_once())
    fn2()
    assert ["RetryScheduled", "RetrySucceeded", "CallFinished"] == [
        type(e).__name__ for e in events
    ]


def _fails_once() -> object:
    state = {"calls": 0}

    def fn() -> str:
        state["calls"] += 1
        if state["calls"] == 1:
            raise OSError("once")
        return "ok"

    return fn


def test_pytest_fixtures(rp_testing: FakeClock, rp_events: list[Event]) -> None:
    """The rp_testing and rp_events fixtures are registered for every pytest user."""

    @retry_with_backoff(base_delay=5, jitter=None)
    def fetch() -> str:
        if not rp_events:
            raise OSError("first")
        return "ok"

    assert "ok" == fetch()
    assert [5.0] == rp_testing.sleeps
    assert isinstance(rp_events[0], RetryScheduled)
