"""The open circuit's rejection, read by the decorator itself: the same error as through admit()."""

from __future__ import annotations

import contextlib
import gc
import logging
import pickle
import threading
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import CircuitBreaker
from resilient_pipeline._core import DEFAULT_MONOTONIC, SYSTEM_CLOCK, add_note
from resilient_pipeline.breaker import CallRejected, ConsecutiveFailures, OpenDuration
from resilient_pipeline.breaker._memory import counted, counter
from resilient_pipeline.exceptions import CircuitOpenError
from resilient_pipeline.testing import FakeClock, capture_events, set_testing


class Down(ConnectionError):
    """The upstream failed."""


def fail(text: str = "down at https://u:pw@api.example/x") -> None:
    raise Down(text)


async def afail(text: str = "down at https://u:pw@api.example/x") -> None:
    raise Down(text)


def tripped(clock: FakeClock, **options: Any) -> CircuitBreaker:
    """A breaker opened (for 10 s) by two failures of ``fail``."""
    breaker = CircuitBreaker(
        name="ads",
        trip=ConsecutiveFailures(threshold=2),
        open_duration=OpenDuration(seconds=10),
        clock=clock,
        **options,
    )
    for _ in range(2):
        with contextlib.suppress(Down):
            breaker.call(fail)
    assert "open" == breaker.state
    return breaker


def fields(error: CircuitOpenError) -> tuple[object, ...]:
    return (
        error.name,
        error.state,
        error.retry_after,
        error.opened_by,
        error.opened_by_class,
        error.trip_cause,
        str(error),
        error.args,
    )


def through_decorator(breaker: CircuitBreaker) -> CircuitOpenError:
    with pytest.raises(CircuitOpenError) as info:
        breaker(fail)()
    return info.value


def through_admit(breaker: CircuitBreaker) -> CircuitOpenError:
    """The context-manager form: MemoryBackend.admit builds the error."""
    with pytest.raises(CircuitOpenError) as info, breaker:
        pass  # pragma: no cover - the circuit is open
    return info.value


@given(elapsed=st.floats(min_value=0.0, max_value=9.999, allow_nan=False))
def test_decorator_rejection_equals_admit_rejection(elapsed: float) -> None:
    """At any moment of the open period, the decorator's error is the one admit() builds."""
    clock = FakeClock()
    breaker = tripped(clock)
    clock.advance(elapsed)
    before = breaker.statistics().rejected
    expected, actual = through_admit(breaker), through_decorator(breaker)
    assert fields(expected) == fields(actual)
    assert ("open", f"{__name__}.Down") == (actual.state, actual.opened_by_class)
    assert before + 2 == breaker.statistics().rejected


def test_decorator_lets_the_probe_through_when_the_open_period_ends() -> None:
    """At open_until the decorator no longer rejects: the call is the half-open probe."""
    clock = FakeClock()
    breaker = tripped(clock)
    clock.advance(10)
    with pytest.raises(Down):
        breaker(fail)()
    assert "open" == breaker.state  # the failed probe re-opened it
    assert 2 == breaker.statistics().openings


@pytest.mark.anyio
async def test_async_decorator_rejection_equals_admit_rejection() -> None:
    """The async decorator's rejection carries what admit()'s does, and is counted."""
    clock = FakeClock()
    breaker = tripped(clock)
    clock.advance(4)
    with pytest.raises(CircuitOpenError) as info:
        await breaker(afail)()
    assert fields(through_admit(breaker)) == fields(info.value)
    assert 2 == breaker.statistics().rejected


def test_fast_rejection_pickles_with_every_attribute() -> None:
    """A rejection built without __init__ crosses processes with name, state, wait and cause."""
    clock = FakeClock()
    error = through_decorator(tripped(clock))
    clone = pickle.loads(pickle.dumps(error))
    assert fields(error) == fields(clone)
    assert "Down: down at https://u:***@api.example/x" == clone.opened_by


def test_constructed_error_keeps_its_defaults_and_pickles() -> None:
    """CircuitOpenError(name) still defaults to open, no wait, no cause; pickling keeps them."""
    error = CircuitOpenError("ads")
    assert ("ads", "open", None, None, None) == (
        error.name,
        error.state,
        error.retry_after,
        error.opened_by,
        error.trip_cause,
    )
    add_note(error, "a note lives in the instance dict")
    clone = pickle.loads(pickle.dumps(error))
    assert fields(error) == fields(clone)
    assert ["a note lives in the instance dict"] == clone.__notes__


def test_async_open_rejections_leave_no_reference_cycles() -> None:
    """The async decorator's open-circuit rejections are freed at once (no cycle for the GC)."""
    guarded = tripped(FakeClock())(afail)

    async def reject_many() -> None:
        for _ in range(100):
            with contextlib.suppress(CircuitOpenError):
                await guarded()

    anyio.run(reject_many)  # the event loop's own garbage first
    gc.collect()
    gc.disable()
    try:
        anyio.run(reject_many)
        collected = gc.collect()
    finally:
        gc.enable()
    assert 0 == collected


def test_fast_rejection_is_announced_to_a_listener() -> None:
    """With a handler listening, each fast-path rejection is an event carrying the wait."""
    clock = FakeClock()
    breaker = tripped(clock)
    clock.advance(3)
    with capture_events() as events:
        through_decorator(breaker)
    rejected = [e for e in events if isinstance(e, CallRejected)]
    assert [("ads", "open", 7.0)] == [(e.source, e.state, e.retry_after) for e in rejected]


def tripped_on_the_default_clock(seconds: float = 10.0) -> CircuitBreaker:
    """A breaker without ``clock=``, opened (for ``seconds``) by two failures of ``fail``."""
    breaker = CircuitBreaker(
        name="ads",
        trip=ConsecutiveFailures(threshold=2),
        open_duration=OpenDuration(seconds=seconds),
    )
    for _ in range(2):
        with contextlib.suppress(Down):
            breaker.call(fail)
    return breaker


def test_system_clock_rejection_equals_admit_rejection_but_for_the_wait() -> None:
    """With the system clock (read directly, not via the clock object): admit()'s error."""
    breaker = tripped_on_the_default_clock(seconds=600)
    expected, actual = through_admit(breaker), through_decorator(breaker)
    assert expected.retry_after is not None
    assert actual.retry_after is not None
    assert 0 < actual.retry_after <= expected.retry_after <= 600
    assert fields(expected)[:2] + fields(expected)[3:7] == fields(actual)[:2] + fields(actual)[3:7]


@given(
    name=st.text(min_size=1, max_size=300),
    state=st.sampled_from(["open", "half_open", "forced_open"]) | st.text(max_size=20),
    retry_after=st.none() | st.floats(allow_nan=True, allow_infinity=True),
)
def test_constructed_error_reads_back_and_pickles_whatever_the_state(
    name: str, state: str, retry_after: float | None
) -> None:
    """Any state, "open" from the class or another in the instance dict, reads back and pickles."""
    error = CircuitOpenError(name, state=state, retry_after=retry_after)
    assert (name, state, (name,)) == (error.name, error.state, error.args)
    assert error.retry_after is retry_after
    assert ("state" in vars(error)) == (state != "open")
    clone = pickle.loads(pickle.dumps(error))
    assert (name, state, (name,)) == (clone.name, clone.state, clone.args)
    assert repr(retry_after) == repr(clone.retry_after)
    assert str(error) == str(clone)


def test_fast_rejection_keeps_no_instance_dict() -> None:
    """An open-circuit rejection stores its wait and cause in slots; its state is the class's."""
    error = through_decorator(tripped(FakeClock()))
    assert {} == vars(error)
    assert "open" == error.state


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO])
def test_rejection_is_logged_exactly_when_debug_is_on_after_a_level_change(
    level: int, caplog: pytest.LogCaptureFixture
) -> None:
    """After a level change empties the logger's cache, a rejection is logged only at DEBUG."""
    breaker = tripped(FakeClock())
    through_decorator(breaker)  # fills the cache at the default level
    logger = logging.getLogger("resilient_pipeline.breaker")
    with caplog.at_level(level, logger="resilient_pipeline.breaker"):
        through_decorator(breaker)
        through_decorator(breaker)  # the cache filled again by the first
    rejected = [r for r in caplog.records if "rejected a call" in r.getMessage()]
    assert (2 if level == logging.DEBUG else 0) == len(rejected)
    assert logger.isEnabledFor(logging.DEBUG) is False


@given(elapsed=st.floats(min_value=0.0, max_value=9.999, allow_nan=False))
def test_rejection_reads_a_swapped_default_clock(elapsed: float) -> None:
    """Without clock=, a rejection's wait comes from whatever clock set_testing() installed."""
    # Far ahead of the system clock: a rejection reading the wrong clock would see a long wait.
    with set_testing(clock=FakeClock(start=1e9)) as clock:
        breaker = tripped_on_the_default_clock()
        clock.advance(elapsed)
        expected, actual = through_admit(breaker), through_decorator(breaker)
        assert fields(expected) == fields(actual)
        assert pytest.approx(10.0 - elapsed, abs=1e-6) == actual.retry_after
        clock.advance(10.0 - elapsed)  # open_until: the next call is the probe
        with pytest.raises(Down):
            breaker(fail)()
    assert SYSTEM_CLOCK.monotonic == DEFAULT_MONOTONIC[0]


@pytest.mark.anyio
async def test_async_rejection_reads_a_swapped_default_clock() -> None:
    """The async decorator reads the default clock's time the same way, at await time."""
    with set_testing(clock=FakeClock(start=1e9)) as clock:
        breaker = tripped_on_the_default_clock()
        clock.advance(2.5)
        rejection = breaker(afail)()  # not awaited yet: nothing decided
        clock.advance(5)
        with pytest.raises(CircuitOpenError) as info:
            await rejection
        assert fields(through_admit(breaker)) == fields(info.value)
        assert pytest.approx(2.5, abs=1e-6) == info.value.retry_after


@given(calls=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=4))
def test_counter_counts_every_call_from_every_thread(calls: list[int]) -> None:
    """counted() is the number of next() calls made so far, whichever threads made them."""
    calls_made = counter()

    def call(times: int) -> None:
        for _ in range(times):
            assert next(calls_made) is None

    threads = [threading.Thread(target=call, args=(times,)) for times in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(calls) == counted(calls_made)
    assert sum(calls) == counted(calls_made)  # reading does not advance it


def test_statistics_count_fast_rejections_and_successes_exactly() -> None:
    """Rejections read by the wrappers and successes both land in statistics(), one each."""
    clock = FakeClock()
    breaker = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=2), clock=clock)
    for _ in range(3):
        breaker.call(len, "ok")
    for _ in range(2):
        with contextlib.suppress(Down):
            breaker.call(fail)
    for _ in range(5):
        through_decorator(breaker)

    async def reject() -> None:
        with pytest.raises(CircuitOpenError):
            await breaker(afail)()

    anyio.run(reject)
    stats = breaker.statistics()
    assert (5, 3, 2, 6) == (stats.calls, stats.successes, stats.failures, stats.rejected)
