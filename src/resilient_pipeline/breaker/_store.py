"""Where a circuit breaker keeps its state: the store protocols.

A :class:`BreakerStore` binds a breaker's name and config to a
:class:`BreakerBackend`, the object the breaker's drivers talk to on every
call. The in-memory store keeps a :class:`~resilient_pipeline.breaker._machine.Machine`
per breaker; the Redis store shares state between processes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from resilient_pipeline._core import Clock, Event
    from resilient_pipeline.exceptions import CircuitOpenError

    from ._events import CircuitStatistics, State
    from ._policy import BreakerConfig

__all__ = ["BreakerBackend", "BreakerStore"]


@runtime_checkable
class BreakerBackend(Protocol):
    """One breaker's state in a store; every method is thread- and task-safe.

    ``admit`` returns a ticket (an ``int`` >= 0) for a call that may run, or
    the :class:`~resilient_pipeline.exceptions.CircuitOpenError` to raise;
    ``record`` reports the outcome of an admitted call (``0`` success,
    ``1`` failure, ``2`` neither). Both read ``clock`` only when they need
    the time. Neither holds a lock while the protected call runs. A backend
    whose ``nonblocking`` attribute is true does no I/O: async drivers then
    call its sync methods directly.
    """

    def admit(self, clock: Clock) -> int | CircuitOpenError:
        """Let a call run (a ticket) or refuse it (the error to raise)."""
        ...

    def record(self, ticket: int, outcome: int, clock: Clock, hint: float | None) -> None:
        """Count the outcome of the call admitted with ``ticket``."""
        ...

    async def aadmit(self, clock: Clock) -> int | CircuitOpenError:
        """Async twin of :meth:`admit`."""
        ...

    async def arecord(self, ticket: int, outcome: int, clock: Clock, hint: float | None) -> None:
        """Async twin of :meth:`record`."""
        ...

    def force(self, state: State | None, clock: Clock) -> None:
        """Force ``"forced_open"`` / ``"forced_closed"``, or reset to closed (``None``)."""
        ...

    async def aforce(self, state: State | None, clock: Clock) -> None:
        """Async twin of :meth:`force`."""
        ...

    def statistics(self, clock: Clock) -> CircuitStatistics:
        """The breaker's state and counters now."""
        ...

    def last_state(self) -> State:
        """The last state this process knew of, without I/O (may be stale)."""
        ...

    async def astatistics(self, clock: Clock) -> CircuitStatistics:
        """Async twin of :meth:`statistics`."""
        ...


@runtime_checkable
class BreakerStore(Protocol):
    """Holds the state of many breakers (one per name).

    Examples:
        >>> from resilient_pipeline.breaker._memory import MemoryBreakerStore
        >>> isinstance(MemoryBreakerStore(), BreakerStore)
        True
    """

    def bind(
        self, name: str, config: BreakerConfig, emit: Callable[[Event], None]
    ) -> BreakerBackend:
        """The backend for breaker ``name``; ``emit`` delivers its transition events."""
        ...
