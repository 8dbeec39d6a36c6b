"""Circuit breakers: stop calling an upstream that keeps failing, per key, across processes.

``CircuitBreaker`` is the decorator and the state machine's driver; trip
policies (``ConsecutiveFailures``, ``FailureRate``) say when to open,
``OpenDuration`` and ``HalfOpen`` how to recover. State lives in a
``BreakerStore``: in memory by default, in Redis (``RedisBreakerStore``) to
share it across processes.

Examples:
    >>> from resilient_pipeline.breaker import CircuitBreaker
    >>> breaker = CircuitBreaker(name="ads-api")
    >>> breaker.statistics().state
    'closed'
"""

from __future__ import annotations

from ._breaker import CircuitBreaker
from ._events import (
    CallRejected,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    CircuitStatistics,
    State,
)
from ._memory import MemoryBreakerStore
from ._policy import ConsecutiveFailures, FailureRate, HalfOpen, OpenDuration, TripPolicy
from ._redis import CircuitStoreFailed, RedisBreakerStore
from ._registry import CircuitBreakerRegistry, RegistryStatistics
from ._store import BreakerBackend, BreakerStore

__all__ = [
    "BreakerBackend",
    "BreakerStore",
    "CallRejected",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "CircuitClosed",
    "CircuitHalfOpened",
    "CircuitOpened",
    "CircuitStatistics",
    "CircuitStoreFailed",
    "ConsecutiveFailures",
    "FailureRate",
    "HalfOpen",
    "MemoryBreakerStore",
    "OpenDuration",
    "RedisBreakerStore",
    "RegistryStatistics",
    "State",
    "TripPolicy",
]
