"""The circuit breaker's pure state machine.

:class:`Machine` never reads a clock, never locks and never calls the user's
function: it is told the time and what happened, and answers "admit with this
ticket" or "reject". The in-memory store wraps it in a lock; the drivers in
``_breaker.py`` run the protected call outside that lock.
"""

from __future__ import annotations

from collections import deque

from resilient_pipeline._core import Event

from ._events import CircuitClosed, CircuitHalfOpened, CircuitOpened, CircuitStatistics, State
from ._policy import BreakerConfig, ConsecutiveFailures

__all__ = ["CLOSED_TICKET", "FAILURE", "IGNORED", "SUCCESS", "Machine"]

SUCCESS, FAILURE, IGNORED = 0, 1, 2
"""Outcomes of a call, as the breaker counts them."""

CLOSED_TICKET = 0
"""The ticket of a call admitted while closed (it holds no half-open permit)."""


# --------------------------------------------------------------------- window
class Window:
    """The trip policy's memory of recent outcomes (consecutive, last N calls, last T seconds)."""

    __slots__ = ("buckets", "calls", "consecutive", "failures", "ring", "slot", "width")

    def __init__(self, config: BreakerConfig) -> None:
        trip = config.trip
        self.consecutive = 0
        self.calls = 0
        self.failures = 0
        self.ring: list[int] | None = None
        self.slot = 0
        self.buckets: deque[list[float]] | None = None
        self.width = 0.0
        if isinstance(trip, ConsecutiveFailures):
            return
        if trip.window_calls is not None:
            self.ring = []
        else:
            # 20 buckets: memory stays bounded however busy the upstream, at
            # the cost of the window's edge moving in steps of 5 %.
            self.buckets = deque()
            self.width = float(trip.window_seconds or 0.0) / 20

    def add(self, failed: bool, now: float, config: BreakerConfig) -> None:
        self.consecutive = self.consecutive + 1 if failed else 0
        trip = config.trip
        if self.ring is not None:
            ring, size = self.ring, getattr(trip, "window_calls", 0)
            if len(ring) < size:
                ring.append(failed)
                self.calls += 1
            else:
                self.failures -= ring[self.slot]
                ring[self.slot] = failed
                self.slot = (self.slot + 1) % size
            self.failures += failed
        elif self.buckets is not None:
            self.expire(now, config)
            buckets = self.buckets
            start = now - now % self.width
            if not buckets or buckets[-1][0] != start:
                buckets.append([start, 0, 0])
            buckets[-1][1] += 1
            buckets[-1][2] += failed
            self.calls += 1
            self.failures += failed

    def expire(self, now: float, config: BreakerConfig) -> None:
        buckets = self.buckets
        if buckets is None:
            return
        horizon = now - float(getattr(config.trip, "window_seconds", 0.0) or 0.0)
        while buckets and buckets[0][0] + self.width <= horizon:
            _, calls, failures = buckets.popleft()
            self.calls -= int(calls)
            self.failures -= int(failures)

    def rate(self, config: BreakerConfig) -> float | None:
        minimum = getattr(config.trip, "minimum_calls", None)
        if minimum is None or self.calls < minimum:
            return None
        return self.failures / self.calls

    def tripped(self, config: BreakerConfig) -> bool:
        trip = config.trip
        if isinstance(trip, ConsecutiveFailures):
            return self.consecutive >= trip.threshold
        rate = self.rate(config)
        return rate is not None and rate >= trip.threshold

    def clear(self) -> None:
        self.consecutive = self.calls = self.failures = self.slot = 0
        if self.ring is not None:
            self.ring = []
        if self.buckets is not None:
            self.buckets.clear()


# ---------------------------------------------------------------------- machine
class Machine:
    """One breaker's state; every method takes ``now`` (monotonic seconds) and returns events."""

    __slots__ = (
        "calls",
        "config",
        "failures",
        "half_open_since",
        "ignored",
        "name",
        "next_lease",
        "open_until",
        "opened_at",
        "openings",
        "permits",
        "probe_successes",
        "rejected",
        "state",
        "successes",
        "window",
    )

    def __init__(self, name: str, config: BreakerConfig) -> None:
        self.name = name
        self.config = config
        self.state: State = "closed"
        self.window = Window(config)
        self.opened_at = 0.0
        self.open_until = 0.0
        self.openings = 0
        self.half_open_since = 0.0
        self.permits: dict[int, float] = {}  # lease id -> expiry
        self.probe_successes = 0
        self.next_lease = 1
        self.calls = self.successes = self.failures = self.ignored = self.rejected = 0

    # -- admission ------------------------------------------------------------
    def admit(self, now: float, events: list[Event]) -> int:
        """A ticket (>= 0) for a call allowed to run, or -1 for a rejected one."""
        state = self.state
        if state in {"closed", "forced_closed"}:
            self.calls += 1
            return CLOSED_TICKET
        if state == "open" and now >= self.open_until:
            self._half_open(now, events)
            state = "half_open"
        if state == "half_open":
            half_open = self.config.half_open
            if (
                half_open.max_duration is not None
                and now - self.half_open_since >= half_open.max_duration
            ):
                self._open(now, "half_open_timeout", None, events)
                self.rejected += 1
                return -1
            permits = self.permits
            if permits:
                for lease in [lease for lease, expiry in permits.items() if expiry <= now]:
                    del permits[lease]  # its holder died or hung: free the slot
            if len(permits) < half_open.permits:
                lease = self.next_lease
                self.next_lease += 1
                permits[lease] = now + half_open.permit_ttl
                self.calls += 1
                return lease
        self.rejected += 1
        return -1

    def retry_after(self, now: float) -> float | None:
        """Seconds until a probe is allowed; ``None`` when unknown (probes taken, forced)."""
        return max(self.open_until - now, 0.0) if self.state == "open" else None

    # -- outcomes -------------------------------------------------------------
    def record(
        self, ticket: int, outcome: int, now: float, hint: float | None, events: list[Event]
    ) -> None:
        """Count the outcome of the call admitted with ``ticket``."""
        if ticket == CLOSED_TICKET:
            self.calls += 1  # trial calls were counted when their permit was handed out
        if outcome == IGNORED:
            self.ignored += 1
            self.permits.pop(ticket, None)
            return
        if outcome == SUCCESS:
            self.successes += 1
        else:
            self.failures += 1
        if ticket == CLOSED_TICKET:
            if self.state != "closed":
                return  # the circuit moved on while the call ran; a stale outcome
            window = self.window
            window.add(outcome == FAILURE, now, self.config)
            # A rate can cross its threshold on a success too (the window
            # reaching minimum_calls); a run of failures only on a failure.
            if (outcome == FAILURE or window.consecutive == 0) and window.tripped(self.config):
                self._open(now, "failures", hint, events)
            return
        if self.permits.pop(ticket, None) is None or self.state != "half_open":
            return  # the lease expired or the circuit moved on: a late trial is ignored
        if outcome == FAILURE:
            self._open(now, "probe_failed", hint, events)
            return
        self.probe_successes += 1
        if self.probe_successes >= self.config.half_open.success_threshold:
            self._close("recovered", events)

    # -- manual control -------------------------------------------------------
    def force(self, state: State | None, now: float, events: list[Event]) -> None:
        """``force_open``/``force_closed`` (``state``) or ``reset`` (``None``)."""
        if state is None:
            was = self.state
            self._close("reset", events if was != "closed" else [])
            self.window.clear()
            return
        self.permits.clear()
        self.state = state
        if state == "forced_open":
            self.opened_at = now
            events.append(
                CircuitOpened(
                    source=self.name,
                    reason="forced",
                    open_for=None,
                    failures=self.window.consecutive,
                    failure_rate=self.window.rate(self.config),
                    openings=self.openings,
                )
            )
        else:
            events.append(CircuitClosed(source=self.name, reason="forced"))

    # -- transitions ----------------------------------------------------------
    def _open(self, now: float, reason: str, hint: float | None, events: list[Event]) -> None:
        self.openings += 1
        open_for = self.config.open_for(self.openings, hint)
        self.state = "open"
        self.opened_at = now
        self.open_until = now + open_for
        self.permits.clear()
        window = self.window
        events.append(
            CircuitOpened(
                source=self.name,
                reason=reason,
                open_for=open_for,
                failures=window.failures
                if window.ring is not None or window.buckets is not None
                else window.consecutive,
                failure_rate=window.rate(self.config),
                openings=self.openings,
            )
        )
        window.clear()

    def _half_open(self, now: float, events: list[Event]) -> None:
        self.state = "half_open"
        self.half_open_since = now
        self.probe_successes = 0
        self.permits.clear()
        events.append(CircuitHalfOpened(source=self.name, permits=self.config.half_open.permits))

    def _close(self, reason: str, events: list[Event]) -> None:
        self.state = "closed"
        self.openings = 0
        self.probe_successes = 0
        self.permits.clear()
        self.window.clear()
        events.append(CircuitClosed(source=self.name, reason=reason))

    # -- introspection --------------------------------------------------------
    def statistics(self, now: float, wall: float) -> CircuitStatistics:
        """The frozen view of this machine at ``now`` (``wall``: the same instant, epoch)."""
        window = self.window
        window.expire(now, self.config)
        state = self.state
        if state == "open" and now >= self.open_until:
            state = "half_open"  # what the next call will see
        opened = state in ("open", "forced_open")
        return CircuitStatistics(
            name=self.name,
            state=state,
            calls=self.calls,
            successes=self.successes,
            failures=self.failures,
            ignored=self.ignored,
            rejected=self.rejected,
            consecutive_failures=window.consecutive,
            failure_rate=window.rate(self.config),
            window_calls=window.calls,
            openings=self.openings,
            opened_at=wall - (now - self.opened_at) if opened else None,
            retry_after=self.retry_after(now),
            permits_in_use=sum(1 for expiry in self.permits.values() if expiry > now),
        )
