"""Structured events: what every primitive reports, and how to listen.

Every primitive emits typed, frozen events (past-tense names:
``CircuitOpened``, ``RetryScheduled``). By default each is logged on its
package's ``resilient_pipeline.<package>`` logger through stdlib
:mod:`logging`; :func:`subscribe` adds handlers of your own (metrics, alerts,
tests). The event classes live with their packages and are all reachable
from here; :func:`catalogue` lists every one.

Examples:
    >>> from resilient_pipeline.events import RetryScheduled, subscribe
    >>> seen = []
    >>> with subscribe(seen.append):
    ...     pass
    >>> RetryScheduled.__name__ in {cls.__name__ for cls in catalogue()}
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resilient_pipeline._core import Event, Subscription, emit, log_event, subscribe
from resilient_pipeline._lazy import lazy_names

if TYPE_CHECKING:
    from resilient_pipeline.alerting import AlertDeliveryFailed, AlertSent, AlertSuppressed
    from resilient_pipeline.breaker import (
        CallRejected,
        CircuitClosed,
        CircuitHalfOpened,
        CircuitOpened,
        CircuitStoreFailed,
    )
    from resilient_pipeline.checks import CheckErrored, CheckFailed
    from resilient_pipeline.flags import FlagEvaluated, FlagSourceFailed
    from resilient_pipeline.ledger import (
        BackfillFinished,
        PartitionCollected,
        PartitionFailed,
        PartitionRestated,
    )
    from resilient_pipeline.limits import (
        BulkheadRejected,
        BulkheadWaited,
        FallbackUsed,
        LimitStoreFailed,
        PolicyEvent,
        RateLimitAdapted,
        RateLimitRejected,
        RateLimitWaited,
        TimedOut,
    )
    from resilient_pipeline.retry import (
        CallFinished,
        RetryExhausted,
        RetryScheduled,
        RetrySucceeded,
    )
    from resilient_pipeline.storage import RowsUpserted
    from resilient_pipeline.validation import (
        PartitionQuarantined,
        PartitionRejected,
        QuarantineLinesSkipped,
        RowsQuarantined,
        RowsReplayed,
    )

__all__ = [
    "AlertDeliveryFailed",
    "AlertSent",
    "AlertSuppressed",
    "BackfillFinished",
    "BulkheadRejected",
    "BulkheadWaited",
    "CallFinished",
    "CallRejected",
    "CheckErrored",
    "CheckFailed",
    "CircuitClosed",
    "CircuitHalfOpened",
    "CircuitOpened",
    "CircuitStoreFailed",
    "Event",
    "FallbackUsed",
    "FlagEvaluated",
    "FlagSourceFailed",
    "LimitStoreFailed",
    "PartitionCollected",
    "PartitionFailed",
    "PartitionQuarantined",
    "PartitionRejected",
    "PartitionRestated",
    "PolicyEvent",
    "QuarantineLinesSkipped",
    "RateLimitAdapted",
    "RateLimitRejected",
    "RateLimitWaited",
    "RetryExhausted",
    "RetryScheduled",
    "RetrySucceeded",
    "RowsQuarantined",
    "RowsReplayed",
    "RowsUpserted",
    "Subscription",
    "TimedOut",
    "catalogue",
    "emit",
    "log_event",
    "subscribe",
]

# Event class -> the package it lives in; imported on first access (PEP 562),
# so listening for retries does not import the ledger.
_HOMES: dict[str, str] = {
    "AlertDeliveryFailed": "alerting",
    "AlertSent": "alerting",
    "AlertSuppressed": "alerting",
    "BackfillFinished": "ledger",
    "BulkheadRejected": "limits",
    "BulkheadWaited": "limits",
    "CallFinished": "retry",
    "CallRejected": "breaker",
    "CheckErrored": "checks",
    "CheckFailed": "checks",
    "CircuitClosed": "breaker",
    "CircuitHalfOpened": "breaker",
    "CircuitOpened": "breaker",
    "CircuitStoreFailed": "breaker",
    "FallbackUsed": "limits",
    "FlagEvaluated": "flags",
    "FlagSourceFailed": "flags",
    "LimitStoreFailed": "limits",
    "PartitionCollected": "ledger",
    "PartitionFailed": "ledger",
    "PartitionQuarantined": "validation",
    "PartitionRejected": "validation",
    "PartitionRestated": "ledger",
    "PolicyEvent": "limits",
    "QuarantineLinesSkipped": "validation",
    "RateLimitAdapted": "limits",
    "RateLimitRejected": "limits",
    "RateLimitWaited": "limits",
    "RetryExhausted": "retry",
    "RetryScheduled": "retry",
    "RetrySucceeded": "retry",
    "RowsQuarantined": "validation",
    "RowsReplayed": "validation",
    "RowsUpserted": "storage",
    "TimedOut": "limits",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES)


def catalogue() -> tuple[type[Event], ...]:
    """Every event class the library emits, sorted by name (imports every package).

    Examples:
        >>> [cls.__name__ for cls in catalogue()][:3]
        ['AlertDeliveryFailed', 'AlertSent', 'AlertSuppressed']
    """
    classes = [__getattr__(name) for name in sorted(_HOMES)]
    return tuple(cls for cls in classes if isinstance(cls, type) and issubclass(cls, Event))
