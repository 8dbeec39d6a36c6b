"""The two ways users start: ``@retry_with_backoff`` and the ``retrying()`` block."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._decorator import Retrying
from ._policy import RetryOptions, RetryPolicy

__all__ = ["retry_with_backoff", "retrying"]

P = ParamSpec("P")
T = TypeVar("T")


# ------------------------------------------------------------- public factory
@overload
def retry_with_backoff(fn: Callable[P, T], /) -> Callable[P, T]: ...
@overload
def retry_with_backoff(
    **options: Unpack[RetryOptions],
) -> Callable[[Callable[P, T]], Callable[P, T]]: ...
def retry_with_backoff(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Retry a function (sync or async) with exponential backoff and jitter.

    Use it bare (``@retry_with_backoff``) or with keyword-only options. The
    decorated function keeps its signature for type checkers.

    Args:
        max_attempts: Attempts in all, the first included (>= 1).
        base_delay: Seconds before the first retry, before jitter.
        multiplier: Growth of the delay per attempt (>= 1).
        max_delay: Cap on any single sleep, applied before jitter.
        jitter: ``"full"`` (uniform in [0, delay]), ``"equal"`` (half fixed,
            half random), ``"decorrelated"`` or ``None`` (exact schedule).
        deadline: Total seconds for the call, sleeps included. Never slept
            past; shared with nested retried calls.
        retry_on: Exception types that are retried (default: ``Exception``).
        retry_if: A predicate on the exception; both it and ``retry_on`` must agree.
        retry_on_result: A predicate on the result; ``True`` means "bad, try
            again" (e.g. incomplete data). A bad last result raises
            :class:`~resilient_pipeline.exceptions.BadResultError`.
        retry_after: Reads a server-given delay from the exception or result;
            the default reads a ``retry_after`` attribute or a ``Retry-After``
            header. ``None`` ignores server hints.
        attempt_timeout: Seconds per attempt. Async attempts are cancelled
            (anyio cancel scope); sync ones cannot be interrupted and only see
            it through :func:`~resilient_pipeline.limits.remaining_time`.
        budget: A shared :class:`RetryBudget` that limits retries overall.
        clock: Where time comes from (default: the system clock, or the fake
            one under :func:`~resilient_pipeline.testing.set_testing`).
        rng: A ``random.Random`` for jitter (reproducible schedules).
        name: The name in events and notes (default: the function's qualname).
        on_event: Handlers for this policy's events.

    Raises:
        ConfigurationError: At decoration time, naming the bad option.

    Examples:
        >>> attempts = []
        >>> @retry_with_backoff(max_attempts=3, base_delay=0)
        ... def fetch_conversions(day: str) -> int:
        ...     attempts.append(day)
        ...     if len(attempts) < 3:
        ...         raise ConnectionError("connection reset by peer")
        ...     return 42
        >>> fetch_conversions("2026-11-28"), len(attempts)
        (42, 3)
    """
    policy = RetryPolicy(**options)
    return policy(fn) if fn is not None else policy


def retrying(**options: Unpack[RetryOptions]) -> Retrying:
    """The block form of :func:`retry_with_backoff`, taking the same options.

    Examples:
        >>> import anyio
        >>> async def main() -> str:
        ...     async for attempt in retrying(base_delay=0):
        ...         with attempt:
        ...             if attempt.number == 1:
        ...                 raise TimeoutError
        ...             return f"ok on attempt {attempt.number}"
        ...     raise AssertionError("unreachable")
        >>> anyio.run(main)
        'ok on attempt 2'
    """
    return Retrying(RetryPolicy(**options))
