"""The one-frame success path of ``resilient()`` against the layered path, step by step.

Each example draws a composition and a script of calls (each attempt: a
result, an error of some kind, time running out, a held bulkhead slot, an
empty bucket) and runs the script twice, on fresh and identical parts: once
through ``policy(fn)`` (the one frame where it applies) and once through the
layers alone. Results, errors (type, text, notes), the events as the log sink
sees them, what the call observed (attempt number, remaining time), the
bulkhead's and limiter's statistics and the fake clock must be equal after
every call, on sync, asyncio and trio.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_pipeline import Bulkhead, RateLimiter, RetryPolicy, fallback
from resilient_pipeline._core import never_suspends
from resilient_pipeline.limits import ResiliencePolicy, Timeout, current_attempt, remaining_time
from resilient_pipeline.testing import FakeClock

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

ARGS = st.one_of(
    st.floats(allow_nan=True),
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=5),
    st.sampled_from(["\x00", "\ud800", "x" * 10_000, math.nan]),
    st.integers(min_value=-(2**70), max_value=2**70),
)

# One attempt's outcome: a value, an error, or run past the time it had.
OUTCOMES = st.sampled_from(["ok", "oserror", "valueerror", "slow", "ok", "ok"])


@attrs.frozen
class Plan:
    """A composition, drawn: what each part is (``None``: absent)."""

    fallback: bool
    deadline: float | None
    attempts: int | None
    rate: float | None
    on_limit: str
    slots: int | None
    timeout: float | None

    def build(
        self, clock: FakeClock
    ) -> tuple[ResiliencePolicy, Bulkhead | None, RateLimiter | None]:
        bulkhead = None if self.slots is None else Bulkhead(max_concurrent=self.slots)
        limiter = (
            None
            if self.rate is None
            else RateLimiter(
                rate=self.rate,
                burst=1 if self.rate < 2 else None,  # a huge rate: a bucket that never limits
                on_limit=self.on_limit,  # type: ignore[arg-type]
                clock=clock,
            )
        )
        retry = (
            None
            if self.attempts is None
            else RetryPolicy(
                max_attempts=self.attempts, base_delay=0.5, jitter=None, retry_on=OSError
            )
        )
        policy = ResiliencePolicy(
            fallback=fallback("fallback") if self.fallback else None,
            deadline=self.deadline,
            retry=retry,
            rate_limiter=limiter,
            bulkhead=bulkhead,
            timeout=self.timeout,
            clock=clock,
        )
        return policy, bulkhead, limiter

    def has_one_frame(self, *, coroutine: bool) -> bool:
        """Whether the one frame applies (not when the retry or a scope enforces the deadline)."""
        if self.deadline is None:
            return True
        if coroutine:
            return self.timeout is not None and self.attempts is not None
        return self.timeout is not None or self.attempts is None


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    deadline = draw(st.sampled_from([None, 5.0, 60.0]))
    timeout = draw(st.sampled_from([None, 1.0, 5.0]))
    if deadline is not None and timeout is not None:
        timeout = min(timeout, deadline)
    return Plan(
        fallback=draw(st.booleans()),
        deadline=deadline,
        attempts=draw(st.sampled_from([None, 1, 3])),
        rate=draw(st.sampled_from([None, 1.0, 1e12])),
        on_limit=draw(st.sampled_from(["wait", "reject"])),
        slots=draw(st.sampled_from([None, 1, 1000])),
        timeout=timeout,
    )


@attrs.frozen
class Step:
    """One call: its argument, each attempt's outcome, and what happens around it."""

    arg: object
    outcomes: tuple[str, ...]
    hold_slot: bool
    advance: float


STEPS = st.lists(
    st.builds(
        Step,
        arg=ARGS,
        outcomes=st.lists(OUTCOMES, min_size=1, max_size=4).map(tuple),
        hold_slot=st.booleans(),
        advance=st.sampled_from([0.0, 0.25, 2.0]),
    ),
    min_size=1,
    max_size=6,
)


class Recorder(logging.Handler):
    """The events as the log sink logs them (no subscriber: the one frame stays in use)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()}")


@contextmanager
def recording() -> Iterator[Recorder]:
    logger = logging.getLogger("resilient_pipeline")
    recorder, level = Recorder(), logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.DEBUG)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level)


def outcome_of(run: Callable[[], Any]) -> tuple[str, ...]:
    try:
        return ("returned", repr(run()))
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc), repr(getattr(exc, "__notes__", None)))


class World:
    """Fresh parts, a fake clock and a record of what one path did."""

    def __init__(self, plan: Plan) -> None:
        self.clock = FakeClock(start=100.0)
        self.policy, self.bulkhead, self.limiter = plan.build(self.clock)
        self.outcomes: list[str] = []
        self.seen: list[tuple[object, ...]] = []

    def attempt(self, arg: object) -> object:
        self.seen.append((current_attempt(), remaining_time()))
        what = self.outcomes.pop(0) if self.outcomes else "ok"
        if what == "oserror":
            raise ConnectionError(f"reset {arg!r}"[:80])
        if what == "valueerror":
            raise ValueError("bad")
        if what == "slow":
            self.clock.advance(10.0)
        return arg

    def state(self) -> tuple[object, ...]:
        return (
            None if self.bulkhead is None else self.bulkhead.statistics(),
            None if self.limiter is None else self.limiter.available(),
            self.clock.monotonic(),
            tuple(self.clock.sleeps),
            tuple(self.seen),
        )

    @contextmanager
    def around(self, step: Step) -> Iterator[None]:
        self.outcomes = list(step.outcomes)
        held = step.hold_slot and self.bulkhead is not None and self.bulkhead.max_concurrent == 1
        if held:
            self.bulkhead.acquire()  # type: ignore[union-attr]
        try:
            yield
        finally:
            if held:
                self.bulkhead.release()  # type: ignore[union-attr]
            self.clock.advance(step.advance)


def run_sync(plan: Plan, steps: list[Step], *, one_frame: bool) -> list[tuple[object, ...]]:
    world = World(plan)
    decorated = world.policy._build(world.attempt, one_frame=one_frame)
    if one_frame and plan.has_one_frame(coroutine=False):
        assert "one_frame" == decorated.__code__.co_name
    trail: list[tuple[object, ...]] = []
    with recording() as recorder:
        for step in steps:
            with world.around(step):
                outcome = outcome_of(lambda: decorated(step.arg))  # noqa: B023
            trail.append((outcome, world.state(), tuple(recorder.lines)))
            recorder.lines.clear()
    return trail


@settings(max_examples=150)
@given(plan=plans(), steps=STEPS)
def test_sync_one_frame_equals_the_layers(plan: Plan, steps: list[Step]) -> None:
    """Every call's result, error, events, observations and statistics match the layered path."""
    assert run_sync(plan, steps, one_frame=False) == run_sync(plan, steps, one_frame=True)


class AsyncWorld(World):
    """The same, for a coroutine that suspends (or not) after its outcome is decided."""

    async def asuspending(self, arg: object) -> object:
        result = self.attempt(arg)
        await anyio.lowlevel.checkpoint()  # where a timeout that ran out cancels it
        return result

    async def ainstant(self, arg: object) -> object:
        return self.attempt(arg)


async def run_async(
    plan: Plan, steps: list[Step], *, one_frame: bool, suspends: bool
) -> list[tuple[object, ...]]:
    world = AsyncWorld(plan)
    fn = world.asuspending if suspends else world.ainstant
    decorated = world.policy._build(fn, one_frame=one_frame)
    if one_frame and plan.has_one_frame(coroutine=True):
        assert "one_frame" == decorated.__code__.co_name
    trail: list[tuple[object, ...]] = []
    with recording() as recorder:
        for step in steps:
            with world.around(step):
                try:
                    outcome: tuple[str, ...] = ("returned", repr(await decorated(step.arg)))
                except Exception as exc:
                    notes = repr(getattr(exc, "__notes__", None))
                    outcome = ("raised", type(exc).__name__, str(exc), notes)
            trail.append((outcome, world.state(), tuple(recorder.lines)))
            recorder.lines.clear()
    return trail


@pytest.mark.anyio
@pytest.mark.parametrize("suspends", [True, False])
@settings(max_examples=60)
@given(plan=plans(), steps=STEPS)
async def test_async_one_frame_equals_the_layers(
    plan: Plan, steps: list[Step], suspends: bool
) -> None:
    """The same comparison for coroutines that suspend and that never do (asyncio and trio)."""
    layered = await run_async(plan, steps, one_frame=False, suspends=suspends)
    assert layered == await run_async(plan, steps, one_frame=True, suspends=suspends)


def test_never_suspends_judges_only_plain_coroutine_functions() -> None:
    """A body without await has its code returned; anything that may suspend gets None."""
    import functools

    async def instant() -> int:
        return 1

    async def awaiting() -> None:
        await anyio.lowlevel.checkpoint()

    async def iterating(items: Any) -> None:
        async for _ in items:
            pass

    async def holding(lock: anyio.Lock) -> None:
        async with lock:
            pass

    def plain() -> int:
        return 1

    assert instant.__code__ is never_suspends(instant)
    for fn in (awaiting, iterating, holding, plain, functools.partial(instant), len, None):
        assert None is never_suspends(fn)


def test_parts_the_frame_does_not_cover_keep_the_layers() -> None:
    """A breaker, a keyed or adaptive limiter, a thread timeout or two clocks: the layered path."""
    from resilient_pipeline import CircuitBreaker

    def fn() -> int:
        return 1

    clock = FakeClock()
    layered = [
        ResiliencePolicy(breaker=CircuitBreaker(name="onepass-test")),
        ResiliencePolicy(rate_limiter=RateLimiter(rate=10, key=lambda: "k")),
        ResiliencePolicy(rate_limiter=RateLimiter(rate=10, adaptive=True)),
        ResiliencePolicy(timeout=Timeout(1.0, sync="thread")),
        ResiliencePolicy(rate_limiter=RateLimiter(rate=10, clock=clock), timeout=1.0),
        ResiliencePolicy(retry=RetryPolicy(on_event=lambda event: None)),
    ]
    for policy in layered:
        assert "one_frame" != policy(fn).__code__.co_name
    assert "one_frame" == ResiliencePolicy(rate_limiter=RateLimiter(rate=10))(fn).__code__.co_name


def test_a_subscriber_sees_the_layered_events() -> None:
    """With a subscriber, the call goes the layered way and every event reaches it."""
    from resilient_pipeline.testing import capture_events

    outcomes = ["error", "ok"]

    def flaky() -> str:
        if outcomes.pop(0) == "error":
            raise ConnectionError("reset")
        return "ok"

    decorated = ResiliencePolicy(
        retry=RetryPolicy(base_delay=0), bulkhead=Bulkhead(max_concurrent=2)
    )(flaky)
    with capture_events() as events:
        assert "ok" == decorated()
    assert ["RetryScheduled", "RetrySucceeded", "CallFinished"] == [
        type(event).__name__ for event in events
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("suspends", [True, False])
async def test_a_cancelled_call_gives_its_slot_back(suspends: bool) -> None:
    """Cancelling a call in the one frame releases its bulkhead slot (asyncio and trio)."""
    bulkhead = Bulkhead(max_concurrent=1)
    started = anyio.Event()

    async def hang() -> None:
        started.set()
        await anyio.sleep_forever()

    decorated = ResiliencePolicy(
        deadline=60.0, retry=RetryPolicy(base_delay=0), bulkhead=bulkhead, timeout=30.0
    )(hang)
    assert "one_frame" == decorated.__code__.co_name
    async with anyio.create_task_group() as group:
        group.start_soon(decorated)
        await started.wait()
        assert 1 == bulkhead.statistics().in_flight
        group.cancel_scope.cancel()
    assert (0, 1, 0) == (
        bulkhead.statistics().in_flight,
        bulkhead.statistics().admitted,
        bulkhead.statistics().rejected,
    )


@pytest.mark.anyio
async def test_a_timeout_still_cancels_a_suspending_call() -> None:
    """The one frame's cancel scope ends a hung attempt with the builtin TimeoutError."""
    clock = FakeClock()

    async def hang() -> None:
        clock.advance(2.0)
        await anyio.sleep_forever()

    decorated = ResiliencePolicy(retry=RetryPolicy(max_attempts=1), timeout=1.0, clock=clock)(hang)
    assert "one_frame" == decorated.__code__.co_name
    with pytest.raises(TimeoutError, match=r"timeout=1\.0"):
        await decorated()
