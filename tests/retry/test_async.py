"""The async driver on asyncio and trio: retries, timeouts and cancellation."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from resilient_pipeline import retry_with_backoff, retrying
from resilient_pipeline.exceptions import DeadlineExceededError
from resilient_pipeline.limits import deadline_scope, remaining_time
from resilient_pipeline.retry import RetryScheduled
from resilient_pipeline.testing import FakeClock, capture_events

pytestmark = pytest.mark.anyio


class ParkedClock(FakeClock):
    """A fake clock whose async sleep parks until cancelled, so a test can cancel mid-sleep."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.sleeping = anyio.Event()

    async def asleep(self, seconds: float, /) -> None:
        self.sleeps.append(seconds)
        self.sleeping.set()
        await anyio.sleep_forever()


async def test_async_retries_then_succeeds() -> None:
    """Coroutine functions are retried with the same schedule as sync ones."""
    clock = FakeClock()
    calls = []

    @retry_with_backoff(jitter=None, clock=clock)
    async def fetch(day: str) -> str:
        calls.append(day)
        await anyio.lowlevel.checkpoint()
        if len(calls) < 3:
            raise ConnectionError("reset")
        return day

    assert "d" == await fetch("d")
    assert [1.0, 2.0] == clock.sleeps
    assert ["d", "d", "d"] == calls


async def test_async_last_error_has_note() -> None:
    """After the last async attempt the original exception propagates with a note."""
    clock = FakeClock()

    @retry_with_backoff(max_attempts=2, base_delay=0, clock=clock, name="afetch")
    async def fetch() -> None:
        raise TimeoutError("slow upstream")

    with pytest.raises(TimeoutError) as info:
        await fetch()
    assert "afetch: gave up after 2 attempt(s)" in info.value.__notes__[0]


async def test_async_retry_on_result() -> None:
    """A bad async result is retried."""
    clock = FakeClock()
    results = iter([None, "rows"])

    @retry_with_backoff(retry_on_result=lambda r: r is None, clock=clock)
    async def fetch() -> str | None:
        return next(results)

    assert "rows" == await fetch()
    assert 1 == len(clock.sleeps)


async def test_cancellation_during_sleep_propagates_at_once() -> None:
    """Cancelling while the retry sleeps stops everything; no further attempt runs."""
    clock = ParkedClock()
    calls = []

    @retry_with_backoff(clock=clock)
    async def fetch() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch)
            await clock.sleeping.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert [1] == calls
    assert 1 == len(clock.sleeps)


async def test_cancellation_during_attempt_is_not_retried() -> None:
    """Cancellation inside an attempt is never retried nor shown to predicates."""
    clock = FakeClock()
    started = anyio.Event()
    seen: list[BaseException] = []

    @retry_with_backoff(clock=clock, retry_if=lambda e: seen.append(e) or True)
    async def fetch() -> None:
        started.set()
        await anyio.sleep_forever()

    with capture_events() as events, anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch)
            await started.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert [] == seen
    assert [] == clock.sleeps
    assert [] == events


async def test_attempt_timeout_cancels_and_retries() -> None:
    """attempt_timeout cancels a hung attempt; the timeout is retried even outside retry_on."""
    clock = FakeClock()
    calls = []

    @retry_with_backoff(attempt_timeout=0.02, retry_on=OSError, base_delay=0, clock=clock)
    async def fetch() -> str:
        calls.append(1)
        if len(calls) == 1:
            await anyio.sleep_forever()
        return "ok"

    with capture_events() as events:
        assert "ok" == await fetch()
    assert 2 == len(calls)
    [scheduled] = [e for e in events if isinstance(e, RetryScheduled)]
    assert "DeadlineExceededError" in scheduled.error
    assert "attempt_timeout=0.02" in scheduled.error


async def test_overall_deadline_cancels_attempt_and_stops() -> None:
    """When the total deadline cancels an attempt, the call stops with DeadlineExceededError."""
    calls = []

    @retry_with_backoff(deadline=0.03, max_attempts=5)
    async def fetch() -> None:
        calls.append(1)
        await anyio.sleep_forever()

    with pytest.raises(DeadlineExceededError) as info:
        await fetch()
    assert 1 == len(calls)
    assert isinstance(info.value, TimeoutError)
    assert "by the deadline" in str(info.value)


async def test_async_attempt_sees_remaining_time() -> None:
    """Inside an async attempt remaining_time() reflects the attempt's budget."""
    clock = FakeClock()
    seen = []

    @retry_with_backoff(deadline=30.0, attempt_timeout=5.0, clock=clock)
    async def fetch() -> str:
        seen.append(remaining_time())
        return "ok"

    assert "ok" == await fetch()
    assert [5.0] == seen


async def test_async_block_form() -> None:
    """async for attempt in retrying(): with attempt: ... retries exceptions."""
    clock = FakeClock()
    numbers: list[int] = []
    async for attempt in retrying(jitter=None, clock=clock):
        with attempt:
            numbers.append(attempt.number)
            if attempt.number < 3:
                raise OSError("flaky")
    assert [1, 2, 3] == numbers
    assert [1.0, 2.0] == clock.sleeps


async def test_concurrent_calls_keep_separate_state() -> None:
    """Concurrent tasks calling one decorated coroutine each get their own attempts."""
    clock = FakeClock()
    attempts: dict[str, int] = {}

    @retry_with_backoff(base_delay=0, clock=clock, max_attempts=3)
    async def fetch(key: str) -> str:
        attempts[key] = attempts.get(key, 0) + 1
        await anyio.lowlevel.checkpoint()
        if attempts[key] < 3:
            raise OSError(key)
        return key

    results: dict[str, Any] = {}

    async def run(key: str) -> None:
        results[key] = await fetch(key)

    async with anyio.create_task_group() as tg:
        for key in "abcde":
            tg.start_soon(run, key)
    assert {k: k for k in "abcde"} == results
    assert dict.fromkeys("abcde", 3) == attempts


async def test_enclosing_deadline_cancels_the_first_attempt() -> None:
    """A policy without its own deadline still cannot outlive an enclosing deadline_scope."""
    calls = []

    @retry_with_backoff(max_attempts=3)
    async def fetch() -> None:
        calls.append(1)
        await anyio.sleep_forever()

    with deadline_scope(0.03), pytest.raises(DeadlineExceededError):
        await fetch()
    assert [1] == calls


async def test_timed_attempt_with_its_own_scopes_is_cancelled_and_retried() -> None:
    """Scopes an attempt opens before it first suspends nest inside the attempt's scope."""
    calls = []

    @retry_with_backoff(attempt_timeout=0.01, base_delay=0, max_attempts=2)
    async def fetch() -> str:
        calls.append(1)
        if len(calls) == 1:
            with anyio.CancelScope():
                async with anyio.create_task_group() as group:
                    group.start_soon(anyio.sleep_forever)
                    await anyio.sleep_forever()
        return "ok"

    assert "ok" == await fetch()
    assert 2 == len(calls)


async def test_timed_attempt_gets_every_value_it_awaits() -> None:
    """A timed attempt that suspends many times receives each awaited value."""
    send, receive = anyio.create_memory_object_stream[int](0)

    @retry_with_backoff(attempt_timeout=30.0, base_delay=0)
    async def total() -> int:
        async with receive:
            return sum([value async for value in receive])

    async def produce() -> None:
        async with send:
            for value in (4, 50, 600):
                await send.send(value)

    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        assert 654 == await total()
