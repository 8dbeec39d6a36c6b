"""A retry predicate that raises: a typed error naming it, the real error chained, no retry.

Every predicate (``retry_if``, ``retry_on_result``, ``retry_after``) is made to
fail on the first or the second judgement, under every driver: the sync and
async decorators and the sync and async ``retrying()`` blocks.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from resilient_pipeline import retry_with_backoff, retrying
from resilient_pipeline.exceptions import PermanentError, RetryPredicateError
from resilient_pipeline.retry import RetryExhausted, RetryScheduled
from resilient_pipeline.testing import FakeClock, capture_events

KINDS = ("retry_if", "retry_on_result", "retry_after")


class PredicateBugError(Exception):
    """What the faulty predicate raises."""


@attrs.define
class Script:
    """One retried call: attempts raise ``ConnectionError`` (or return a page for
    ``retry_on_result``); the predicate answers "retry" until its ``fail_on``-th
    judgement, which raises."""

    kind: str
    fail_on: int
    clock: FakeClock = attrs.field(factory=FakeClock)
    raised: list[Exception] = attrs.field(factory=list)
    judged: list[object] = attrs.field(factory=list)
    bugs: list[PredicateBugError] = attrs.field(factory=list)

    def attempt(self) -> object:
        """An attempt: a new error each time (or a page, when results are judged)."""
        if self.kind == "retry_on_result":
            return f"page {len(self.raised) + len(self.judged)}"
        error = ConnectionError(f"attempt {len(self.raised) + 1}: connection reset")
        self.raised.append(error)
        raise error

    def predicate(self, outcome: object) -> Any:
        """Answer "retry" (True, or no server hint) until the ``fail_on``-th judgement."""
        self.judged.append(outcome)
        if len(self.judged) == self.fail_on:
            bug = PredicateBugError(f"cannot judge {outcome!r}")
            self.bugs.append(bug)
            raise bug
        return None if self.kind == "retry_after" else True

    @property
    def options(self) -> dict[str, Any]:
        """Retry options with this script's predicate, an exact schedule and room to retry."""
        return {
            self.kind: self.predicate,
            "max_attempts": 5,
            "base_delay": 1.0,
            "jitter": None,
            "clock": self.clock,
            "name": "fetch",
        }

    def check(self, error: RetryPredicateError, events: list[Any]) -> None:
        """The error names the predicate, chains both exceptions, and nothing ran after it."""
        attempts = self.fail_on
        assert (self.kind, "Script.predicate", attempts) == (
            error.option,
            error.predicate,
            error.attempts,
        )
        assert f"fetch: {self.kind} predicate Script.predicate raised PredicateBugError" in str(
            error
        )
        assert self.bugs == [error.__cause__]
        # No attempt after the failed judgement, and only the sleeps before it.
        assert [1.0 * 2**n for n in range(attempts - 1)] == self.clock.sleeps
        assert attempts == len(self.judged)
        if self.kind == "retry_on_result":
            assert error.error is None
            assert f"the result of attempt {attempts} (a str)" in str(error)
        else:
            assert attempts == len(self.raised)
            assert self.raised[-1] is error.error
            assert self.raised[-1] is self.judged[-1]
            assert self.raised[-1] in context_chain(self.bugs[0])  # shown in the traceback
            assert f"attempt {attempts} (ConnectionError: attempt {attempts}" in str(error)
        exhausted = [e for e in events if isinstance(e, RetryExhausted)]
        assert [("predicate_failed", attempts)] == [(e.reason, e.attempts) for e in exhausted]
        assert attempts - 1 == sum(isinstance(e, RetryScheduled) for e in events)


def context_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception in its ``__context__`` chain."""
    chain = [error]
    while chain[-1].__context__ is not None and len(chain) < 10:
        chain.append(chain[-1].__context__)
    return chain


CASES = [pytest.param(kind, n, id=f"{kind}-judgement-{n}") for kind in KINDS for n in (1, 2)]
BLOCK_CASES = [c for c in CASES if c.values[0] != "retry_on_result"]


@pytest.mark.parametrize(("kind", "fail_on"), CASES)
def test_sync_decorator(kind: str, fail_on: int) -> None:
    """@retry_with_backoff on a function."""
    script = Script(kind, fail_on)
    fetch = retry_with_backoff(**script.options)(script.attempt)
    with capture_events() as events, pytest.raises(RetryPredicateError) as info:
        fetch()
    script.check(info.value, events)


@pytest.mark.parametrize(("kind", "fail_on"), CASES)
def test_sync_decorator_with_a_deadline(kind: str, fail_on: int) -> None:
    """The timed driver (a deadline) behaves the same."""
    script = Script(kind, fail_on)
    fetch = retry_with_backoff(**script.options, deadline=100.0)(script.attempt)
    with capture_events() as events, pytest.raises(RetryPredicateError) as info:
        fetch()
    script.check(info.value, events)


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "fail_on"), CASES)
async def test_async_decorator(kind: str, fail_on: int) -> None:
    """@retry_with_backoff on a coroutine function (asyncio and trio)."""
    script = Script(kind, fail_on)

    @retry_with_backoff(**script.options)
    async def fetch() -> object:
        return script.attempt()

    with capture_events() as events, pytest.raises(RetryPredicateError) as info:
        await fetch()
    script.check(info.value, events)


@pytest.mark.parametrize(("kind", "fail_on"), BLOCK_CASES)
def test_sync_block(kind: str, fail_on: int) -> None:
    """``for attempt in retrying(): with attempt:``."""
    script = Script(kind, fail_on)

    def fetch() -> None:
        for attempt in retrying(**script.options):
            with attempt:
                script.attempt()

    with capture_events() as events, pytest.raises(RetryPredicateError) as info:
        fetch()
    script.check(info.value, events)


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "fail_on"), BLOCK_CASES)
async def test_async_block(kind: str, fail_on: int) -> None:
    """``async for attempt in retrying(): with attempt:`` (asyncio and trio)."""
    script = Script(kind, fail_on)

    async def fetch() -> None:
        async for attempt in retrying(**script.options):
            with attempt:
                script.attempt()

    with capture_events() as events, pytest.raises(RetryPredicateError) as info:
        await fetch()
    script.check(info.value, events)


@pytest.mark.parametrize(
    ("hint", "shown"),
    [("soon", "a str"), (-1.0, "-1.0"), (float("nan"), "nan"), (True, "True")],
)
def test_retry_after_returning_nonsense_is_refused(hint: object, shown: str) -> None:
    """A hint that is not None or seconds >= 0 stops the call the same way, with no cause."""
    clock = FakeClock()
    raised: list[Exception] = []

    def fetch() -> None:
        raised.append(ConnectionError("reset"))
        raise raised[-1]

    def read_hint(outcome: object) -> Any:
        return hint

    wrapped = retry_with_backoff(retry_after=read_hint, clock=clock, name="fetch")(fetch)
    with pytest.raises(RetryPredicateError) as info:
        wrapped()
    assert ("retry_after", 1, None) == (info.value.option, len(raised), info.value.__cause__)
    assert raised[0] is info.value.error
    assert f"read_hint returned {shown}, not None or seconds >= 0" in str(info.value)
    assert [] == clock.sleeps


def test_predicate_error_is_permanent_for_an_enclosing_retry() -> None:
    """An outer retry does not retry an inner predicate's failure (it is a PermanentError)."""
    clock = FakeClock()
    calls: list[int] = []

    def broken(error: Exception) -> bool:
        raise PredicateBugError("broken")

    @retry_with_backoff(retry_if=broken, clock=clock)
    def inner() -> None:
        calls.append(1)
        raise ConnectionError("reset")

    outer = retry_with_backoff(clock=clock)(inner)
    with pytest.raises(RetryPredicateError) as info:
        outer()
    assert isinstance(info.value, PermanentError)
    assert ([1], []) == (calls, clock.sleeps)


def test_a_predicate_result_whose_truth_raises_is_a_predicate_failure() -> None:
    """``retry_on_result`` returning something with no truth value fails like a raise."""

    class Ambiguous:
        def __bool__(self) -> bool:
            raise ValueError("the truth value of an array is ambiguous")

    def is_bad(result: object) -> Any:
        return Ambiguous()

    fetch = retry_with_backoff(retry_on_result=is_bad, clock=FakeClock())(lambda: [1, 2])
    with pytest.raises(RetryPredicateError) as info:
        fetch()
    assert ("retry_on_result", 1) == (info.value.option, info.value.attempts)
    assert isinstance(info.value.__cause__, ValueError)


def test_predicate_error_pickles_with_its_context() -> None:
    """The error crosses process boundaries with its attributes."""
    original = ConnectionError("reset")
    error = RetryPredicateError(
        "fetch: retry_if ...", option="retry_if", predicate="f", error=original, attempts=2
    )
    clone = pickle.loads(pickle.dumps(error))
    assert ("fetch: retry_if ...", "retry_if", "f", 2) == (
        str(clone),
        clone.option,
        clone.predicate,
        clone.attempts,
    )
    assert ("ConnectionError", ("reset",)) == (type(clone.error).__name__, clone.error.args)


def test_secrets_in_the_judged_error_are_masked_in_the_message() -> None:
    """The message describes the attempt's error the way events do: secrets masked."""

    def broken(error: Exception) -> bool:
        raise PredicateBugError("broken")

    def fetch() -> None:
        raise ConnectionError("https://u:hunter2@api.example/x refused")

    wrapped: Callable[[], None] = retry_with_backoff(retry_if=broken, clock=FakeClock())(fetch)
    with pytest.raises(RetryPredicateError) as info:
        wrapped()
    assert "hunter2" not in str(info.value)
    assert "hunter2" in str(info.value.error)  # the original itself is untouched
