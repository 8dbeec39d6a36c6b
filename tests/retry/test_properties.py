"""Hypothesis properties of the retry core under a fake clock."""

from __future__ import annotations

import contextlib
import random

import attrs
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import Event, RetryPolicy
from resilient_pipeline.retry import RetryScheduled
from resilient_pipeline.testing import FakeClock

delays = st.floats(min_value=0, max_value=50, allow_nan=False)
jitters = st.sampled_from(["full", "equal", "decorrelated", None])


class Hinted(Exception):
    """A failure that may carry a server-given delay."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__("hinted")
        self.retry_after = retry_after


class RecordingClock(FakeClock):
    """A fake clock that also records when each sleep ended (when the next attempt starts)."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.wakeups: list[float] = []

    def sleep(self, seconds: float, /) -> None:
        super().sleep(seconds)
        self.wakeups.append(self.monotonic())


Scenario = tuple[RetryPolicy, list[tuple[float, float | None]], RecordingClock]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A policy, a list of (attempt duration, server hint) failures, and a clock."""
    clock = RecordingClock()
    deadline = draw(st.none() | st.floats(min_value=0.01, max_value=500))
    policy = RetryPolicy(
        max_attempts=draw(st.integers(1, 12)),
        base_delay=draw(delays),
        multiplier=draw(st.floats(min_value=1, max_value=4)),
        max_delay=draw(st.floats(min_value=0, max_value=100)),
        jitter=draw(jitters),
        deadline=deadline,
        clock=clock,
        rng=random.Random(draw(st.integers(0, 2**32))),
    )
    failures = draw(
        st.lists(
            st.tuples(st.floats(min_value=0, max_value=20), st.none() | delays),
            min_size=1,
            max_size=15,
        )
    )
    return policy, failures, clock


def run(policy: RetryPolicy, failures: list[tuple[float, float | None]], clock: FakeClock) -> int:
    """Call a function that fails as planned (taking time on the clock); return the call count."""
    plan = iter(failures)
    calls = 0

    @policy
    def fetch() -> str:
        nonlocal calls
        calls += 1
        step = next(plan, None)
        if step is None:
            return "ok"
        duration, hint = step
        clock.advance(duration)
        raise Hinted(hint)

    with contextlib.suppress(Hinted):
        fetch()
    return calls


@given(scenarios())
def test_sleeps_are_bounded_by_zero_and_max_delay(
    scenario: Scenario,
) -> None:
    """Every sleep is >= 0 and <= max_delay, server hints included."""
    policy, failures, clock = scenario
    run(policy, failures, clock)
    assert all(0 <= s <= policy.max_delay for s in clock.sleeps)


@given(scenarios())
def test_attempts_never_exceed_max_attempts(
    scenario: Scenario,
) -> None:
    """The function is called at most max_attempts times."""
    policy, failures, clock = scenario
    calls = run(policy, failures, clock)
    assert 1 <= calls <= policy.max_attempts
    assert len(clock.sleeps) <= calls - 1


@given(scenarios())
def test_sleeps_never_exceed_the_deadline(
    scenario: Scenario,
) -> None:
    """The sum of sleeps never exceeds the deadline, and no attempt starts after it."""
    policy, failures, clock = scenario
    run(policy, failures, clock)
    if policy.deadline is not None:
        assert sum(clock.sleeps) <= policy.deadline
        assert all(start < policy.deadline for start in clock.wakeups)


@given(scenarios())
def test_server_hints_are_floors(scenario: Scenario) -> None:
    """Every scheduled wait that honours a server hint is at least that hint."""
    policy, failures, clock = scenario
    events: list[Event] = []
    run(attrs.evolve(policy, on_event=events.append), failures, clock)
    scheduled = [e for e in events if isinstance(e, RetryScheduled)]
    assert all(e.delay >= e.retry_after for e in scheduled if e.retry_after is not None)
    assert clock.sleeps == [e.delay for e in scheduled if e.delay > 0]


@given(
    base=st.floats(min_value=0, max_value=10),
    multiplier=st.floats(min_value=1, max_value=5),
    max_delay=st.floats(min_value=0, max_value=1000),
    max_attempts=st.integers(1, 40),
)
def test_without_jitter_schedule_is_exact(
    base: float, multiplier: float, max_delay: float, max_attempts: int
) -> None:
    """Jitter off: the k-th sleep is base * multiplier**k, capped at max_delay."""
    clock = FakeClock()
    policy = RetryPolicy(
        max_attempts=max_attempts,
        base_delay=base,
        multiplier=multiplier,
        max_delay=max_delay,
        jitter=None,
        clock=clock,
        retry_after=None,
    )
    run(policy, [(0.0, None)] * max_attempts, clock)
    expected = [min(base * multiplier**k, max_delay) for k in range(max_attempts - 1)]
    assert [e for e in expected if e > 0] == clock.sleeps
