"""resilient-pipeline: composable, typed reliability primitives for data pipelines.

The names a pipeline author needs are here; everything else has one home in
its package (``retry``, ``breaker``, ``limits``, ``storage``, ``validation``,
``alerting``, ``checks``, ``ledger``, ``health``, ``events``, ``exceptions``). Names are
imported on first use, so ``import resilient_pipeline`` stays cheap.

Examples:
    >>> from resilient_pipeline import retry_with_backoff
    >>> @retry_with_backoff(max_attempts=5, deadline=60.0)
    ... def fetch_campaigns(day: str) -> list[dict[str, object]]:
    ...     return [{"day": day, "campaign": "brand"}]
    >>> fetch_campaigns("2026-11-28")
    [{'day': '2026-11-28', 'campaign': 'brand'}]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from ._version import __version__

if TYPE_CHECKING:
    from .alerting import Alert, Alerter, LoggingNotifier, SlackNotifier
    from .breaker import CircuitBreaker, ConsecutiveFailures, OpenDuration
    from .checks import Check, CheckReport, CheckSuite, monitor
    from .events import Event, subscribe
    from .exceptions import (
        CircuitOpenError,
        ConfigurationError,
        PermanentError,
        ResilientPipelineError,
        StoreError,
        ValidationError,
    )
    from .health import HealthRegistry, serve_health
    from .ledger import Partition, PartitionLedger, abackfill, backfill, daily
    from .limits import Bulkhead, RateLimiter, fallback, resilient, timeout
    from .observability import bind_context, configure_logging
    from .retry import RetryBudget, RetryPolicy, retry_with_backoff, retrying
    from .storage import (
        PostgresStore,
        SQLiteStore,
        aidempotent_upsert,
        idempotent_upsert,
        unit_of_work,
    )
    from .validation import (
        Field,
        JSONLQuarantine,
        PartitionContract,
        SQLQuarantine,
        Validator,
        quarantine,
        replay,
    )

__all__ = [
    "Alert",
    "Alerter",
    "Bulkhead",
    "Check",
    "CheckReport",
    "CheckSuite",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigurationError",
    "ConsecutiveFailures",
    "Event",
    "Field",
    "HealthRegistry",
    "JSONLQuarantine",
    "LoggingNotifier",
    "OpenDuration",
    "Partition",
    "PartitionContract",
    "PartitionLedger",
    "PermanentError",
    "PostgresStore",
    "RateLimiter",
    "ResilientPipelineError",
    "RetryBudget",
    "RetryPolicy",
    "SQLQuarantine",
    "SQLiteStore",
    "SlackNotifier",
    "StoreError",
    "ValidationError",
    "Validator",
    "__version__",
    "abackfill",
    "aidempotent_upsert",
    "backfill",
    "bind_context",
    "configure_logging",
    "daily",
    "fallback",
    "idempotent_upsert",
    "monitor",
    "quarantine",
    "replay",
    "resilient",
    "retry_with_backoff",
    "retrying",
    "serve_health",
    "subscribe",
    "timeout",
    "unit_of_work",
]

# Where each name lives; PEP 562 imports its package on first access.
_HOMES: dict[str, str] = {
    "Alert": "alerting",
    "Alerter": "alerting",
    "Bulkhead": "limits",
    "Check": "checks",
    "CheckReport": "checks",
    "CheckSuite": "checks",
    "CircuitBreaker": "breaker",
    "CircuitOpenError": "exceptions",
    "ConfigurationError": "exceptions",
    "ConsecutiveFailures": "breaker",
    "Event": "events",
    "Field": "validation",
    "HealthRegistry": "health",
    "JSONLQuarantine": "validation",
    "LoggingNotifier": "alerting",
    "OpenDuration": "breaker",
    "Partition": "ledger",
    "PartitionContract": "validation",
    "PartitionLedger": "ledger",
    "PermanentError": "exceptions",
    "PostgresStore": "storage",
    "RateLimiter": "limits",
    "ResilientPipelineError": "exceptions",
    "RetryBudget": "retry",
    "RetryPolicy": "retry",
    "SQLQuarantine": "validation",
    "SQLiteStore": "storage",
    "SlackNotifier": "alerting",
    "StoreError": "exceptions",
    "ValidationError": "exceptions",
    "Validator": "validation",
    "abackfill": "ledger",
    "aidempotent_upsert": "storage",
    "backfill": "ledger",
    "bind_context": "observability",
    "configure_logging": "observability",
    "daily": "ledger",
    "fallback": "limits",
    "idempotent_upsert": "storage",
    "monitor": "checks",
    "quarantine": "validation",
    "replay": "validation",
    "resilient": "limits",
    "retry_with_backoff": "retry",
    "retrying": "retry",
    "serve_health": "health",
    "subscribe": "events",
    "timeout": "limits",
    "unit_of_work": "storage",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
