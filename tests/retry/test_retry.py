"""retry_with_backoff / RetryPolicy: schedule, stopping rules, notes, events (sync driver)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from resilient_pipeline import ConfigurationError, RetryPolicy, retry_with_backoff, retrying
from resilient_pipeline.exceptions import (
    BadResultError,
    InvalidBatchError,
    RejectedError,
    StoreError,
    TransientStoreError,
    UnitOfWorkError,
)
from resilient_pipeline.limits import deadline_scope, remaining_time
from resilient_pipeline.retry import CallFinished, RetryExhausted, RetryScheduled, RetrySucceeded
from resilient_pipeline.testing import FakeClock, capture_events, set_testing


class Throttled(Exception):
    """An upstream error carrying a server-given delay."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"throttled for {retry_after} s")
        self.retry_after = retry_after


def flaky(
    failures: list[BaseException | None], result: Any = "ok"
) -> tuple[Callable[..., Any], list[tuple[Any, ...]]]:
    """A function that raises the given errors in turn, then returns ``result``."""
    calls: list[tuple[Any, ...]] = []
    plan: Iterator[BaseException | None] = iter(failures)

    def fn(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        error = next(plan, None)
        if error is not None:
            raise error
        return result

    return fn, calls


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", 1.5),
        ("max_attempts", True),
        ("base_delay", -1),
        ("base_delay", float("nan")),
        ("base_delay", "1"),
        ("multiplier", 0.5),
        ("max_delay", -0.1),
        ("jitter", "random"),
        ("deadline", 0),
        ("deadline", -5),
        ("attempt_timeout", 0),
        ("retry_on", ValueError()),
        ("retry_on", KeyboardInterrupt),
        ("retry_on", (OSError, "x")),
        ("retry_if", 3),
        ("retry_on_result", "yes"),
        ("retry_after", 1.0),
        ("budget", 10),
        ("name", 3),
        ("on_event", 3),
        ("on_event", [print, 3]),
    ],
)
def test_bad_option_raises_at_decoration_naming_it(option: str, value: object) -> None:
    """Every invalid option fails when the decorator is built, naming the option."""
    with pytest.raises(ConfigurationError) as info:
        retry_with_backoff(**{option: value})  # type: ignore[arg-type]
    assert option == info.value.option
    assert option in str(info.value)


def test_attempt_timeout_longer_than_deadline_is_rejected() -> None:
    """A per-attempt timeout that could never be used is a configuration error."""
    with pytest.raises(ConfigurationError, match=r"attempt_timeout=10.*deadline=5"):
        RetryPolicy(deadline=5, attempt_timeout=10)


def test_policy_is_frozen_and_evolvable() -> None:
    """Policies are immutable values changed with attrs.evolve."""
    policy = RetryPolicy(max_attempts=4)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_attempts = 5  # type: ignore[misc]
    assert 9 == attrs.evolve(policy, max_attempts=9).max_attempts
    assert RetryPolicy(max_attempts=4) == policy


# ------------------------------------------------------------------- schedule
def test_exact_schedule_without_jitter(clock: FakeClock) -> None:
    """Jitter off, base 1 s, multiplier 2, 3 attempts: sleeps are exactly 1 s then 2 s."""
    fn, calls = flaky([OSError("a"), OSError("b")])
    wrapped = retry_with_backoff(jitter=None, clock=clock)(fn)
    assert "ok" == wrapped(1, k=2)
    assert [1.0, 2.0] == clock.sleeps
    assert [((1,), {"k": 2})] * 3 == calls


def test_max_delay_caps_the_schedule(clock: FakeClock) -> None:
    """The exponential delay never exceeds max_delay."""
    fn, _ = flaky([OSError()] * 5)
    retry_with_backoff(max_attempts=6, jitter=None, max_delay=3, clock=clock)(fn)()
    assert [1.0, 2.0, 3, 3, 3] == clock.sleeps


@pytest.mark.parametrize("jitter", ["full", "equal", "decorrelated"])
def test_jitter_stays_within_the_cap(clock: FakeClock, jitter: Any) -> None:
    """Jitter is drawn after the cap, so no sleep exceeds max_delay."""
    fn, _ = flaky([OSError()] * 7)
    policy = RetryPolicy(
        max_attempts=8, jitter=jitter, max_delay=4, clock=clock, rng=random.Random(7)
    )
    policy(fn)()
    assert 7 == len(clock.sleeps)
    assert all(0 <= s <= 4 for s in clock.sleeps)
    assert len(set(clock.sleeps)) > 1  # spread out, not all at the cap


def test_full_jitter_is_reproducible_with_an_rng(clock: FakeClock) -> None:
    """The same seed gives the same schedule."""
    schedules = []
    for _ in range(2):
        fake = FakeClock()
        fn, _ = flaky([OSError()] * 3)
        retry_with_backoff(max_attempts=4, clock=fake, rng=random.Random(3))(fn)()
        schedules.append(fake.sleeps)
    assert schedules[0] == schedules[1]


def test_zero_delay_never_calls_sleep() -> None:
    """With a zero base delay the clock's sleep is never called."""

    class NoSleepClock(FakeClock):
        def sleep(self, seconds: float, /) -> None:
            raise AssertionError(f"sleep({seconds}) called")

    fn, calls = flaky([OSError(), OSError()])
    assert "ok" == retry_with_backoff(base_delay=0, clock=NoSleepClock())(fn)()
    assert 3 == len(calls)


# ----------------------------------------------------------- what is retried
def test_last_original_exception_is_raised_with_a_note(clock: FakeClock) -> None:
    """After the last attempt the user's own exception propagates, with every attempt noted."""
    errors = [ConnectionError("one"), ConnectionError("two"), ConnectionError("three")]
    fn, _ = flaky(list(errors))
    with pytest.raises(ConnectionError) as info:
        retry_with_backoff(jitter=None, clock=clock, name="fetch")(fn)()
    assert errors[2] is info.value
    note = "\n".join(info.value.__notes__)
    assert "fetch: gave up after 3 attempt(s)" in note
    assert "max_attempts=3 reached" in note
    for n, text in enumerate(["one", "two", "three"], start=1):
        assert f"attempt {n}: ConnectionError: {text}" in note


def test_not_retryable_error_propagates_at_once_without_note(clock: FakeClock) -> None:
    """An error outside retry_on is raised immediately and untouched."""
    fn, calls = flaky([KeyError("k")])
    with pytest.raises(KeyError) as info:
        retry_with_backoff(retry_on=OSError, clock=clock)(fn)()
    assert 1 == len(calls)
    assert [] == clock.sleeps
    assert getattr(info.value, "__notes__", None) is None


def test_retry_if_must_agree(clock: FakeClock) -> None:
    """retry_if can veto an error that retry_on admits."""
    fn, calls = flaky([OSError("fatal"), OSError("x")])
    with pytest.raises(OSError, match="fatal"):
        retry_with_backoff(retry_if=lambda e: "fatal" not in str(e), clock=clock)(fn)()
    assert 1 == len(calls)


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError("bad option"),
        InvalidBatchError(table="kpi", problems=()),
        StoreError("syntax error at or near SELEC"),
        UnitOfWorkError("closed"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_deterministic_library_errors_are_never_retried(clock: FakeClock, error: Exception) -> None:
    """Bad configuration, bad input and non-transient database errors are bugs, not flakes."""
    fn, calls = flaky([error])
    with pytest.raises(type(error)):
        retry_with_backoff(clock=clock)(fn)()
    assert 1 == len(calls)


def test_transient_store_errors_are_retried(clock: FakeClock) -> None:
    """A connection lost or a serialization failure is retried."""
    fn, calls = flaky([TransientStoreError("deadlock detected")])
    assert "ok" == retry_with_backoff(clock=clock)(fn)()
    assert 2 == len(calls)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(2), GeneratorExit()])
def test_base_exceptions_are_never_retried_nor_shown_to_predicates(
    clock: FakeClock, error: BaseException
) -> None:
    """KeyboardInterrupt, SystemExit and GeneratorExit pass straight through."""
    seen: list[BaseException] = []
    fn, calls = flaky([error])
    wrapped = retry_with_backoff(retry_if=lambda e: seen.append(e) or True, clock=clock)(fn)
    with pytest.raises(type(error)):
        wrapped()
    assert 1 == len(calls)
    assert [] == seen


def test_retry_on_result_then_success(clock: FakeClock) -> None:
    """A bad result is retried like an error; a good one is returned."""
    results = iter([[], [], [1, 2]])
    wrapped = retry_with_backoff(retry_on_result=lambda r: not r, jitter=None, clock=clock)(
        lambda: next(results)
    )
    assert [1, 2] == wrapped()
    assert [1.0, 2.0] == clock.sleeps


def test_bad_result_error_carries_last_result(clock: FakeClock) -> None:
    """A result that stays bad raises BadResultError with that result."""
    wrapped = retry_with_backoff(max_attempts=2, retry_on_result=lambda r: r < 10, clock=clock)(
        lambda: 3
    )
    with pytest.raises(BadResultError) as info:
        wrapped()
    assert 3 == info.value.result
    assert 2 == info.value.attempts
    assert "attempt 2: retry_on_result rejected a int result" in info.value.__notes__[0]


def test_error_then_bad_result_then_success(clock: FakeClock) -> None:
    """Errors and bad results share one attempt count."""
    outcomes: Iterator[Any] = iter([OSError(), "partial", "complete"])

    def fetch() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    wrapped = retry_with_backoff(retry_on_result=lambda r: r != "complete", clock=clock)(fetch)
    assert "complete" == wrapped()
    assert 2 == len(clock.sleeps)


# ------------------------------------------------------- server-given delays
def test_retry_after_is_a_floor(clock: FakeClock) -> None:
    """A server hint is never undercut; jitter only adds to it."""
    fn, _ = flaky([Throttled(5.0)])
    retry_with_backoff(base_delay=1, clock=clock, rng=random.Random(1))(fn)()
    [slept] = clock.sleeps
    assert 5.0 <= slept <= 6.0


def test_retry_after_without_jitter_is_exact_when_larger(clock: FakeClock) -> None:
    """With jitter off the sleep is max(hint, backoff)."""
    fn, _ = flaky([Throttled(5.0), Throttled(0.5)])
    retry_with_backoff(jitter=None, clock=clock)(fn)()
    assert [5.0, 2.0] == clock.sleeps


def test_retry_after_above_max_delay_gives_up(clock: FakeClock) -> None:
    """A server delay longer than max_delay stops at once instead of retrying early."""
    fn, calls = flaky([Throttled(120.0)])
    with pytest.raises(Throttled) as info:
        retry_with_backoff(max_delay=60, clock=clock)(fn)()
    assert 1 == len(calls)
    assert [] == clock.sleeps
    assert "asked to wait 120.0 s, more than max_delay=60" in info.value.__notes__[0]


def test_retry_after_that_cannot_fit_the_deadline_gives_up(clock: FakeClock) -> None:
    """A required server delay past the deadline stops at once with a clear note."""
    fn, calls = flaky([Throttled(30.0)])
    with pytest.raises(Throttled) as info:
        retry_with_backoff(deadline=10, max_delay=60, clock=clock)(fn)()
    assert 1 == len(calls)
    assert [] == clock.sleeps
    assert "asked to wait 30.0 s but only 10.000 s remain" in info.value.__notes__[0]


def test_custom_retry_after_extractor_and_disabling_hints(clock: FakeClock) -> None:
    """retry_after= reads hints from anything; None ignores them."""
    fn, _ = flaky([OSError("wait 4")])
    retry_with_backoff(jitter=None, retry_after=lambda e: 4.0, clock=clock)(fn)()
    assert [4.0] == clock.sleeps
    fake = FakeClock()
    fn, _ = flaky([Throttled(50.0)])
    retry_with_backoff(jitter=None, retry_after=None, clock=fake)(fn)()
    assert [1.0] == fake.sleeps


def test_rejected_error_without_deadline_is_not_retried(clock: FakeClock) -> None:
    """An open circuit is not hammered: with no deadline to wait in, stop."""
    fn, calls = flaky([RejectedError("open", retry_after=2.0)])
    with pytest.raises(RejectedError):
        retry_with_backoff(clock=clock)(fn)()
    assert 1 == len(calls)


def test_rejected_error_waits_exactly_its_retry_after_within_deadline(clock: FakeClock) -> None:
    """A refusal whose retry_after fits the deadline is waited out exactly."""
    fn, calls = flaky([RejectedError("open", retry_after=2.5)])
    assert "ok" == retry_with_backoff(deadline=30, clock=clock)(fn)()
    assert [2.5] == clock.sleeps
    assert 2 == len(calls)


def test_rejected_error_that_cannot_fit_deadline_stops(clock: FakeClock) -> None:
    """A refusal longer than the remaining deadline stops at once."""
    fn, calls = flaky([RejectedError("open", retry_after=40.0)])
    with pytest.raises(RejectedError):
        retry_with_backoff(deadline=30, max_delay=10, clock=clock)(fn)()
    assert 1 == len(calls)


# ----------------------------------------------------------------- deadlines
def test_deadline_shortens_the_last_sleep(clock: FakeClock) -> None:
    """A sleep that would pass the deadline is cut so the attempt starts before it."""
    fn, _ = flaky([OSError()] * 9)

    def slow_fn() -> Any:
        clock.advance(1.0)  # each attempt takes a second
        return fn()

    with pytest.raises(OSError) as info:
        retry_with_backoff(max_attempts=10, jitter=None, deadline=10, clock=clock)(slow_fn)()
    assert clock.monotonic() <= 10.0
    assert sum(clock.sleeps) <= 10.0
    assert "deadline" in info.value.__notes__[0]


def test_deadline_is_shared_with_nested_retried_calls(clock: FakeClock) -> None:
    """An inner retried call inherits the outer deadline instead of adding its own budget."""
    seen: list[float | None] = []

    @retry_with_backoff(deadline=100, max_attempts=1, clock=clock)
    def outer() -> str:
        clock.advance(40)
        return inner()

    @retry_with_backoff(deadline=500, max_attempts=50, jitter=None, clock=clock)
    def inner() -> str:
        seen.append(remaining_time())
        raise OSError("down")

    with pytest.raises(OSError):
        outer()
    assert 60.0 == seen[0]
    assert clock.monotonic() <= 100.0
    assert all(r is not None and r >= 0 for r in seen)


def test_deadline_scope_limits_retries_without_own_deadline(clock: FakeClock) -> None:
    """A function with no deadline of its own still respects an enclosing scope."""
    fn, _ = flaky([OSError()] * 20)
    with deadline_scope(5.0, clock=clock), pytest.raises(OSError):
        retry_with_backoff(max_attempts=20, jitter=None, clock=clock)(fn)()
    assert sum(clock.sleeps) <= 5.0


def test_sync_attempt_timeout_is_visible_as_remaining_time(clock: FakeClock) -> None:
    """Sync attempts cannot be interrupted; they see attempt_timeout through remaining_time()."""
    seen: list[float | None] = []

    @retry_with_backoff(attempt_timeout=2.0, deadline=30.0, clock=clock)
    def fetch() -> str:
        seen.append(remaining_time())
        return "ok"

    assert "ok" == fetch()
    assert [2.0] == seen
    assert remaining_time() is None


# -------------------------------------------------------------------- events
def test_events_trail(clock: FakeClock) -> None:
    """Retries emit RetryScheduled per wait and RetrySucceeded at the end."""
    fn, _ = flaky([OSError("a"), OSError("b")])
    local: list[object] = []
    wrapped = retry_with_backoff(jitter=None, clock=clock, name="f", on_event=local.append)(fn)
    with capture_events() as events:
        wrapped()
    assert [
        RetryScheduled(source="f", attempt=1, delay=1.0, error="OSError: a", retry_after=None),
        RetryScheduled(source="f", attempt=2, delay=2.0, error="OSError: b", retry_after=None),
        RetrySucceeded(source="f", attempts=3, elapsed=3.0),
        CallFinished(source="f", attempts=3, elapsed=3.0, outcome="success"),
    ] == events
    assert events == local


def test_exhausted_event(clock: FakeClock) -> None:
    """Giving up emits RetryExhausted with the reason."""
    fn, _ = flaky([OSError("x")] * 3)
    with capture_events() as events, pytest.raises(OSError):
        retry_with_backoff(max_attempts=2, base_delay=0, clock=clock, name="g")(fn)()
    assert (
        RetryExhausted(source="g", attempts=2, elapsed=0.0, reason="attempts", error="OSError: x")
        == events[-2]
    )
    assert CallFinished(source="g", attempts=2, elapsed=0.0, outcome="failure") == events[-1]


def test_success_first_time_emits_only_call_finished(clock: FakeClock) -> None:
    """A first-try success emits one CallFinished (for duration metrics), nothing else."""
    with capture_events() as events:
        assert 5 == retry_with_backoff(clock=clock, name="five")(lambda: 5)()
    assert [CallFinished(source="five", attempts=1, elapsed=0.0, outcome="success")] == events


def test_unobserved_success_builds_no_event(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With no subscriber, a first-try success takes the fast path: no CallFinished, even logged."""
    caplog.set_level(logging.DEBUG, logger="resilient_pipeline")
    assert 5 == retry_with_backoff(clock=clock, name="five")(lambda: 5)()
    assert [] == [r for r in caplog.records if getattr(r, "event", None) == "CallFinished"]


def test_secrets_in_errors_are_masked_in_events(clock: FakeClock) -> None:
    """A token in an error message never reaches an event."""
    fn, _ = flaky([OSError("GET https://api.test/x?access_token=SECRET123 failed")])
    with capture_events() as events:
        retry_with_backoff(base_delay=0, clock=clock)(fn)()
    assert "SECRET123" not in repr(events)
    assert "access_token=***" in events[0].fields()["error"]  # type: ignore[operator]


# --------------------------------------------------------------------- forms
def test_methods_are_decorated() -> None:
    """The decorator works on methods and keeps names and docstrings."""

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry_with_backoff(base_delay=0)
        def get(self, path: str) -> str:
            """Fetch a path."""
            self.calls += 1
            if self.calls == 1:
                raise OSError("reset")
            return path

    client = Client()
    assert "/x" == client.get("/x")
    assert 2 == client.calls
    assert "get" == Client.get.__name__
    assert "Fetch a path." == Client.get.__doc__


def test_bare_decorator_uses_defaults() -> None:
    """@retry_with_backoff without parentheses: 3 attempts, full jitter over 1 s then 2 s."""
    fn, calls = flaky([OSError(), OSError(), OSError()])
    wrapped = retry_with_backoff(fn)
    with set_testing() as clock, pytest.raises(OSError):
        wrapped()
    assert 3 == len(calls)
    first, second = clock.sleeps
    assert 0 <= first <= 1.0
    assert 0 <= second <= 2.0


def test_policy_decorates_directly(clock: FakeClock) -> None:
    """A RetryPolicy is itself a decorator, bare or called."""
    policy = RetryPolicy(base_delay=0, clock=clock)
    fn, calls = flaky([OSError()])
    assert "ok" == policy(fn)()
    fn2, _ = flaky([OSError()])
    assert "ok" == policy()(fn2)()
    assert 2 == len(calls)


def test_block_form_retries_and_reraises(clock: FakeClock) -> None:
    """for attempt in retrying(): with attempt: ... retries, then re-raises with a note."""
    numbers = []

    def block() -> None:
        for attempt in retrying(max_attempts=3, jitter=None, clock=clock, name="block"):
            with attempt:
                numbers.append(attempt.number)
                raise OSError("still down")

    with pytest.raises(OSError) as info:
        block()
    assert [1, 2, 3] == numbers
    assert [1.0, 2.0] == clock.sleeps
    assert "block: gave up after 3 attempt(s)" in info.value.__notes__[0]


def test_block_form_stops_on_success(clock: FakeClock) -> None:
    """The loop ends after the first attempt that does not raise."""
    numbers = []
    for attempt in RetryPolicy(clock=clock).retrying():
        with attempt:
            numbers.append(attempt.number)
    assert [1] == numbers
    assert "<Attempt 1 of retrying>" == repr(attempt)


def test_block_form_does_not_swallow_base_exceptions(clock: FakeClock) -> None:
    """KeyboardInterrupt inside a block propagates at once."""
    numbers = []

    def block() -> None:
        for attempt in retrying(clock=clock):
            with attempt:
                numbers.append(attempt.number)
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        block()
    assert [1] == numbers


def test_statistics_are_per_call(clock: FakeClock) -> None:
    """Interleaved calls of one decorated function do not share attempt counts."""
    plan = {"a": iter([OSError(), None]), "b": iter([None])}

    @retry_with_backoff(base_delay=0, clock=clock)
    def fetch(key: str) -> str:
        error = next(plan[key])
        if key == "a" and error is not None:
            assert "b" == fetch("b")  # a nested, independent call mid-retry
            raise error
        return key

    with capture_events() as events:
        assert "a" == fetch("a")
    assert [RetrySucceeded(source=fetch.__qualname__, attempts=2, elapsed=0.0)] == [
        e for e in events if isinstance(e, RetrySucceeded)
    ]


def test_not_a_callable_is_a_type_error() -> None:
    """Decorating a non-callable fails loudly."""
    with pytest.raises(TypeError, match="decorates callables"):
        RetryPolicy()(42)  # type: ignore[call-overload]
