"""One table of retry scenarios, each run by every driver: the same outcome, attempts and sleeps.

The drivers are the sync decorator, the async decorator (on asyncio and trio),
and the ``retrying()`` block form in sync and async code. They share one core,
so a scenario must end the same way under each of them: same result or
exception type, same number of attempts, same sleeps on the fake clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from resilient_pipeline.exceptions import BadResultError, ConfigurationError, PermanentError
from resilient_pipeline.retry import retry_with_backoff, retrying
from resilient_pipeline.testing import FakeClock


class Throttled(Exception):
    """A transient error carrying a server-given delay, as an HTTP 429 would."""

    retry_after = 5.0


class AccountClosedError(PermanentError):
    """An error no retry can fix."""


# The exact schedule the table expects: 1 s, then 2 s, 4 s, ... (no jitter).
SCHEDULE: dict[str, Any] = {"base_delay": 1.0, "multiplier": 2.0, "max_delay": 60.0, "jitter": None}


@attrs.frozen
class Outcome:
    """How a retried call ended: what it returned or raised, after how many attempts and sleeps."""

    ended: str  # "returned" or "raised"
    value: object  # the result, or the exception's type
    attempts: int
    sleeps: list[float]


@attrs.frozen
class Scenario:
    """A script of attempt outcomes (the last repeats) and the one expected ending."""

    id: str
    steps: tuple[object, ...]  # an exception type is raised, anything else returned
    expected: Outcome
    options: dict[str, Any] = attrs.field(factory=dict)
    takes: float = 0.0  # fake seconds each attempt runs
    block_form: bool = True  # False: the block form refuses this scenario's options

    def param(self, *, backend: str | None = None) -> Any:
        """This scenario as a pytest parameter (on ``backend``, when given)."""
        if backend is None:
            return pytest.param(self, id=self.id)
        return pytest.param(backend, self, id=f"{backend}-{self.id}")


def is_none(result: object) -> bool:
    """The retry_on_result predicate of the table: ``None`` means "incomplete, try again"."""
    return result is None


SCENARIOS = [
    Scenario("succeeds-first-time", ("ok",), Outcome("returned", "ok", 1, [])),
    Scenario(
        "fails-twice-then-succeeds",
        (ConnectionError, ConnectionError, "ok"),
        Outcome("returned", "ok", 3, [1.0, 2.0]),
    ),
    Scenario(
        "exhausts-attempts",
        (ConnectionError,),
        Outcome("raised", ConnectionError, 4, [1.0, 2.0, 4.0]),
        options={"max_attempts": 4},
    ),
    Scenario(
        "not-retryable",
        (KeyError, "ok"),
        Outcome("raised", KeyError, 1, []),
        options={"retry_on": (ConnectionError,)},
    ),
    Scenario(
        "permanent-error-never-retried",
        (AccountClosedError, "ok"),
        Outcome("raised", AccountClosedError, 1, []),
    ),
    Scenario(
        "bad-result-then-good",
        (None, "ok"),
        Outcome("returned", "ok", 2, [1.0]),
        options={"retry_on_result": is_none},
        block_form=False,
    ),
    Scenario(
        "bad-result-every-time",
        (None,),
        Outcome("raised", BadResultError, 3, [1.0, 2.0]),
        options={"retry_on_result": is_none, "max_attempts": 3},
        block_form=False,
    ),
    Scenario(
        "retry-after-hint-honoured",
        (Throttled, Throttled, "ok"),
        Outcome("returned", "ok", 3, [5.0, 5.0]),
    ),
    Scenario(
        "deadline-stops-retrying",
        (ConnectionError,),
        # Attempts take 1 s: 1 s sleep, 2 s sleep, then the 4 s due is cut to 3 s so
        # the fourth attempt (as long as the last) still fits before t=10; then no room.
        Outcome("raised", ConnectionError, 4, [1.0, 2.0, 3.0]),
        options={"deadline": 10.0, "max_attempts": 100},
        takes=1.0,
    ),
]
CASES = [s.param() for s in SCENARIOS]
ASYNC_CASES = [s.param(backend=b) for b in ("asyncio", "trio") for s in SCENARIOS]


def policy_options(scenario: Scenario, clock: FakeClock) -> dict[str, Any]:
    """The scenario's retry options on the fixed schedule and the fake clock."""
    return {**SCHEDULE, "max_attempts": 5, **scenario.options, "clock": clock}


def scripted(scenario: Scenario, clock: FakeClock, calls: list[int]) -> Callable[[], object]:
    """One attempt of the scenario: counts itself, takes its fake time, then acts its step."""

    def attempt() -> object:
        calls.append(len(calls) + 1)
        clock.advance(scenario.takes)
        step = scenario.steps[min(len(calls), len(scenario.steps)) - 1]
        if isinstance(step, type) and issubclass(step, Exception):
            raise step(f"attempt {len(calls)}")
        return step

    return attempt


def ending(clock: FakeClock, calls: list[int], fn: Callable[[], object]) -> Outcome:
    """Run ``fn`` and describe how it ended."""
    try:
        value = fn()
    except Exception as exc:
        return Outcome("raised", type(exc), len(calls), clock.sleeps)
    return Outcome("returned", value, len(calls), clock.sleeps)


async def aending(clock: FakeClock, calls: list[int], fn: Callable[[], Any]) -> Outcome:
    """Await ``fn()`` and describe how it ended."""
    try:
        value = await fn()
    except Exception as exc:
        return Outcome("raised", type(exc), len(calls), clock.sleeps)
    return Outcome("returned", value, len(calls), clock.sleeps)


def assert_refused(scenario: Scenario, clock: FakeClock) -> None:
    """A block has no result to judge: ``retry_on_result`` is refused when it is built."""
    with pytest.raises(ConfigurationError) as info:
        retrying(**policy_options(scenario, clock))
    assert "retry_on_result" == info.value.option
    assert [] == clock.sleeps


@pytest.mark.parametrize("scenario", CASES)
def test_sync_decorator(scenario: Scenario) -> None:
    """@retry_with_backoff on a plain function ends as the table says."""
    clock, calls = FakeClock(), list[int]()
    fn = retry_with_backoff(**policy_options(scenario, clock))(scripted(scenario, clock, calls))
    assert scenario.expected == ending(clock, calls, fn)


@pytest.mark.anyio
@pytest.mark.parametrize("scenario", CASES)
async def test_async_decorator(scenario: Scenario) -> None:
    """@retry_with_backoff on a coroutine function ends as the table says."""
    clock, calls = FakeClock(), list[int]()
    step = scripted(scenario, clock, calls)

    @retry_with_backoff(**policy_options(scenario, clock))
    async def fn() -> object:
        return step()

    assert scenario.expected == await aending(clock, calls, fn)


@pytest.mark.parametrize("scenario", CASES)
def test_sync_block(scenario: Scenario) -> None:
    """``for attempt in retrying(): with attempt:`` ends as the table says."""
    clock, calls = FakeClock(), list[int]()
    step = scripted(scenario, clock, calls)
    if not scenario.block_form:
        assert_refused(scenario, clock)
        return

    def fn() -> object:
        value: object = None
        for attempt in retrying(**policy_options(scenario, clock)):
            with attempt:
                value = step()
        return value

    assert scenario.expected == ending(clock, calls, fn)


@pytest.mark.anyio
@pytest.mark.parametrize(("anyio_backend", "scenario"), ASYNC_CASES)
async def test_async_block(anyio_backend: str, scenario: Scenario) -> None:
    """``async for attempt in retrying(): with attempt:`` ends as the table says."""
    clock, calls = FakeClock(), list[int]()
    step = scripted(scenario, clock, calls)
    if not scenario.block_form:
        assert_refused(scenario, clock)
        return

    async def fn() -> object:
        value: object = None
        async for attempt in retrying(**policy_options(scenario, clock)):
            with attempt:
                value = step()
        return value

    assert scenario.expected == await aending(clock, calls, fn)
