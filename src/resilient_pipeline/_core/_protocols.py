"""The protocols every layer shares: a clock, a policy, a retry-after carrier."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, Protocol, TypeVar, runtime_checkable

__all__ = ["Clock", "Policy", "SupportsRetryAfter"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


@runtime_checkable
class Clock(Protocol):
    """Where every time-dependent primitive gets the time and sleeps.

    ``monotonic`` measures intervals and deadlines; ``time`` is the wall clock
    (seconds since the epoch), used only to read HTTP dates such as a
    ``Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`` header. ``asleep`` must be
    a cancellation point under asyncio and trio.

    Examples:
        >>> from resilient_pipeline.testing import FakeClock
        >>> clock = FakeClock()
        >>> clock.sleep(2.5)
        >>> clock.monotonic()
        2.5
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch."""
        ...

    def sleep(self, seconds: float, /) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float, /) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


@runtime_checkable
class SupportsRetryAfter(Protocol):
    """An exception or result that carries a server-given delay in seconds.

    ``retry_with_backoff`` never retries before ``retry_after`` seconds.

    Examples:
        >>> class Throttled(Exception):
        ...     retry_after = 30.0
        >>> isinstance(Throttled(), SupportsRetryAfter)
        True
    """

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again, or ``None`` when unknown."""
        ...


@runtime_checkable
class Policy(Protocol):
    """A policy that decorates sync and async callables, keeping their signature.

    ``RetryPolicy``, ``Timeout``, ``Bulkhead``, ``RateLimiter``, ``Fallback``
    and circuit breakers all are; ``resilient(breaker=...)`` accepts any.

    Examples:
        >>> from resilient_pipeline import Bulkhead
        >>> isinstance(Bulkhead(max_concurrent=2), Policy)
        True
    """

    def __call__(self, fn: Callable[_P, _T], /) -> Callable[_P, _T]:
        """Wrap ``fn``; the result has the same parameters and return type."""
        ...
