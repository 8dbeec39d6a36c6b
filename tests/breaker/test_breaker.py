"""The circuit breaker's behaviour: transitions, policies, classification, forms, events."""

from __future__ import annotations

import contextlib
import inspect
import pickle
import random
import threading
from typing import Any

import anyio
import attrs
import pytest

from resilient_pipeline import (
    CircuitBreaker,
    CircuitOpenError,
    ConfigurationError,
    ConsecutiveFailures,
    OpenDuration,
    retry_with_backoff,
)
from resilient_pipeline.breaker import (
    CallRejected,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    FailureRate,
    HalfOpen,
)
from resilient_pipeline.exceptions import RejectedError
from resilient_pipeline.testing import FakeClock, capture_events, set_testing


class Down(ConnectionError):
    """The upstream failed."""


def fail() -> None:
    raise Down("upstream down")


def ok() -> str:
    return "ok"


def attempt(breaker: CircuitBreaker, fn: Any = fail) -> str:
    """Run ``fn`` through ``breaker``; say how it ended."""
    try:
        breaker.call(fn)
    except CircuitOpenError:
        return "rejected"
    except Down:
        return "failed"
    return "ok"


def make(clock: FakeClock, **options: Any) -> CircuitBreaker:
    options.setdefault("trip", ConsecutiveFailures(threshold=3))
    options.setdefault("open_duration", OpenDuration(seconds=10))
    return CircuitBreaker(name="ads", clock=clock, **options)


# ----------------------------------------------------------------- transitions
def test_defaults_match_the_seed_five_failures_sixty_seconds() -> None:
    """By default five failures in a row open the circuit for 60 s."""
    clock = FakeClock()
    breaker = CircuitBreaker(name="ads", clock=clock)
    assert ["failed"] * 5 == [attempt(breaker) for _ in range(5)]
    assert "open" == breaker.state
    assert 60.0 == breaker.statistics().retry_after


def test_success_resets_consecutive_failures() -> None:
    """A success between failures keeps the circuit closed."""
    breaker = make(FakeClock())
    for fn in (fail, fail, ok, fail, fail):
        attempt(breaker, fn)
    assert "closed" == breaker.state
    assert 2 == breaker.statistics().consecutive_failures


def test_open_rejects_without_calling_then_half_opens() -> None:
    """While open the function never runs; after the open duration one probe may."""
    clock = FakeClock()
    breaker = make(clock)
    calls: list[int] = []

    def counted() -> str:
        calls.append(1)
        return "ok"

    for _ in range(3):
        attempt(breaker)
    assert "rejected" == attempt(breaker, counted)
    assert [] == calls
    clock.advance(10)
    assert "half_open" == breaker.state
    assert "ok" == attempt(breaker, counted)
    assert "closed" == breaker.state


def test_failed_probe_reopens() -> None:
    """One failed trial sends the circuit back to open."""
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(3):
        attempt(breaker)
    clock.advance(10)
    assert "failed" == attempt(breaker)
    assert "open" == breaker.state
    assert 2 == breaker.statistics().openings


def test_rejection_carries_name_state_and_retry_after() -> None:
    """CircuitOpenError names the breaker and says when a probe is allowed."""
    clock = FakeClock()
    breaker = make(clock)
    for _ in range(3):
        attempt(breaker)
    clock.advance(4)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert ("ads", "open", 6.0) == (info.value.name, info.value.state, info.value.retry_after)
    assert isinstance(info.value, RejectedError)


def test_every_rejection_is_a_fresh_exception() -> None:
    """Rejections never share an exception instance (no traceback build-up)."""
    breaker = make(FakeClock())
    breaker.force_open()
    errors = []
    for _ in range(3):
        try:
            breaker.call(ok)
        except CircuitOpenError as exc:
            errors.append(exc)
    assert 3 == len({id(e) for e in errors})
    depths = []
    for error in errors:
        depth, tb = 0, error.__traceback__
        while tb is not None:
            depth, tb = depth + 1, tb.tb_next
        depths.append(depth)
    assert [depths[0]] * 3 == depths


def test_circuit_open_error_pickles() -> None:
    """The error crosses process boundaries with its attributes."""
    err = pickle.loads(pickle.dumps(CircuitOpenError("ads", state="open", retry_after=3.0)))
    assert ("ads", "open", 3.0) == (err.name, err.state, err.retry_after)


# ---------------------------------------------------------------------- policies
def test_failure_rate_over_count_window_waits_for_minimum_calls() -> None:
    """FailureRate trips only once the window holds minimum_calls."""
    trip = FailureRate(threshold=0.5, window_calls=10, minimum_calls=4)
    breaker = make(FakeClock(), trip=trip)
    for fn in (fail, fail, fail):
        attempt(breaker, fn)
    assert "closed" == breaker.state
    attempt(breaker, ok)
    assert "open" == breaker.state


def test_count_window_forgets_old_calls() -> None:
    """Only the last window_calls outcomes count."""
    trip = FailureRate(threshold=0.5, window_calls=4, minimum_calls=4)
    breaker = make(FakeClock(), trip=trip)
    for fn in (fail, ok, ok, ok, ok, fail):
        attempt(breaker, fn)
    stats = breaker.statistics()
    assert ("closed", 0.25, 4) == (stats.state, stats.failure_rate, stats.window_calls)


def test_time_window_forgets_calls_older_than_the_window() -> None:
    """A time-based window drops calls older than window_seconds."""
    clock = FakeClock()
    trip = FailureRate(threshold=0.5, window_seconds=60, minimum_calls=3)
    breaker = make(clock, trip=trip)
    attempt(breaker)
    attempt(breaker)
    clock.advance(63)  # the window's edge moves in steps of window_seconds / 20
    attempt(breaker)
    attempt(breaker, ok)
    attempt(breaker, ok)
    stats = breaker.statistics()
    assert ("closed", 3) == (stats.state, stats.window_calls)
    attempt(breaker)
    assert "open" == breaker.state


def test_slow_successes_count_as_failures() -> None:
    """With slow_call_duration, a slow success counts against the rate."""
    clock = FakeClock()
    trip = FailureRate(threshold=1.0, window_calls=2, minimum_calls=2, slow_call_duration=5)
    breaker = make(clock, trip=trip)

    def slow() -> str:
        clock.advance(6)
        return "ok"

    assert ["ok", "ok"] == [attempt(breaker, slow), attempt(breaker, slow)]
    assert "open" == breaker.state


def test_open_duration_grows_exponentially_and_caps() -> None:
    """Re-openings in a row stay open longer, up to max_seconds."""
    clock = FakeClock()
    duration = OpenDuration(seconds=10, multiplier=2, max_seconds=30)
    breaker = make(clock, open_duration=duration, trip=ConsecutiveFailures(threshold=1))
    seen = []
    attempt(breaker)
    for _ in range(3):
        seen.append(breaker.statistics().retry_after)
        clock.advance(seen[-1] or 0)
        attempt(breaker)
    assert [10.0, 20.0, 30.0] == seen


def test_open_duration_jitter_shortens_within_bounds() -> None:
    """Jitter draws the open duration from [(1 - jitter) * d, d]."""
    duration = OpenDuration(seconds=100, jitter=0.2)
    rng = random.Random(7)
    draws = [duration.duration(1, rng.random()) for _ in range(200)]
    assert all(80.0 <= d <= 100.0 for d in draws)
    assert len(set(draws)) > 100


def test_retry_after_hint_keeps_the_circuit_open_at_least_that_long() -> None:
    """A failure carrying Retry-After 120 s keeps the circuit open 120 s, not 10."""

    class Throttled(Exception):
        retry_after = 120.0

    def throttled() -> None:
        raise Throttled

    breaker = make(FakeClock(), trip=ConsecutiveFailures(threshold=1))
    with pytest.raises(Throttled):
        breaker.call(throttled)
    assert 120.0 == breaker.statistics().retry_after


def test_half_open_success_threshold_needs_several_trials() -> None:
    """success_threshold=2 closes only after two successful trials."""
    clock = FakeClock()
    breaker = make(clock, half_open=HalfOpen(success_threshold=2))
    for _ in range(3):
        attempt(breaker)
    clock.advance(10)
    attempt(breaker, ok)
    assert "half_open" == breaker.state
    attempt(breaker, ok)
    assert "closed" == breaker.state


def test_half_open_max_duration_reopens() -> None:
    """A circuit half-open longer than max_duration re-opens."""
    clock = FakeClock()
    breaker = make(clock, half_open=HalfOpen(success_threshold=5, max_duration=30))
    for _ in range(3):
        attempt(breaker)
    clock.advance(10)
    attempt(breaker, ok)
    clock.advance(30)
    assert "rejected" == attempt(breaker, ok)
    assert "open" == breaker.state


def test_expired_permit_frees_its_slot_and_its_late_result_is_ignored() -> None:
    """A trial that outlives permit_ttl loses its permit; another caller may probe."""
    clock = FakeClock()
    breaker = make(clock, half_open=HalfOpen(permit_ttl=5))
    for _ in range(3):
        attempt(breaker)
    clock.advance(10)
    outcomes = []

    def hung() -> None:
        clock.advance(6)
        outcomes.append(attempt(breaker, ok))  # the slot is free again: this one probes
        raise Down("late")

    assert "failed" == attempt(breaker, hung)
    assert ["ok"] == outcomes
    assert "closed" == breaker.state


# ---------------------------------------------------------------- classification
def test_failure_on_restricts_what_counts() -> None:
    """Exceptions outside failure_on count as successes (the upstream answered)."""
    breaker = make(FakeClock(), failure_on=TimeoutError)
    for _ in range(5):
        attempt(breaker)
    assert ("closed", 5) == (breaker.state, breaker.statistics().successes)


def test_ignored_exceptions_count_as_neither() -> None:
    """ignore= exceptions leave every counter but `ignored` untouched."""
    breaker = make(FakeClock(), ignore=Down)
    for _ in range(5):
        attempt(breaker)
    stats = breaker.statistics()
    assert (0, 0, 5) == (stats.successes, stats.failures, stats.ignored)


def test_failure_if_predicate() -> None:
    """failure_if narrows failure_on."""
    breaker = make(FakeClock(), failure_if=lambda e: "down" in str(e))
    for _ in range(3):
        attempt(breaker)
    assert "open" == breaker.state


def test_failure_on_result() -> None:
    """A bad result counts as a failure but is still returned."""
    breaker = make(FakeClock(), failure_on_result=lambda r: r == [])
    assert [[], [], []] == [breaker.call(list) for _ in range(3)]
    assert "open" == breaker.state


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RejectedError("busy")])
def test_interrupts_and_rejections_never_count(error: BaseException) -> None:
    """Ctrl-C and a rejection by another primitive are not upstream failures."""
    breaker = make(FakeClock(), trip=ConsecutiveFailures(threshold=1))

    def raising() -> None:
        raise error

    with pytest.raises(type(error)):
        breaker.call(raising)
    assert ("closed", 1) == (breaker.state, breaker.statistics().ignored)


@pytest.mark.anyio
async def test_cancellation_never_counts_and_frees_the_permit() -> None:
    """A cancelled trial neither re-opens nor closes, and gives its permit back."""
    clock = FakeClock()
    breaker = make(clock)
    breaker.force_open()
    breaker.reset()
    for _ in range(3):
        attempt(breaker)
    clock.advance(10)

    async def hang() -> None:
        await anyio.sleep_forever()

    with anyio.move_on_after(0.01):
        await breaker.acall(hang)
    stats = breaker.statistics()
    assert ("half_open", 0, 1) == (stats.state, stats.permits_in_use, stats.ignored)


# -------------------------------------------------------------------------- forms
def test_decorator_keeps_signature_and_metadata() -> None:
    """@breaker keeps the name, docstring and signature (sync and async)."""
    breaker = make(FakeClock())

    @breaker
    def fetch(day: str, *, limit: int = 10) -> list[str]:
        """Fetch a day."""
        return [day] * limit

    @breaker
    async def afetch(day: str) -> str:
        return day

    assert ("fetch", "Fetch a day.") == (fetch.__name__, fetch.__doc__)
    assert "(day: 'str', *, limit: 'int' = 10) -> 'list[str]'" == str(inspect.signature(fetch))
    assert inspect.iscoroutinefunction(afetch)
    assert ["d", "d"] == fetch("d", limit=2)
    assert "x" == anyio.run(afetch, "x")


def test_decorator_on_methods() -> None:
    """A decorated method gets self as usual."""
    breaker = make(FakeClock())

    class Client:
        @breaker
        def get(self, path: str) -> str:
            return path

    assert "/x" == Client().get("/x")


def test_context_manager_gates_and_counts() -> None:
    """`with breaker:` raises CircuitOpenError when open and counts failures inside."""
    breaker = make(FakeClock())
    for _ in range(3):
        with pytest.raises(Down), breaker:
            fail()
    with pytest.raises(CircuitOpenError), breaker:
        pytest.fail("the body must not run")


def test_context_manager_nests_and_rejects_unbalanced_exit() -> None:
    """Nested `with` blocks keep their own tickets; an exit without enter is an error."""
    breaker = make(FakeClock())
    with breaker, breaker:
        pass
    assert 2 == breaker.statistics().successes
    with pytest.raises(RuntimeError, match="without being entered"):
        breaker.__exit__(None, None, None)


@pytest.mark.anyio
async def test_async_context_manager() -> None:
    """`async with breaker:` gates like the sync form."""
    breaker = make(FakeClock(), trip=ConsecutiveFailures(threshold=1))
    with pytest.raises(Down):
        async with breaker:
            fail()
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("the body must not run")


def test_decorator_rejects_non_callables() -> None:
    """Decorating something that is not callable fails loudly."""
    with pytest.raises(TypeError):
        make(FakeClock())(42)  # type: ignore[call-overload]


# ----------------------------------------------------------------- manual control
def test_force_open_force_closed_and_reset() -> None:
    """force_open rejects everything, force_closed lets everything through, reset closes."""
    breaker = make(FakeClock())
    breaker.force_open()
    assert ("forced_open", "rejected") == (breaker.state, attempt(breaker, ok))
    breaker.disable()
    for _ in range(10):
        attempt(breaker)
    assert "forced_closed" == breaker.state
    breaker.reset()
    assert ("closed", 0) == (breaker.state, breaker.statistics().consecutive_failures)


@pytest.mark.anyio
async def test_async_manual_control() -> None:
    """The async twins do what the sync ones do."""
    breaker = make(FakeClock())
    await breaker.aforce_open()
    assert "forced_open" == (await breaker.astatistics()).state
    await breaker.aforce_closed()
    assert "forced_closed" == breaker.state
    await breaker.areset()
    assert "closed" == breaker.state


# ------------------------------------------------------------------------ events
def test_events_through_a_full_cycle() -> None:
    """Opened, rejected, half-opened and closed are announced in order."""
    clock = FakeClock()
    seen: list[object] = []
    breaker = make(clock, on_event=seen.append)
    for _ in range(3):
        attempt(breaker)
    attempt(breaker, ok)
    clock.advance(10)
    attempt(breaker, ok)
    assert [CircuitOpened, CallRejected, CircuitHalfOpened, CircuitClosed] == [
        type(e) for e in seen
    ]
    opened = seen[0]
    assert isinstance(opened, CircuitOpened)
    assert ("failures", 10.0, 3) == (opened.reason, opened.open_for, opened.failures)
    assert "circuit 'ads' opened (failures) for 10.0 s" == opened.message()


def test_global_subscribers_see_rejections() -> None:
    """CallRejected reaches global subscribers too."""
    breaker = make(FakeClock())
    breaker.force_open()
    with capture_events() as events:
        attempt(breaker, ok)
    assert [CallRejected] == [type(e) for e in events]


# ----------------------------------------------------------------- retry interplay
def test_retry_waits_exactly_retry_after_when_it_fits_the_deadline() -> None:
    """retry_with_backoff sleeps exactly the breaker's retry_after, then the probe runs."""
    with set_testing() as clock:
        breaker = CircuitBreaker(
            name="ads",
            trip=ConsecutiveFailures(threshold=1),
            open_duration=OpenDuration(seconds=10),
        )
        attempt(breaker)
        clock.advance(4)
        fetch = retry_with_backoff(max_attempts=3, deadline=30)(breaker(ok))
        assert "ok" == fetch()
    assert [6.0] == clock.sleeps


def test_retry_stops_when_retry_after_exceeds_the_deadline() -> None:
    """An open circuit whose retry_after does not fit the deadline ends retrying at once."""
    with set_testing() as clock:
        breaker = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=1))
        attempt(breaker)
        fetch = retry_with_backoff(max_attempts=3, deadline=30)(breaker(ok))
        with pytest.raises(CircuitOpenError):
            fetch()
    assert [] == clock.sleeps


# -------------------------------------------------------------------- concurrency
def test_lock_is_not_held_across_the_protected_call() -> None:
    """A slow call in one thread does not serialise calls in another."""
    breaker = CircuitBreaker(name="ads")
    inside, release = threading.Event(), threading.Event()

    def slow() -> str:
        inside.set()
        release.wait(5)
        return "slow"

    worker = threading.Thread(target=breaker.call, args=(slow,))
    worker.start()
    inside.wait(5)
    assert "ok" == breaker.call(ok)  # would deadlock if the lock were held
    release.set()
    worker.join(5)


def test_threads_never_exceed_half_open_permits() -> None:
    """Twenty threads racing a half-open circuit: exactly `permits` probes run."""
    clock = FakeClock()
    breaker = make(clock, half_open=HalfOpen(permits=3, success_threshold=10))
    for _ in range(3):
        attempt(breaker)
    clock.advance(10)
    barrier = threading.Barrier(20)
    running, release = [], threading.Event()
    outcomes: list[str] = []

    def probe() -> str:
        running.append(1)
        release.wait(5)
        return "ok"

    def worker() -> None:
        barrier.wait(5)
        outcomes.append(attempt(breaker, probe))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    while len(outcomes) < 17:
        threading.Event().wait(0.001)
    release.set()
    for thread in threads:
        thread.join(5)
    assert (3, 17) == (len(running), outcomes.count("rejected"))


@pytest.mark.anyio
async def test_tasks_never_exceed_half_open_permits() -> None:
    """Twenty tasks racing a half-open circuit: exactly `permits` probes run, none queue."""
    clock = FakeClock()
    breaker = make(clock, half_open=HalfOpen(permits=2, success_threshold=10))
    for _ in range(3):
        attempt(breaker)
    clock.advance(10)
    running: list[int] = []
    rejected: list[int] = []
    release = anyio.Event()

    async def probe() -> str:
        running.append(1)
        await release.wait()
        return "ok"

    async def worker() -> None:
        try:
            await breaker.acall(probe)
        except CircuitOpenError:
            rejected.append(1)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(worker)
        while len(rejected) < 18:
            await anyio.sleep(0)
        assert 2 == breaker.statistics().permits_in_use
        release.set()
    assert (2, 18) == (len(running), len(rejected))


# --------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("build", "option"),
    [
        (lambda: ConsecutiveFailures(threshold=0), "threshold"),
        (lambda: FailureRate(threshold=1.5), "threshold"),
        (lambda: FailureRate(threshold=0), "threshold"),
        (lambda: FailureRate(window_calls=10, window_seconds=5), "window_seconds"),
        (lambda: FailureRate(window_calls=5, minimum_calls=10), "minimum_calls"),
        (lambda: FailureRate(window_seconds=-1), "window_seconds"),
        (lambda: OpenDuration(seconds=10, max_seconds=5), "max_seconds"),
        (lambda: OpenDuration(multiplier=0.5), "multiplier"),
        (lambda: OpenDuration(jitter=2), "jitter"),
        (lambda: HalfOpen(permits=0), "permits"),
        (lambda: HalfOpen(permit_ttl=float("nan")), "permit_ttl"),
        (lambda: CircuitBreaker(name=""), "name"),
        (lambda: CircuitBreaker(trip=3), "trip"),  # type: ignore[arg-type]
        (lambda: CircuitBreaker(failure_on=int), "failure_on"),  # type: ignore[arg-type]
        (lambda: CircuitBreaker(failure_if=1), "failure_if"),  # type: ignore[arg-type]
        (lambda: CircuitBreaker(store=object()), "store"),  # type: ignore[arg-type]
        (lambda: CircuitBreaker(max_keys=0), "max_keys"),
    ],
)
def test_bad_options_fail_at_construction(build: Any, option: str) -> None:
    """Every invalid option raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError) as info:
        build()
    assert option == info.value.option


def test_policies_are_frozen_and_evolvable() -> None:
    """Policies are immutable values changed with attrs.evolve."""
    policy = FailureRate(window_seconds=30)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.threshold = 0.9  # type: ignore[misc]
    assert 0.9 == attrs.evolve(policy, threshold=0.9).threshold
    assert 100 == FailureRate().window_calls


@pytest.mark.parametrize("opened", ["forced", "tripped"])
def test_rejections_leave_no_reference_cycles(opened: str) -> None:
    """A rejected call's error is freed at once (no error-traceback-frame cycle for the GC)."""
    import gc

    breaker = make(FakeClock())
    guarded = breaker(ok)
    if opened == "forced":
        breaker.force_open()
    else:  # the decorator's own open-circuit path (not through admit)
        for _ in range(3):
            attempt(breaker)
    assert opened == ("forced" if breaker.state == "forced_open" else "tripped")
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            with contextlib.suppress(CircuitOpenError):
                guarded()
        assert 0 == gc.collect()
    finally:
        gc.enable()


def test_type_hints_resolve_on_every_public_breaker_class() -> None:
    """typing.get_type_hints() works on the breaker's public classes (attrs, docs tools)."""
    import typing

    from resilient_pipeline import breaker

    classes = [getattr(breaker, n) for n in breaker.__all__]
    classes = [c for c in classes if isinstance(c, type) and c.__module__.startswith("resilient")]
    assert {FailureRate, HalfOpen, OpenDuration, ConsecutiveFailures} <= set(classes)
    for cls in classes:
        assert isinstance(typing.get_type_hints(cls), dict)


@pytest.mark.parametrize("is_async", [False, True])
def test_rejections_are_logged_exactly_while_debug_is_on(
    is_async: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Turning DEBUG on or off between rejections takes effect at the next rejection."""
    import logging

    breaker = CircuitBreaker(name="ads-api")
    breaker.force_open()

    def fetch() -> int:
        return 1

    async def afetch() -> int:
        return 1

    guarded = breaker(fetch)
    aguarded = breaker(afetch)

    def reject() -> None:
        with contextlib.suppress(CircuitOpenError):
            if is_async:
                anyio.run(aguarded)
            else:
                guarded()

    logger = CallRejected.logger_name
    counts = []
    for level in (logging.WARNING, logging.DEBUG, logging.DEBUG, logging.INFO, logging.DEBUG):
        caplog.set_level(level, logger=logger)
        caplog.clear()
        reject()
        counts.append(len([r for r in caplog.records if r.name == logger]))
    assert [0, 1, 1, 0, 1] == counts
