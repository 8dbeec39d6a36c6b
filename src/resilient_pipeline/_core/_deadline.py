"""One deadline shared by nested retried calls, timeouts and waits.

The innermost scope wins only when it is *earlier*: entering a scope can
tighten the deadline, never extend it. Nested ``retry_with_backoff`` calls
therefore share one time budget instead of multiplying their budgets.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from resilient_pipeline.exceptions import ConfigurationError

from ._clock import resolve_clock
from ._protocols import Clock

__all__ = ["deadline_scope", "remaining_time"]

# (clock, absolute monotonic time on that clock); remaining time is computed on
# the clock that set it, so scopes opened with different clocks still compose.
DEADLINE: contextvars.ContextVar[tuple[Clock, float] | None] = contextvars.ContextVar(
    "resilient_pipeline_deadline", default=None
)


def remaining_time() -> float | None:
    """Seconds left before the innermost shared deadline, or ``None`` if there is none.

    Use it to size I/O timeouts inside a retried function so that one attempt
    cannot outlive the whole budget.

    Examples:
        >>> from resilient_pipeline.testing import FakeClock
        >>> clock = FakeClock()
        >>> remaining_time() is None
        True
        >>> with deadline_scope(10.0, clock=clock):
        ...     clock.advance(4.0)
        ...     remaining_time()
        6.0
    """
    current = DEADLINE.get()
    if current is None:
        return None
    clock, at = current
    return at - clock.monotonic()


def tightened(clock: Clock, at: float) -> tuple[Clock, float]:
    current = DEADLINE.get()
    if current is not None:
        other_clock, other_at = current
        if other_clock is clock:
            if other_at <= at:
                return current
        elif other_at - other_clock.monotonic() <= at - clock.monotonic():
            return current
    return (clock, at)


@contextmanager
def deadline_scope(seconds: float, *, clock: Clock | None = None) -> Iterator[float]:
    """Run a block under a deadline ``seconds`` from now (or an earlier enclosing one).

    Yields the seconds actually available, which is less than ``seconds`` when
    an enclosing deadline is sooner. Retries, timeouts and waits inside the
    block never plan past it.

    Examples:
        >>> from resilient_pipeline.testing import FakeClock
        >>> clock = FakeClock()
        >>> with deadline_scope(30.0, clock=clock):
        ...     with deadline_scope(60.0, clock=clock) as available:
        ...         available
        30.0
    """
    if not seconds >= 0:
        raise ConfigurationError.for_option("seconds", seconds, "must be a number >= 0")
    clock = resolve_clock(clock)
    scope = tightened(clock, clock.monotonic() + seconds)
    token = DEADLINE.set(scope)
    try:
        yield scope[1] - scope[0].monotonic()
    finally:
        DEADLINE.reset(token)
