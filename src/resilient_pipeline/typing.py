"""Cross-cutting protocols that primitives of every kind accept.

Domain protocols live with their domain: ``Store`` and ``StoreSession`` in
:mod:`resilient_pipeline.storage`, ``Notifier`` in
:mod:`resilient_pipeline.alerting`, ``QuarantineSink`` in
:mod:`resilient_pipeline.validation`, ``BreakerStore`` in
:mod:`resilient_pipeline.breaker`, ``RetryAfterExtractor`` in
:mod:`resilient_pipeline.retry`.

Examples:
    >>> from resilient_pipeline.typing import Clock
    >>> from resilient_pipeline.testing import FakeClock
    >>> isinstance(FakeClock(), Clock)
    True
"""

from __future__ import annotations

from resilient_pipeline._core import Clock, EventHandler, Policy, SupportsRetryAfter

__all__ = ["Clock", "EventHandler", "Policy", "SupportsRetryAfter"]
