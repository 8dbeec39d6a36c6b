"""resilient-pipeline: composable, typed reliability primitives for data pipelines.

Example:
    >>> from resilient_pipeline import retry_with_backoff
    >>> @retry_with_backoff(max_attempts=5, deadline=60.0)
    ... def fetch_campaigns(day: str) -> list[dict[str, object]]:
    ...     return [{"day": day, "campaign": "brand"}]
    >>> fetch_campaigns("2026-11-28")
    [{'day': '2026-11-28', 'campaign': 'brand'}]
"""

from ._batch import UpsertResult
from ._breaker_drivers import CircuitBreaker
from ._breaker_events import (
    CallRejected,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    CircuitStatistics,
)
from ._breaker_policy import ConsecutiveFailures, FailureRate, HalfOpen, OpenDuration
from ._breaker_registry import CircuitBreakerRegistry, RegistryStatistics
from ._breaker_store import BreakerBackend, BreakerStore
from ._budget import RetryBudget, RetryBudgetStatistics
from ._clock import SystemClock, get_default_clock
from ._deadline import deadline_scope, remaining_time
from ._events import Event, Subscription, emit, log_event, subscribe
from ._redact import redact
from ._retry import (
    Jitter,
    RetryExhausted,
    RetryOptions,
    RetryPolicy,
    RetryScheduled,
    RetrySucceeded,
)
from ._retry_after import default_retry_after, parse_retry_after
from ._retrying import Attempt, Retrying, retry_with_backoff, retrying
from ._sql import quote_identifier
from ._transaction import AsyncTransaction, Transaction
from ._uow import UnitOfWork, unit_of_work
from ._upsert import RowsUpserted, aidempotent_upsert, idempotent_upsert
from ._version import __version__
from .exceptions import (
    BadResultError,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceededError,
    DuplicateKeyError,
    InvalidBatchError,
    MissingDependencyError,
    MissingUniqueConstraintError,
    RejectedError,
    ResilientPipelineError,
    RowProblem,
    StoreError,
    TransientStoreError,
    UnitOfWorkError,
)
from .stores.postgres import PostgresStore
from .stores.sqlite import SQLiteStore

__all__ = [
    "AsyncTransaction",
    "Attempt",
    "BadResultError",
    "BreakerBackend",
    "BreakerStore",
    "CallRejected",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "CircuitClosed",
    "CircuitHalfOpened",
    "CircuitOpenError",
    "CircuitOpened",
    "CircuitStatistics",
    "ConfigurationError",
    "ConsecutiveFailures",
    "DeadlineExceededError",
    "DuplicateKeyError",
    "Event",
    "FailureRate",
    "HalfOpen",
    "InvalidBatchError",
    "Jitter",
    "MissingDependencyError",
    "MissingUniqueConstraintError",
    "OpenDuration",
    "PostgresStore",
    "RegistryStatistics",
    "RejectedError",
    "ResilientPipelineError",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryExhausted",
    "RetryOptions",
    "RetryPolicy",
    "RetryScheduled",
    "RetrySucceeded",
    "Retrying",
    "RowProblem",
    "RowsUpserted",
    "SQLiteStore",
    "StoreError",
    "Subscription",
    "SystemClock",
    "Transaction",
    "TransientStoreError",
    "UnitOfWork",
    "UnitOfWorkError",
    "UpsertResult",
    "__version__",
    "aidempotent_upsert",
    "deadline_scope",
    "default_retry_after",
    "emit",
    "get_default_clock",
    "idempotent_upsert",
    "log_event",
    "parse_retry_after",
    "quote_identifier",
    "redact",
    "remaining_time",
    "retry_with_backoff",
    "retrying",
    "subscribe",
    "unit_of_work",
]
