"""``timeout()`` / ``Timeout``: a time limit per call that tightens the shared deadline.

Async functions are really interrupted: they run in an anyio cancel scope
(asyncio and trio), so the first ``await`` after the limit is cancelled and
the call raises :class:`~resilient_pipeline.exceptions.DeadlineExceededError`.

Python cannot interrupt a running thread, so sync functions get one of two
honest behaviours, chosen with ``sync=``:

* ``"cooperative"`` (default): the function runs in the calling thread under
  the tightened shared deadline. Everything in resilient-pipeline inside it
  (retries, rate-limit and bulkhead waits, nested timeouts) stops at the
  deadline, and your code can size its own I/O timeouts with
  :func:`~resilient_pipeline.limits.remaining_time`. Code that ignores the deadline
  runs to completion and its result is returned, even if late.
* ``"thread"``: the function runs in a new daemon thread and the caller stops
  waiting at the limit. The thread is **abandoned, not stopped**: it keeps
  running (and holding its sockets, locks and any bulkhead slot) until the
  function returns by itself; its result or error is then dropped.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Literal, ParamSpec, TypeVar, cast

import attrs

from resilient_pipeline._core import (
    DEADLINE,
    DEFAULT_CLOCK,
    Clock,
    EventHandler,
    armed,
    cancel_scope,
    check_callable,
    emit,
    in_,
    is_async,
    normalize_handlers,
    number,
    source_of,
    tightened,
)
from resilient_pipeline.exceptions import DeadlineExceededError

from ._trail import PolicyEvent

__all__ = ["TimedOut", "Timeout", "timeout"]

P = ParamSpec("P")
T = TypeVar("T")

SyncMode = Literal["cooperative", "thread"]


@attrs.frozen(kw_only=True)
class TimedOut(PolicyEvent):
    """A call ran out of time and raised ``DeadlineExceededError``.

    Attributes:
        timeout: The seconds the call had (less than the timeout's ``seconds``
            when the shared deadline was sooner).
        abandoned: ``True`` when a worker thread was left running (``sync="thread"``).
    """

    logger_name = "resilient_pipeline.limits"
    level = logging.WARNING
    template = "{source}: timed out after {timeout:.3f} s (attempt {attempt})"

    timeout: float
    abandoned: bool = False


def _check_seconds(value: object) -> float:
    number(gt=0).check("seconds", value)
    return cast("float", value)


class _Outcome:
    """What a worker thread hands back: a result or an exception, and when it is done."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.result = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the waiting caller as is
            self.error = exc
        finally:
            self.done.set()


@attrs.frozen
class Timeout:
    """A reusable time limit: a frozen value that decorates sync and async functions.

    The limit also tightens the shared deadline (see
    :func:`~resilient_pipeline.limits.deadline_scope`), so retries, waits and nested
    timeouts inside the call never plan past it; an enclosing deadline that is
    sooner wins.

    Args:
        seconds: The limit per call (> 0).
        sync: How sync functions are limited: ``"cooperative"`` or
            ``"thread"`` (see the module documentation).
        name: The name in events and errors (default: the function's qualname).
        clock: Where time comes from.
        on_event: Handlers for this policy's events.

    Examples:
        >>> import anyio
        >>> @Timeout(0.5)
        ... async def fetch() -> None:
        ...     await anyio.sleep_forever()
        >>> try:
        ...     anyio.run(fetch)
        ... except TimeoutError as e:
        ...     print(type(e).__name__)
        DeadlineExceededError
    """

    seconds: float = attrs.field(converter=_check_seconds)
    sync: SyncMode = attrs.field(
        default="cooperative", kw_only=True, validator=in_("cooperative", "thread")
    )
    name: str | None = attrs.field(default=None, kw_only=True)
    clock: Clock | None = attrs.field(default=None, kw_only=True)
    on_event: tuple[EventHandler, ...] = attrs.field(
        default=(), kw_only=True, converter=normalize_handlers
    )

    def _enter(self, source: str) -> tuple[contextvars.Token[Any], float, bool]:
        """Tighten the shared deadline: the token to reset, the seconds available, ours or not.

        Raises at once, leaving the deadline as it was, when no time is left.
        """
        clock = DEFAULT_CLOCK[0] if self.clock is None else self.clock  # resolve_clock()
        now = clock.monotonic()
        at = now + self.seconds
        current = DEADLINE.get()
        if current is None or (current[0] is clock and current[1] > at):
            # tightened(), unrolled for the common case: our limit is the sooner.
            return DEADLINE.set((clock, at)), at - now, True
        scope = tightened(clock, at)
        available = scope[1] - scope[0].monotonic()
        if available <= 0:
            raise self._expired(source, available, scope[1] == at)
        return DEADLINE.set(scope), available, scope[1] == at

    def _expired(
        self, source: str, available: float, ours: bool, *, abandoned: bool = False
    ) -> Exception:
        event = TimedOut(source=source, timeout=max(available, 0.0), abandoned=abandoned)
        emit(event, self.on_event)
        by = f"timeout={self.seconds!r}" if ours else "the shared deadline"
        left = "; its worker thread was abandoned and keeps running" if abandoned else ""
        return DeadlineExceededError(
            f"{source}: no result within {max(available, 0.0):.3f} s ({by}){left}",
            timeout=max(available, 0.0),
        )

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate ``fn`` (sync or async); the signature is kept."""
        check_callable(fn, "timeout")
        return self._decorate(fn, source_of(self.name, fn), cancel=True)

    def _decorate(self, fn: Callable[P, T], source: str, *, cancel: bool) -> Callable[P, T]:
        """``cancel=False`` only tightens the deadline, for callers that enforce it inside."""
        if is_async(fn):
            if not cancel:
                return cast("Callable[P, T]", self._scoped(cast("Any", fn), source))
            return cast("Callable[P, T]", self._async(cast("Any", fn), source))
        if self.sync == "thread":
            return self._threaded(fn, source)
        return self._cooperative(fn, source)

    def _async(self, fn: Callable[P, Awaitable[T]], source: str) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> T:
            token, available, ours = self._enter(source)
            clock, at = DEADLINE.get()  # type: ignore[misc]  # just set by _enter
            try:
                # The scope is entered first, so it nests like any other; its
                # deadline is armed only if the call suspends (see armed()).
                with cancel_scope() as scope:
                    return await armed(fn(*args, **kwargs), scope, clock, at)
            finally:
                DEADLINE.reset(token)
            # Reached only when our own scope cancelled the call.
            raise self._expired(source, available, ours)

        return limited

    def _scoped(self, fn: Callable[P, Awaitable[T]], source: str) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def scoped(*args: P.args, **kwargs: P.kwargs) -> T:
            token = self._enter(source)[0]
            try:
                return await fn(*args, **kwargs)
            finally:
                DEADLINE.reset(token)

        return scoped

    def _cooperative(self, fn: Callable[P, T], source: str) -> Callable[P, T]:
        @functools.wraps(fn)
        def limited(*args: P.args, **kwargs: P.kwargs) -> T:
            token = self._enter(source)[0]
            try:
                return fn(*args, **kwargs)
            finally:
                DEADLINE.reset(token)

        return limited

    def _threaded(self, fn: Callable[P, T], source: str) -> Callable[P, T]:
        @functools.wraps(fn)
        def limited(*args: P.args, **kwargs: P.kwargs) -> T:
            token, available, ours = self._enter(source)
            try:
                # The worker sees the tightened deadline through a copy of our context.
                context = contextvars.copy_context()
            finally:
                DEADLINE.reset(token)
            outcome = _Outcome()
            worker = threading.Thread(
                target=context.run,
                args=(outcome.run, fn, args, kwargs),
                name=f"resilient_pipeline timeout: {source}",
                daemon=True,
            )
            worker.start()
            if not outcome.done.wait(available):
                raise self._expired(source, available, ours, abandoned=True)
            if outcome.error is not None:
                raise outcome.error
            return cast("T", outcome.result)

        return limited


def timeout(
    seconds: float,
    *,
    sync: SyncMode = "cooperative",
    name: str | None = None,
    clock: Clock | None = None,
    on_event: EventHandler | tuple[EventHandler, ...] = (),
) -> Timeout:
    """Limit each call of the decorated function to ``seconds`` (see :class:`Timeout`).

    Raises:
        ConfigurationError: When ``seconds`` is not > 0 or ``sync`` is unknown.

    Examples:
        >>> from resilient_pipeline.limits import remaining_time
        >>> @timeout(30.0)
        ... def fetch() -> bool:
        ...     budget = remaining_time()  # size your socket timeout with it
        ...     return budget is not None and budget <= 30.0
        >>> fetch()
        True
    """
    return Timeout(seconds, sync=sync, name=name, clock=clock, on_event=on_event)
