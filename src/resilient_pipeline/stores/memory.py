"""The default circuit-breaker store: state in this process's memory.

Example:
    >>> from resilient_pipeline import CircuitBreaker
    >>> from resilient_pipeline.stores.memory import MemoryBreakerStore
    >>> CircuitBreaker(name="ads", store=MemoryBreakerStore()).state
    'closed'
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from resilient_pipeline._breaker import Machine
from resilient_pipeline.exceptions import CircuitOpenError

if TYPE_CHECKING:
    from resilient_pipeline._breaker import CircuitStatistics, State
    from resilient_pipeline._breaker_policy import BreakerConfig
    from resilient_pipeline._events import Event
    from resilient_pipeline.typing import Clock

__all__ = ["MemoryBreakerStore"]


class MemoryBackend:
    """A :class:`~resilient_pipeline._breaker.Machine` behind a lock held only for state changes."""

    __slots__ = ("_emit", "_lock", "machine")

    def __init__(self, name: str, config: BreakerConfig, emit: Callable[[Event], None]) -> None:
        self.machine = Machine(name, config)
        self._lock = threading.Lock()
        self._emit = emit

    def admit(self, clock: Clock) -> int | CircuitOpenError:
        machine = self.machine
        events: list[Event] = []
        with self._lock:
            if machine.state == "closed":
                # The common case needs no clock read.
                machine.calls += 1
                return 0
            now = clock.monotonic()
            ticket = machine.admit(now, events)
            if ticket < 0:
                rejection = CircuitOpenError(
                    machine.name, state=machine.state, retry_after=machine.retry_after(now)
                )
        for event in events:
            self._emit(event)
        return ticket if ticket >= 0 else rejection

    def record(self, ticket: int, outcome: int, clock: Clock, hint: float | None) -> None:
        machine = self.machine
        events: list[Event] = []
        with self._lock:
            if (
                ticket == 0
                and outcome == 0
                and machine.window.ring is None
                and (machine.window.buckets is None)
            ):
                # A closed-state success under ConsecutiveFailures: no clock read.
                machine.successes += 1
                if machine.state == "closed":
                    machine.window.consecutive = 0
                return
            machine.record(ticket, outcome, clock.monotonic(), hint, events)
        for event in events:
            self._emit(event)

    async def aadmit(self, clock: Clock) -> int | CircuitOpenError:
        return self.admit(clock)

    async def arecord(self, ticket: int, outcome: int, clock: Clock, hint: float | None) -> None:
        self.record(ticket, outcome, clock, hint)

    def force(self, state: State | None, clock: Clock) -> None:
        events: list[Event] = []
        with self._lock:
            self.machine.force(state, clock.monotonic(), events)
        for event in events:
            self._emit(event)

    async def aforce(self, state: State | None, clock: Clock) -> None:
        self.force(state, clock)

    def statistics(self, clock: Clock) -> CircuitStatistics:
        with self._lock:
            return self.machine.statistics(clock.monotonic(), clock.time())

    async def astatistics(self, clock: Clock) -> CircuitStatistics:
        return self.statistics(clock)

    def last_state(self) -> State:
        return self.machine.state


@attrs.define
class MemoryBreakerStore:
    """Keeps each breaker's state in this process (the default store).

    Breakers bound to the same store under the same name share one state,
    so two ``CircuitBreaker(name="ads", store=store)`` objects trip together.

    Example:
        >>> from resilient_pipeline import CircuitBreaker
        >>> store = MemoryBreakerStore()
        >>> a = CircuitBreaker(name="ads", store=store)
        >>> b = CircuitBreaker(name="ads", store=store)
        >>> a.force_open()
        >>> b.state
        'forced_open'
    """

    _backends: dict[str, MemoryBackend] = attrs.field(factory=dict, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def bind(
        self, name: str, config: BreakerConfig, emit: Callable[[Event], None]
    ) -> MemoryBackend:
        """The shared backend for ``name`` (created with ``config`` on first use)."""
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                backend = self._backends[name] = MemoryBackend(name, config, emit)
            return backend

    def forget(self, name: str) -> None:
        """Drop the state of breaker ``name`` (keyed breakers evicted from a registry)."""
        with self._lock:
            self._backends.pop(name, None)
