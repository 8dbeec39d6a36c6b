"""Tests for ``timeout`` / ``Timeout``."""

from __future__ import annotations

import threading

import anyio
import pytest

from resilient_pipeline import ConfigurationError, timeout
from resilient_pipeline.exceptions import DeadlineExceededError
from resilient_pipeline.limits import TimedOut, Timeout, deadline_scope, remaining_time
from resilient_pipeline.testing import FakeClock, capture_events


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), "5", True])
def test_bad_seconds_name_the_option(seconds: object) -> None:
    """A limit that is not a positive number is refused at construction, naming ``seconds``."""
    with pytest.raises(ConfigurationError) as info:
        timeout(seconds)  # type: ignore[arg-type]
    assert "seconds" == info.value.option


def test_bad_sync_mode_is_refused() -> None:
    """Only 'cooperative' and 'thread' are sync modes."""
    with pytest.raises(ConfigurationError) as info:
        Timeout(1.0, sync="kill")  # type: ignore[arg-type]
    assert "sync" == info.value.option


def test_sync_call_sees_the_tightened_deadline() -> None:
    """Inside the call, remaining_time() is the timeout; outside there is no deadline."""
    clock = FakeClock()

    @timeout(5.0, clock=clock)
    def fetch() -> float | None:
        return remaining_time()

    assert 5.0 == fetch()
    assert remaining_time() is None


def test_enclosing_sooner_deadline_wins() -> None:
    """A timeout never extends an enclosing deadline that is sooner."""
    clock = FakeClock()

    @timeout(5.0, clock=clock)
    def fetch() -> float | None:
        return remaining_time()

    with deadline_scope(2.0, clock=clock):
        assert 2.0 == fetch()


def test_no_time_left_raises_before_calling() -> None:
    """With the shared deadline already spent, the function is not called at all."""
    clock = FakeClock()
    calls = []

    @timeout(5.0, clock=clock)
    def fetch() -> None:
        calls.append(1)

    with deadline_scope(1.0, clock=clock), capture_events() as events:
        clock.advance(1.0)
        with pytest.raises(DeadlineExceededError, match="shared deadline"):
            fetch()
    assert [] == calls
    assert [TimedOut] == [type(e) for e in events]


@pytest.mark.anyio
async def test_async_call_is_cancelled() -> None:
    """An async call past its limit is cancelled: DeadlineExceededError, a TimeoutError."""
    reached_end = []

    @timeout(0.001, name="fetch")
    async def fetch() -> None:
        await anyio.sleep_forever()
        reached_end.append(1)

    with capture_events() as events, pytest.raises(TimeoutError) as info:
        await fetch()
    assert isinstance(info.value, DeadlineExceededError)
    assert "timeout=0.001" in str(info.value)
    assert [] == reached_end
    assert ["fetch"] == [e.source for e in events if isinstance(e, TimedOut)]


@pytest.mark.anyio
async def test_async_result_within_limit_is_returned() -> None:
    """A fast async call returns its value unchanged."""

    @timeout(30.0)
    async def fetch(day: str) -> str:
        await anyio.lowlevel.checkpoint()
        return day

    assert "2026-11-28" == await fetch("2026-11-28")


@pytest.mark.anyio
async def test_async_call_with_its_own_scopes_is_cancelled() -> None:
    """Scopes the call opens before it first suspends nest inside the timeout's scope."""
    inner_cancelled = []

    @timeout(0.001)
    async def fetch() -> None:
        with anyio.CancelScope() as inner:
            async with anyio.create_task_group() as group:
                group.start_soon(anyio.sleep_forever)
                await anyio.sleep_forever()
        inner_cancelled.append(inner.cancelled_caught)

    with pytest.raises(DeadlineExceededError):
        await fetch()
    assert [] == inner_cancelled


@pytest.mark.anyio
async def test_async_call_gets_every_value_it_awaits() -> None:
    """A call that suspends many times receives each awaited value (trio sends them in)."""
    send, receive = anyio.create_memory_object_stream[int](0)

    @timeout(30.0)
    async def total() -> int:
        async with receive:
            return sum([value async for value in receive])

    async def produce() -> None:
        async with send:
            for value in (1, 20, 300):
                await send.send(value)

    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        assert 321 == await total()


@pytest.mark.anyio
async def test_async_call_that_swallows_cancellation_is_cancelled_again() -> None:
    """Cancellation stays level-triggered: every later await of a timed-out call is cancelled."""
    caught = []

    @timeout(0.001)
    async def stubborn() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            caught.append(1)  # wrong, but it happens: the next await is cancelled too
        await anyio.sleep_forever()

    with pytest.raises(DeadlineExceededError):
        await stubborn()
    assert [1] == caught


@pytest.mark.anyio
async def test_async_scope_follows_an_enclosing_deadline_on_its_own_clock() -> None:
    """The cancel scope ends at the enclosing deadline, read on the clock that set it."""
    clock = FakeClock(start=1e6)  # far from the real monotonic clock

    @timeout(30.0)
    async def fetch() -> None:
        await anyio.sleep_forever()

    with deadline_scope(5.0, clock=clock):
        clock.advance(4.999)
        with anyio.fail_after(10), pytest.raises(DeadlineExceededError, match="shared deadline"):
            await fetch()


@pytest.mark.anyio
async def test_outer_cancellation_passes_through() -> None:
    """Cancellation from an enclosing scope is not turned into a DeadlineExceededError."""

    @timeout(30.0)
    async def fetch() -> None:
        await anyio.sleep_forever()

    with anyio.CancelScope() as scope:
        scope.cancel()
        await fetch()
    assert scope.cancelled_caught


def test_thread_mode_abandons_the_worker() -> None:
    """In thread mode the caller stops waiting; the worker keeps running and is not killed."""
    release = threading.Event()
    finished = threading.Event()

    @timeout(0.001, sync="thread")
    def fetch() -> None:
        release.wait(5)
        finished.set()

    with capture_events() as events, pytest.raises(DeadlineExceededError, match="abandoned"):
        fetch()
    assert [True] == [e.abandoned for e in events if isinstance(e, TimedOut)]
    assert not finished.is_set()
    release.set()
    assert finished.wait(5)


def test_thread_mode_returns_and_raises_like_the_function() -> None:
    """In thread mode a prompt result is returned and a prompt error re-raised."""

    @timeout(30.0, sync="thread")
    def double(x: int) -> int:
        if x < 0:
            raise KeyError(x)
        return 2 * x

    assert 42 == double(21)
    with pytest.raises(KeyError):
        double(-1)


def test_thread_mode_worker_sees_the_deadline() -> None:
    """The worker thread runs in a copy of the caller's context, deadline included."""
    clock = FakeClock()

    @timeout(30.0, sync="thread", clock=clock)
    def budget() -> float | None:
        return remaining_time()

    assert 30.0 == budget()


def test_decorating_a_non_callable_is_a_type_error() -> None:
    """Decorating something that is not callable fails loudly."""
    with pytest.raises(TypeError):
        timeout(1.0)(42)  # type: ignore[arg-type]
