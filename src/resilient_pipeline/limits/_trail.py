"""What the policies of one composed call share: the attempt number and the event base.

``resilient(...)`` gives each call a counter; every attempt bumps it. Events
emitted by timeouts, bulkheads, rate limiters and fallbacks carry it, so one
call leaves one coherent trail: ``attempt 1: rate limit waited 0.2 s``,
``attempt 1: bulkhead rejected``, ``RetryScheduled(attempt=1)``, ...
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

import attrs

from resilient_pipeline._core import Event, is_async

__all__ = ["PolicyEvent", "current_attempt"]

P = ParamSpec("P")
T = TypeVar("T")

# A one-item list per composed call: attempts bump it in place, so nothing is
# set or reset per attempt and tasks spawned by the call see the same number.
_attempt: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "resilient_pipeline_attempt", default=None
)


def current_attempt() -> int | None:
    """The attempt number of the composed call running now, or ``None`` outside one.

    Examples:
        >>> current_attempt() is None
        True
    """
    cell = _attempt.get()
    return None if cell is None else cell[0]


@attrs.frozen(kw_only=True)
class PolicyEvent(Event):
    """Base of the events of timeouts, bulkheads, rate limiters and fallbacks.

    Attributes:
        attempt: The attempt of the composed call (``resilient(...)``) that
            emitted it; ``None`` when the policy is used on its own.
    """

    attempt: int | None = attrs.field(factory=current_attempt)


def numbered(fn: Callable[P, T]) -> Callable[P, T]:
    """Bump the composed call's attempt counter each time ``fn`` starts."""
    if is_async(fn):
        afn = cast("Callable[P, Awaitable[Any]]", fn)

        @functools.wraps(fn)
        async def anumbered(*args: P.args, **kwargs: P.kwargs) -> Any:
            cell = _attempt.get()
            if cell is not None:
                cell[0] += 1
            return await afn(*args, **kwargs)

        return cast("Callable[P, T]", anumbered)

    @functools.wraps(fn)
    def snumbered(*args: P.args, **kwargs: P.kwargs) -> T:
        cell = _attempt.get()
        if cell is not None:
            cell[0] += 1
        return fn(*args, **kwargs)

    return snumbered


def counted(fn: Callable[P, T]) -> Callable[P, T]:
    """Give every call of ``fn`` a fresh attempt counter (the outermost layer of a composition)."""
    if is_async(fn):
        afn = cast("Callable[P, Awaitable[Any]]", fn)

        @functools.wraps(fn)
        async def acounted(*args: P.args, **kwargs: P.kwargs) -> Any:
            token = _attempt.set([0])
            try:
                return await afn(*args, **kwargs)
            finally:
                _attempt.reset(token)

        return cast("Callable[P, T]", acounted)

    @functools.wraps(fn)
    def scounted(*args: P.args, **kwargs: P.kwargs) -> T:
        token = _attempt.set([0])
        try:
            return fn(*args, **kwargs)
        finally:
            _attempt.reset(token)

    return scounted
