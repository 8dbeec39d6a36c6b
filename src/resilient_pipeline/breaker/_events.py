"""What a circuit breaker tells the world: its events and its statistics (frozen values)."""

from __future__ import annotations

import logging
from typing import Literal, TypeAlias

import attrs

from resilient_pipeline._core import Event

__all__ = [
    "CallRejected",
    "CircuitClosed",
    "CircuitHalfOpened",
    "CircuitOpened",
    "CircuitStatistics",
    "State",
]

State: TypeAlias = Literal["closed", "open", "half_open", "forced_open", "forced_closed"]
"""A breaker's state."""


# --------------------------------------------------------------------- events
@attrs.frozen(kw_only=True)
class CircuitOpened(Event):
    """The circuit opened: calls are rejected for ``open_for`` seconds.

    Attributes:
        reason: ``"failures"`` (the trip policy), ``"probe_failed"``,
            ``"half_open_timeout"`` or ``"forced"``.
        open_for: Seconds until a probe is allowed (``None`` when forced).
        failures: Failures counted by the trip policy when it tripped.
        failure_rate: The window's failure rate, for ``FailureRate``.
        openings: How many times in a row it opened without closing.
    """

    logger_name = "resilient_pipeline.breaker"
    level = logging.WARNING
    template = "circuit {source!r} opened ({reason}) for {open_for} s"

    reason: str
    open_for: float | None
    failures: int
    failure_rate: float | None
    openings: int

    def message(self) -> str:
        """A one-line description (a forced opening has no duration)."""
        if self.open_for is None:
            return f"circuit {self.source!r} forced open until reset"
        return super().message()


@attrs.frozen(kw_only=True)
class CircuitHalfOpened(Event):
    """The open period ended: the next calls are trials.

    Attributes:
        permits: How many trials may run at once.
    """

    logger_name = "resilient_pipeline.breaker"
    level = logging.INFO
    template = "circuit {source!r} half-open: allowing {permits} trial call(s)"

    permits: int


@attrs.frozen(kw_only=True)
class CircuitClosed(Event):
    """The circuit closed: calls flow again.

    Attributes:
        reason: ``"recovered"`` (enough trials succeeded), ``"reset"`` or ``"forced"``.
    """

    logger_name = "resilient_pipeline.breaker"
    level = logging.INFO
    template = "circuit {source!r} closed ({reason})"

    reason: str


@attrs.frozen(kw_only=True)
class CallRejected(Event):
    """A call was refused without running (logged at DEBUG: there can be many).

    Attributes:
        state: The state that refused it.
        retry_after: Seconds until a probe is allowed, if known.
    """

    logger_name = "resilient_pipeline.breaker"
    level = logging.DEBUG
    template = "circuit {source!r} rejected a call ({state}); retry after {retry_after} s"

    state: str
    retry_after: float | None


# ----------------------------------------------------------------- statistics
@attrs.frozen(kw_only=True)
class CircuitStatistics:
    """A breaker's state and counters at one instant.

    Attributes:
        name: The breaker's name.
        state: ``"closed"``, ``"open"``, ``"half_open"``, ``"forced_open"`` or ``"forced_closed"``.
        calls: Calls admitted (in this process).
        successes: Admitted calls that counted as successes.
        failures: Admitted calls that counted as failures.
        ignored: Admitted calls that counted as neither (``ignore``, cancellation).
        rejected: Calls refused without running.
        consecutive_failures: Failures in a row in the closed state.
        failure_rate: The sliding window's failure rate (``FailureRate`` only,
            ``None`` until the window holds ``minimum_calls`` calls).
        window_calls: Calls in the sliding window.
        openings: Openings in a row since the circuit last closed.
        opened_at: Wall-clock time (epoch seconds) it last opened, if open.
        retry_after: Seconds until a probe is allowed, if open.
        permits_in_use: Half-open trial calls running now.

    Examples:
        >>> from resilient_pipeline import CircuitBreaker
        >>> CircuitBreaker(name="ads").statistics().state
        'closed'
    """

    name: str
    state: State
    calls: int
    successes: int
    failures: int
    ignored: int
    rejected: int
    consecutive_failures: int
    failure_rate: float | None
    window_calls: int
    openings: int
    opened_at: float | None
    retry_after: float | None
    permits_in_use: int
