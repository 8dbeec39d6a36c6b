"""The default circuit-breaker store: state in this process's memory.

Examples:
    >>> from resilient_pipeline import CircuitBreaker
    >>> from resilient_pipeline.breaker._memory import MemoryBreakerStore
    >>> CircuitBreaker(name="ads", store=MemoryBreakerStore()).state
    'closed'
"""

from __future__ import annotations

import builtins
import itertools
import operator
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import attrs

from resilient_pipeline._core import describe_error
from resilient_pipeline.exceptions import CircuitOpenError

from ._events import CircuitOpened
from ._machine import Machine
from ._policy import ConsecutiveFailures

if TYPE_CHECKING:
    from resilient_pipeline._core import Clock, Event

    from ._events import CircuitStatistics, State
    from ._policy import BreakerConfig

__all__ = ["MemoryBackend", "MemoryBreakerStore", "counted", "counter"]

_new_error = BaseException.__new__

# Where every counter starts its count-down: at a billion calls a second it
# would take 292 years to run out.
_COUNTER_START = sys.maxsize


def counter() -> Iterator[None]:
    """A lock-free counter for the hot paths: ``next()`` on it counts one call.

    ``next()`` on ``itertools.repeat`` counts down in C, atomically like
    ``itertools.count``, but returns the same ``None`` every time where
    ``count`` built a new int per call (an allocation and a free on every
    rejection while a circuit is open). :func:`counted` reads it.
    """
    return itertools.repeat(None, _COUNTER_START)


def counted(calls: Iterator[None]) -> int:
    """How many times ``next`` was called on a :func:`counter`, without advancing it.

    Examples:
        >>> calls = counter()
        >>> next(calls), next(calls), counted(calls)
        (None, None, 2)
    """
    return _COUNTER_START - operator.length_hint(calls)


class MemoryBackend:
    """The breaker state machine behind a lock held only for state changes."""

    __slots__ = ("_emit", "_lock", "_plain", "_successes", "machine", "rejections", "trip_cause")

    nonblocking = True  # no I/O: async drivers may call the sync methods directly

    def __init__(self, name: str, config: BreakerConfig, emit: Callable[[Event], None]) -> None:
        self.machine = Machine(name, config)
        self._lock = threading.Lock()
        self._emit = emit
        # Lock-free counters for the hot paths (see counter()).
        self._successes = counter()
        self.rejections = counter()  # also counted by the breaker's guards
        self._plain = isinstance(config.trip, ConsecutiveFailures)
        # The failure that last opened the circuit, described once when it tripped
        # (never per rejection): each rejection carries it to whoever records causes.
        self.trip_cause: tuple[str, str, float] | None = None

    def admit(self, clock: Clock) -> int | CircuitOpenError:
        machine = self.machine
        state = machine.state
        # Reading one attribute is atomic: a call that sees "closed" is admitted
        # as if it came just before a concurrent trip (its outcome is then stale).
        if state in {"closed", "forced_closed"}:
            return 0
        now = clock.monotonic()
        if state == "open" and now < machine.open_until:
            next(self.rejections)
            # CircuitOpenError(name, retry_after=...) without the Python-level
            # __init__ call, which costs more than the rest of a rejection.
            error = _new_error(CircuitOpenError, machine.name)  # state: the class's "open"
            error.retry_after = machine.open_until - now
            error.trip_cause = self.trip_cause
            return error
        events: list[Event] = []
        with self._lock:
            ticket = machine.admit(now, events)
            if ticket < 0:
                rejection = CircuitOpenError(
                    machine.name, state=machine.state, retry_after=machine.retry_after(now)
                )
                rejection.trip_cause = self.trip_cause
        for event in events:
            self._emit(event)
        return ticket if ticket >= 0 else rejection

    def record(
        self,
        ticket: int,
        outcome: int,
        clock: Clock,
        hint: float | None,
        error: BaseException | None = None,
    ) -> None:
        """Count an outcome; ``error``: the failure raised, kept (described) if it trips."""
        machine = self.machine
        if ticket == 0 and outcome == 0 and self._plain:
            # A closed-state success under ConsecutiveFailures: no clock read, and
            # no lock unless there is a run of failures to reset.
            next(self._successes)
            if machine.window.consecutive:
                with self._lock:
                    if machine.state == "closed":
                        machine.window.consecutive = 0
            return
        events: list[Event] = []
        with self._lock:
            machine.record(ticket, outcome, clock.monotonic(), hint, events)
            if events and any(isinstance(event, CircuitOpened) for event in events):
                # Under the lock: no rejection of this opening carries an older cause.
                self.trip_cause = None if error is None else _cause_of(error, clock.time())
        for event in events:
            self._emit(event)

    async def aadmit(self, clock: Clock) -> int | CircuitOpenError:
        return self.admit(clock)

    async def arecord(
        self,
        ticket: int,
        outcome: int,
        clock: Clock,
        hint: float | None,
        error: BaseException | None = None,
    ) -> None:
        self.record(ticket, outcome, clock, hint, error)

    def force(self, state: State | None, clock: Clock) -> None:
        events: list[Event] = []
        with self._lock:
            self.machine.force(state, clock.monotonic(), events)
            self.trip_cause = None  # forced open, or reset: no failure opened it
        for event in events:
            self._emit(event)

    async def aforce(self, state: State | None, clock: Clock) -> None:
        self.force(state, clock)

    def statistics(self, clock: Clock) -> CircuitStatistics:
        with self._lock:
            stats = self.machine.statistics(clock.monotonic(), clock.time())
        successes, rejected = counted(self._successes), counted(self.rejections)
        return attrs.evolve(
            stats,
            calls=stats.calls + successes,
            successes=stats.successes + successes,
            rejected=stats.rejected + rejected,
        )

    async def astatistics(self, clock: Clock) -> CircuitStatistics:
        return self.statistics(clock)

    def last_state(self) -> State:
        return self.machine.state


def _cause_of(error: BaseException, at: float) -> tuple[str, str, float]:
    """``(description, class, epoch time)`` of the failure that tripped a breaker, masked."""
    kind = type(error)
    name = kind.__qualname__
    module = kind.__module__
    described = describe_error(error)
    return described, (name if module == builtins.__name__ else f"{module}.{name}"), at


@attrs.define
class MemoryBreakerStore:
    """Keeps each breaker's state in this process (the default store).

    Breakers bound to the same store under the same name share one state,
    so two ``CircuitBreaker(name="ads", store=store)`` objects trip together.

    Examples:
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
