"""Tests for ``resilient()`` / ``ResiliencePolicy``: order, shared deadline, events, bad input."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import attrs
import pytest
from typing_extensions import ParamSpec

from resilient_pipeline import (
    Bulkhead,
    ConfigurationError,
    RateLimiter,
    RetryPolicy,
    fallback,
    resilient,
)
from resilient_pipeline.exceptions import BulkheadFullError, DeadlineExceededError, RejectedError
from resilient_pipeline.limits import BulkheadRejected, ResiliencePolicy, Timeout, remaining_time
from resilient_pipeline.testing import FakeClock, capture_events, set_testing
from resilient_pipeline.typing import Policy

P = ParamSpec("P")
T = TypeVar("T")


@attrs.define
class StubBreaker:
    """Breaker-like stub: refuses while ``open`` with a retry_after, and records what it saw."""

    retry_after: float | None = None
    open_for: int = 0
    seen: list[str] = attrs.field(factory=list)

    def _admit(self) -> None:
        if self.open_for > 0:
            self.open_for -= 1
            self.seen.append("rejected")
            raise RejectedError("circuit open", retry_after=self.retry_after)
        self.seen.append("admitted")

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        if anyio_iscoroutine(fn):

            @functools.wraps(fn)
            async def aguarded(*args: Any, **kwargs: Any) -> Any:
                self._admit()
                return await fn(*args, **kwargs)  # type: ignore[misc]

            return aguarded  # type: ignore[return-value]

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            self._admit()
            return fn(*args, **kwargs)

        return guarded


def anyio_iscoroutine(fn: object) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


def test_the_order_is_documented_and_fixed() -> None:
    """ResiliencePolicy.order lists the layers outermost first, as the docs draw them."""
    assert ResiliencePolicy.order == (
        "fallback",
        "deadline",
        "retry",
        "breaker",
        "rate_limiter",
        "bulkhead",
        "timeout",
    )


def test_stub_breaker_is_a_policy() -> None:
    """Any decorator-like object fits the Policy protocol, as a real breaker does."""
    assert isinstance(StubBreaker(), Policy)


def test_retry_waits_out_a_rejection_within_the_deadline() -> None:
    """A breaker rejection with retry_after is waited out exactly, and counted per attempt."""
    clock = FakeClock()
    breaker = StubBreaker(retry_after=2.0, open_for=2)
    calls = []

    @resilient(
        deadline=30.0,
        retry=RetryPolicy(max_attempts=5, base_delay=0, clock=clock),
        breaker=breaker,
        clock=clock,
    )
    def fetch(day: str) -> str:
        calls.append(day)
        return day

    assert "d" == fetch("d")
    assert ["rejected", "rejected", "admitted"] == breaker.seen
    assert [2.0, 2.0] == clock.sleeps
    assert ["d"] == calls


def test_rejection_without_room_stops_at_once() -> None:
    """A rejection whose retry_after does not fit the deadline is not waited for."""
    clock = FakeClock()
    breaker = StubBreaker(retry_after=60.0, open_for=5)

    @resilient(
        deadline=10.0, retry=RetryPolicy(max_attempts=5, clock=clock), breaker=breaker, clock=clock
    )
    def fetch() -> None:
        raise AssertionError("never called")

    with pytest.raises(RejectedError):
        fetch()
    assert (["rejected"], []) == (breaker.seen, clock.sleeps)


def test_one_call_leaves_one_trail_of_events() -> None:
    """Waits, retries, the final failure and the fallback carry the attempt they belong to."""
    clock = FakeClock()

    @resilient(
        fallback=fallback("cached"),
        deadline=30.0,
        retry=RetryPolicy(max_attempts=3, base_delay=0.25, jitter=None),
        rate_limiter=RateLimiter(rate=1, burst=1, clock=clock, name="api-quota"),
        bulkhead=Bulkhead(max_concurrent=1, name="api-slots"),
        name="fetch",
        clock=clock,
    )
    def fetch() -> str:
        raise ConnectionError("reset")

    with capture_events() as events:
        assert "cached" == fetch()
    trail = [
        (type(e).__name__, getattr(e, "attempt", getattr(e, "attempts", None)), e.source)
        for e in events
    ]
    assert [
        ("RetryScheduled", 1, "fetch"),
        ("RateLimitWaited", 2, "api-quota"),
        ("RetryScheduled", 2, "fetch"),
        ("RateLimitWaited", 3, "api-quota"),
        ("RetryExhausted", 3, "fetch"),
        ("CallFinished", 3, "fetch"),
        ("FallbackUsed", 3, "fetch"),
    ] == trail
    assert [0.25, 0.75, 0.5, 0.5] == clock.sleeps


def test_the_rejecting_policy_is_named() -> None:
    """When a bulkhead refuses, its event and the retry's summary say so."""
    bulkhead = Bulkhead(max_concurrent=1, name="api-slots")
    policy = resilient(retry=RetryPolicy(max_attempts=3), bulkhead=bulkhead, name="fetch")
    with bulkhead, capture_events() as events, pytest.raises(BulkheadFullError):
        policy(lambda: None)()
    assert [("BulkheadRejected", "api-slots", 1)] == [
        (type(e).__name__, e.source, e.attempt) for e in events if isinstance(e, BulkheadRejected)
    ]


def test_policy_deadline_is_shared_by_every_layer() -> None:
    """Inside the call the remaining time is the tighter of deadline and timeout."""
    clock = FakeClock()

    @resilient(deadline=8.0, timeout=5.0, clock=clock)
    def budget() -> float | None:
        return remaining_time()

    assert 5.0 == budget()
    slow = attrs.evolve(resilient(deadline=3.0, clock=clock), timeout=Timeout(3.0, clock=clock))
    assert 3.0 == slow(remaining_time)()


@pytest.mark.anyio
async def test_async_composition_runs_and_cancels() -> None:
    """An async composition returns results and turns a hung attempt into a fallback."""
    clock = FakeClock()
    policy = resilient(
        fallback=fallback(-1, on=DeadlineExceededError),
        retry=RetryPolicy(max_attempts=2, base_delay=0, clock=clock),
        bulkhead=Bulkhead(max_concurrent=2),
        rate_limiter=RateLimiter(rate=100, clock=clock),
        timeout=0.001,
    )

    @policy
    async def fast(x: int) -> int:
        return x

    @policy
    async def hung(x: int) -> int:
        await anyio.sleep_forever()
        return x

    assert 7 == await fast(7)
    with capture_events() as events:
        assert -1 == await hung(7)
    assert 2 == len([e for e in events if type(e).__name__ == "TimedOut"])


def test_thread_timeout_keeps_the_slot_until_the_worker_ends() -> None:
    """With sync='thread', the abandoned worker keeps its bulkhead slot until it really ends."""
    bulkhead = Bulkhead(max_concurrent=1)
    release = threading.Event()
    policy = resilient(bulkhead=bulkhead, timeout=Timeout(0.001, sync="thread"))

    @policy
    def stuck() -> None:
        release.wait(5)

    with pytest.raises(DeadlineExceededError):
        stuck()
    with pytest.raises(BulkheadFullError):
        bulkhead.acquire()
    release.set()
    while bulkhead.statistics().in_flight:
        threading.Event().wait(0.001)
    with bulkhead:
        pass


@pytest.mark.parametrize(
    ("options", "option", "words"),
    [
        ({"deadline": 5.0, "timeout": 10.0}, "timeout", "longer than deadline"),
        ({"deadline": 0}, "deadline", "> 0"),
        ({"timeout": -1}, "timeout", "> 0"),
        ({"deadline": 5.0, "retry": RetryPolicy(deadline=5.0)}, "retry", "deadline once"),
        ({"timeout": 1.0, "retry": RetryPolicy(attempt_timeout=1.0)}, "retry", "limit once"),
        ({"deadline": 1.0, "retry": RetryPolicy(attempt_timeout=2.0)}, "retry", "longer than"),
        ({"retry": 3}, "retry", "RetryPolicy"),
        ({"fallback": []}, "fallback", "Fallback"),
        ({"bulkhead": 4}, "bulkhead", "policy"),
    ],
)
def test_misconfigured_compositions_are_reported(
    options: dict[str, Any], option: str, words: str
) -> None:
    """Contradicting or ill-typed parts raise at construction, naming the option."""
    with pytest.raises(ConfigurationError, match=words) as info:
        resilient(**options)
    assert option == info.value.option


def test_a_lease_shorter_than_a_call_is_reported() -> None:
    """A distributed bulkhead's lease must outlast the longest call the composition allows."""

    @attrs.define
    class LeasedBulkhead(StubBreaker):
        lease_ttl: float = 30.0

    with pytest.raises(ConfigurationError, match=r"lease_ttl=30\.0") as info:
        resilient(bulkhead=LeasedBulkhead())
    assert "bulkhead" == info.value.option
    with pytest.raises(ConfigurationError):
        resilient(bulkhead=LeasedBulkhead(), timeout=60.0)
    assert ("bulkhead ⟶ timeout 20.0 s ⟶ call") == resilient(
        bulkhead=LeasedBulkhead(), timeout=20.0
    ).describe()


def test_policy_is_a_frozen_reusable_value() -> None:
    """A ResiliencePolicy cannot be mutated and decorates many functions."""
    policy = ResiliencePolicy(timeout=5.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.timeout = None  # type: ignore[misc]
    assert (1, 2) == (policy(lambda: 1)(), policy(lambda: 2)())


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("with_retry", "per_attempt"), [(True, None), (False, None), (True, 0.001)]
)
async def test_async_deadline_ends_a_hung_call(with_retry: bool, per_attempt: float | None) -> None:
    """The overall deadline ends a hung async call, whichever layers sit inside it."""
    retry = RetryPolicy(max_attempts=3, base_delay=0) if with_retry else None

    @resilient(deadline=0.001, retry=retry, timeout=per_attempt)
    async def hung() -> None:
        await anyio.sleep_forever()

    with pytest.raises(DeadlineExceededError):
        await hung()


def test_real_circuit_breaker_in_the_composition() -> None:
    """A real CircuitBreaker inside resilient(): the retry waits out an open circuit's
    retry_after when the deadline allows, and the breaker closes after a good probe."""
    from resilient_pipeline import CircuitBreaker, ConsecutiveFailures, OpenDuration, RetryPolicy

    clock = FakeClock()
    breaker = CircuitBreaker(
        name="ads",
        trip=ConsecutiveFailures(threshold=2),
        open_duration=OpenDuration(seconds=5.0, jitter=0.0),
        clock=clock,
    )
    outcomes = iter([ConnectionError("down"), ConnectionError("down"), None])
    calls = []

    @resilient(
        retry=RetryPolicy(max_attempts=5, base_delay=0, jitter=None), breaker=breaker, deadline=60
    )
    def fetch() -> str:
        calls.append(clock.monotonic())
        error = next(outcomes)
        if error is not None:
            raise error
        return "rows"

    with set_testing(clock=clock), capture_events() as events:
        assert "rows" == fetch()
    names = [type(e).__name__ for e in events]
    assert 3 == len(calls)  # two failures open the circuit; the third call is the probe
    assert "CircuitOpened" in names
    assert "CallRejected" in names
    assert ["CircuitClosed", "RetrySucceeded", "CallFinished"] == names[-3:]
    assert 5.0 <= calls[2] - calls[1]  # the retry waited out the open circuit
    assert "closed" == breaker.statistics().state


@attrs.define
class Recording:
    """A stand-in rate limiter or bulkhead (not the in-memory class): notes what it sees."""

    name: str
    look: Callable[[], object]
    seen: list[tuple[str, object]]

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        if anyio_iscoroutine(fn):

            @functools.wraps(fn)
            async def alayer(*args: Any, **kwargs: Any) -> Any:
                self.seen.append((self.name, self.look()))
                return await fn(*args, **kwargs)  # type: ignore[misc]

            return alayer  # type: ignore[return-value]

        @functools.wraps(fn)
        def layer(*args: P.args, **kwargs: P.kwargs) -> T:
            self.seen.append((self.name, self.look()))
            return fn(*args, **kwargs)

        return layer


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("real_limiter", [False, True])
@pytest.mark.parametrize("real_bulkhead", [False, True])
def test_layers_keep_their_order_whichever_are_in_memory(
    is_async: bool, real_limiter: bool, real_bulkhead: bool
) -> None:
    """Breaker, limiter, bulkhead and timeout run in the documented order, fused or not."""
    clock = FakeClock()
    seen: list[tuple[str, object]] = []
    limiter = RateLimiter(rate=1, burst=5, clock=clock)
    bulkhead = Bulkhead(max_concurrent=2)

    def state() -> tuple[float, int, float | None]:
        return (limiter.available(), bulkhead.statistics().in_flight, remaining_time())

    breaker = Recording("breaker", state, seen)
    policy = resilient(
        deadline=60.0,
        retry=RetryPolicy(max_attempts=2, base_delay=0, clock=clock),
        breaker=breaker,
        rate_limiter=limiter if real_limiter else Recording("rate_limiter", state, seen),
        bulkhead=bulkhead if real_bulkhead else Recording("bulkhead", state, seen),
        timeout=10.0,
        clock=clock,
    )

    def fetch() -> str:
        seen.append(("call", state()))
        return "ok"

    async def afetch() -> str:
        return fetch()

    if is_async:
        assert "ok" == anyio.run(policy(afetch))
    else:
        assert "ok" == policy(fetch)()
    took = 4.0 if real_limiter else 5.0  # tokens left once the limiter ran
    held = 1 if real_bulkhead else 0  # slots taken once the bulkhead ran
    expected = [("breaker", (5.0, 0, 60.0))]
    if not real_limiter:
        expected.append(("rate_limiter", (5.0, 0, 60.0)))
    if not real_bulkhead:
        expected.append(("bulkhead", (took, 0, 60.0)))
    expected.append(("call", (took, held, 10.0)))
    assert expected == seen
    assert (5.0 if not real_limiter else 4.0, 0) == (
        limiter.available(),
        bulkhead.statistics().in_flight,
    )


@pytest.mark.parametrize("is_async", [False, True])
@pytest.mark.parametrize("with_breaker", [False, True])
def test_every_attempt_is_numbered_with_or_without_a_breaker(
    is_async: bool, with_breaker: bool
) -> None:
    """current_attempt() inside the call counts the attempts of this call, from 1."""
    from resilient_pipeline.limits import current_attempt

    numbers: list[int | None] = []

    def fetch() -> str:
        numbers.append(current_attempt())
        if len(numbers) % 3:
            raise ConnectionError("flaky")
        return "ok"

    async def afetch() -> str:
        return fetch()

    policy = resilient(
        retry=RetryPolicy(max_attempts=3, base_delay=0),
        breaker=StubBreaker() if with_breaker else None,
        rate_limiter=RateLimiter(rate=1e9),
        bulkhead=Bulkhead(max_concurrent=1),
    )
    call = (lambda: anyio.run(policy(afetch))) if is_async else policy(fetch)
    assert ["ok", "ok"] == [call(), call()]
    assert [1, 2, 3, 1, 2, 3] == numbers
