"""Thin sync and async drivers that act on the retry core's decisions."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from resilient_pipeline._core import (
    DEADLINE,
    OBSERVED,
    armed,
    cancel_scope,
)
from resilient_pipeline.exceptions import ConfigurationError, DeadlineExceededError

from ._engine import NO_RESULT, Call
from ._policy import RetryPolicy

__all__ = ["Attempt", "Retrying", "aresume", "decorate", "resume"]

P = ParamSpec("P")
T = TypeVar("T")


def _source(policy: RetryPolicy, fn: Callable[..., Any]) -> str:
    return policy.name or getattr(fn, "__qualname__", None) or repr(fn)


def _timed(policy: RetryPolicy) -> bool:
    return (
        policy.deadline is not None
        or policy.attempt_timeout is not None
        or policy.budget is not None
    )


# ----------------------------------------------------------------------- sync
def _retry_sync(
    call: Call,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: Exception | None,
    result: Any,
) -> Any:
    check = call.policy.retry_on_result
    while True:
        if error is not None or result is not NO_RESULT:
            delay = call.next_delay(error, result)
            if delay is None:
                raise call.give_up(error, result)
            if delay > 0:
                call.clock.sleep(delay)
        token = call.begin()
        try:
            result = fn(*args, **kwargs)
            error = None
        except Exception as exc:  # BaseException-only (cancellation, Ctrl-C) passes through
            error, result = exc, NO_RESULT
        finally:
            call.end(token)
        if error is None and (check is None or not call.rejects(result)):
            call.succeeded()
            return result


def resume(
    policy: RetryPolicy,
    source: str,
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: Exception,
) -> T:
    """Go on retrying ``fn`` after a first attempt, run by the caller, raised ``error``.

    What the decorator's untimed fast path does once its first attempt
    failed, for callers that ran that attempt in their own frame (the fused
    success path of ``resilient()``): the same decisions, events and notes.
    ``policy`` must be untimed (no deadline, attempt timeout or budget).

    Examples:
        >>> calls = []
        >>> def flaky() -> str:
        ...     calls.append(1)
        ...     return "ok"
        >>> resume(RetryPolicy(base_delay=0), "flaky", flaky, (), {}, ConnectionError("reset"))
        'ok'
        >>> len(calls)
        1
    """
    call = Call(policy, source, timed=False)
    return cast("T", _retry_sync(call, fn, args, kwargs, error, NO_RESULT))


def _decorate_sync(policy: RetryPolicy, fn: Callable[P, T]) -> Callable[P, T]:
    source = _source(policy, fn)
    check = policy.retry_on_result

    @functools.wraps(fn)
    def timed(*args: P.args, **kwargs: P.kwargs) -> T:
        call = Call(policy, source, timed=True)
        return cast("T", _retry_sync(call, fn, args, kwargs, None, NO_RESULT))

    if _timed(policy) or policy.on_event:
        return timed

    # The fast paths: no clock read, no allocation, until something fails --
    # unless a subscriber listens, which gets every call timed (CallFinished).
    observed = OBSERVED  # non-empty while anyone but the log sink listens
    if check is None:

        def slow(error: Exception | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
            """All but an unobserved success: a timed call (``None``), or retries after ``error``.

            Out of ``plain`` so that its frame holds three cells: the success
            path pays for every cell and local of its frame.
            """
            if error is None:
                return timed(*args, **kwargs)
            return resume(policy, source, fn, args, kwargs, error)

        @functools.wraps(fn)
        def plain(*args: P.args, **kwargs: P.kwargs) -> T:
            if observed:
                return slow(None, args, kwargs)
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                error = exc  # the retries run outside the except: no implicit chaining
            return slow(error, args, kwargs)

        return plain

    @functools.wraps(fn)
    def checked(*args: P.args, **kwargs: P.kwargs) -> T:
        if observed:
            return timed(*args, **kwargs)
        error: Exception | None
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            error = exc
        else:
            try:
                bad = bool(check(result))
            except Exception as exc:
                raise Call(policy, source, timed=False).result_check_failed(exc, result) from exc
            if not bad:
                return result
            error = None
        call = Call(policy, source, timed=False)
        return cast(
            "T",
            _retry_sync(call, fn, args, kwargs, error, NO_RESULT if error is not None else result),
        )

    return checked


# ---------------------------------------------------------------------- async
async def _attempt_async(
    call: Call, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    at = call.attempt_at  # set by call.begin() for this attempt
    if at is None or not call.cancel:
        return await fn(*args, **kwargs)
    budget = at - call.clock.monotonic()
    # The deadline is armed only if the attempt suspends: one that does not
    # cannot be cancelled anyway, and is spared the timer (see armed()).
    with cancel_scope() as scope:
        return await armed(fn(*args, **kwargs), scope, call.clock, at)
    if not scope.cancelled_caught:  # pragma: no cover - the block returned or raised
        raise AssertionError("unreachable")
    overall = call.deadline_at is not None and at >= call.deadline_at
    what = "the deadline" if overall else f"attempt_timeout={call.policy.attempt_timeout}"
    call.timed_out = not overall
    raise DeadlineExceededError(
        f"{call.source}: attempt {call.attempts + 1} cancelled after {budget:.3f} s by {what}",
        timeout=budget,
    )


async def _retry_async(
    call: Call,
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: Exception | None,
    result: Any,
) -> Any:
    check = call.policy.retry_on_result
    while True:
        if error is not None or result is not NO_RESULT:
            delay = call.next_delay(error, result)
            if delay is None:
                raise call.give_up(error, result)
            if delay > 0:
                await call.clock.asleep(delay)
        token = call.begin()
        try:
            result = await _attempt_async(call, fn, args, kwargs)
            error = None
        except Exception as exc:
            error, result = exc, NO_RESULT
        finally:
            call.end(token)
        if error is None and (check is None or not call.rejects(result)):
            call.succeeded()
            return result


async def aresume(
    policy: RetryPolicy,
    source: str,
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: Exception,
    *,
    cancel: bool = True,
) -> T:
    """Async twin of :func:`resume` (``cancel``: as for :func:`decorate`).

    Examples:
        >>> import anyio
        >>> async def fetch() -> str:
        ...     return "ok"
        >>> anyio.run(lambda: aresume(RetryPolicy(), "fetch", fetch, (), {}, OSError("reset")))
        'ok'
    """
    call = Call(policy, source, timed=False)
    call.cancel = cancel
    return cast("T", await _retry_async(call, fn, args, kwargs, error, NO_RESULT))


def _decorate_async(
    policy: RetryPolicy, fn: Callable[P, Awaitable[T]], cancel: bool
) -> Callable[P, Awaitable[T]]:
    source = _source(policy, fn)

    def new_call(*, timed: bool) -> Call:
        call = Call(policy, source, timed=timed)
        call.cancel = cancel
        return call

    if _timed(policy) or policy.retry_on_result is not None or policy.on_event:

        @functools.wraps(fn)
        async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
            call = new_call(timed=True)
            return cast("T", await _retry_async(call, fn, args, kwargs, None, NO_RESULT))

        return timed

    observed = OBSERVED

    @functools.wraps(fn)
    async def plain(*args: P.args, **kwargs: P.kwargs) -> T:
        if observed or (cancel and DEADLINE.get() is not None):
            # An enclosing deadline must be able to cancel even the first attempt;
            # a subscriber gets every call timed (CallFinished).
            call = new_call(timed=True)
            return cast("T", await _retry_async(call, fn, args, kwargs, None, NO_RESULT))
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            error = exc
        return await aresume(policy, source, fn, args, kwargs, error, cancel=cancel)

    return plain


def decorate(policy: RetryPolicy, fn: Callable[P, T], *, cancel: bool = True) -> Callable[P, T]:
    """Wrap ``fn`` (a function, method, static or class method, coroutine function) in ``policy``.

    Generator functions are refused: calling one only creates the generator.

    ``cancel=False`` is for compositions whose inner layers already run every
    attempt in a cancel scope bounded by the shared deadline (a ``Timeout``):
    the retry then only publishes the deadline, saving a second scope.
    """
    # Above @staticmethod / @classmethod: retry the function, then wrap it again.
    descriptor: object = fn  # a classmethod is no Callable to type checkers
    if isinstance(descriptor, (staticmethod, classmethod)):
        inner = decorate(policy, descriptor.__func__, cancel=cancel)
        return cast("Callable[P, T]", type(descriptor)(inner))
    if not callable(fn):
        raise TypeError(f"retry_with_backoff decorates callables, not {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        kind = "an async generator" if inspect.isasyncgenfunction(fn) else "a generator"
        # Never repr(fn): a partial's repr shows its arguments (tokens, passwords).
        name = policy.name or getattr(fn, "__qualname__", None) or type(fn).__qualname__
        raise ConfigurationError(
            f"retry_with_backoff cannot retry {name}: it is {kind} function, "
            "whose body runs only as the caller iterates, after the call has returned, so "
            "there would be nothing to retry; retry the code that iterates it (a retrying() "
            "block) or a function that returns a list",
            value=fn,
        )
    if inspect.iscoroutinefunction(fn):
        return cast("Callable[P, T]", _decorate_async(policy, fn, cancel))
    return _decorate_sync(policy, fn)


# ----------------------------------------------------------------- block form
class Attempt:
    """One attempt of a :class:`Retrying` block; use it as a context manager.

    An exception that will be retried is swallowed by ``with attempt:``; the
    last one (or one that is not retryable) propagates with a note listing
    every attempt.

    Attributes:
        number: The attempt's number, from 1.
    """

    __slots__ = ("_call", "_delay", "_token", "number")

    def __init__(self, call: Call, number: int) -> None:
        self._call = call
        self._delay: float | None = None
        self._token: object = None
        self.number = number

    def __repr__(self) -> str:
        return f"<Attempt {self.number} of {self._call.source}>"

    def __enter__(self) -> Attempt:
        self._token = self._call.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        call = self._call
        call.end(self._token)
        if exc is None:
            call.succeeded()
            return False
        if not isinstance(exc, Exception):
            return False
        delay = call.next_delay(exc, NO_RESULT)
        if delay is None:
            raised = call.give_up(exc, NO_RESULT)
            if raised is not exc:  # pragma: no cover - exceptions are re-raised as themselves
                raise raised
            return False
        self._delay = delay
        return True


class Retrying:
    """Retry a block of code: ``for attempt in retrying(): with attempt: ...``.

    Iterate with ``for`` in sync code and ``async for`` in async code; both
    use the same core as the decorator. Only exceptions are retried here: a
    policy with ``retry_on_result`` is refused, since a block has no result.

    Examples:
        >>> from resilient_pipeline.retry import retrying
        >>> calls = []
        >>> for attempt in retrying(base_delay=0):
        ...     with attempt:
        ...         calls.append(attempt.number)
        ...         if len(calls) < 3:
        ...             raise ConnectionError("flaky")
        >>> calls
        [1, 2, 3]
    """

    __slots__ = ("_policy",)

    def __init__(self, policy: RetryPolicy) -> None:
        if policy.retry_on_result is not None:
            raise ConfigurationError.for_option(
                "retry_on_result",
                policy.retry_on_result,
                "applies to the decorator only: a retrying() block has no result to judge",
            )
        self._policy = policy

    def __repr__(self) -> str:
        return f"Retrying({self._policy!r})"

    def _call(self) -> Call:
        return Call(self._policy, self._policy.name or "retrying", timed=True)

    def __iter__(self) -> Iterator[Attempt]:
        call = self._call()
        attempt = Attempt(call, 1)
        while True:
            yield attempt
            if (step := _after(attempt)) is None:
                return
            delay, attempt = step
            if delay > 0:
                call.clock.sleep(delay)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        # An iterator object, not an async generator: an error escaping the
        # ``async for`` leaves nothing that needs closing (trio warns otherwise).
        return _AsyncAttempts(self._call())


def _after(attempt: Attempt) -> tuple[float, Attempt] | None:
    """What follows ``attempt``: the delay before the next one and that attempt, or the end."""
    if attempt._delay is None:
        return None
    return attempt._delay, Attempt(attempt._call, attempt.number + 1)


class _AsyncAttempts:
    """The attempts of one ``async for`` over :class:`Retrying`."""

    __slots__ = ("_call", "_last")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._last: Attempt | None = None

    def __aiter__(self) -> _AsyncAttempts:
        return self

    async def __anext__(self) -> Attempt:
        if self._last is None:
            self._last = Attempt(self._call, 1)
            return self._last
        if (step := _after(self._last)) is None:
            raise StopAsyncIteration
        delay, self._last = step
        if delay > 0:
            await self._call.clock.asleep(delay)
        return self._last


RetryPolicy.drivers = sys.modules[__name__]
