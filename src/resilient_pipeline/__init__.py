"""resilient-pipeline: composable, typed reliability primitives for data pipelines.

Example:
    >>> from resilient_pipeline import retry_with_backoff
    >>> @retry_with_backoff(max_attempts=5, deadline=60.0)
    ... def fetch_campaigns(day: str) -> list[dict[str, object]]:
    ...     return [{"day": day, "campaign": "brand"}]
    >>> fetch_campaigns("2026-11-28")
    [{'day': '2026-11-28', 'campaign': 'brand'}]
"""

from ._alert_log import StoreAlertLog
from ._alerter import Alerter, AlerterStatistics, AlertLog, Delivery, MemoryAlertLog, Route
from ._alerts import Alert, AlertDeliveryFailed, AlertSent, AlertSuppressed, Severity
from ._backfill import BackfillFinished, BackfillReport, PartitionCollected, abackfill, backfill
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
from ._bulkhead import Bulkhead, BulkheadRejected, BulkheadStatistics, BulkheadWaited
from ._checks import Check, CheckContext, CheckErrored, CheckFailed, CheckOutcome, CheckSuite
from ._clock import SystemClock, get_default_clock
from ._deadline import deadline_scope, remaining_time
from ._events import Event, Subscription, emit, log_event, subscribe
from ._fallback import Fallback, FallbackUsed, fallback
from ._fields import Field
from ._issues import Issue, PartitionResult, Quarantined, RowsQuarantined, ValidationReport
from ._ledger import (
    Claimed,
    Partition,
    PartitionFailed,
    PartitionLedger,
    PartitionRecord,
    PartitionRestated,
    Restatement,
    daily,
)
from ._monitor import amonitor, monitor
from ._notifiers import EmailNotifier, LoggingNotifier, SlackNotifier, WebhookNotifier
from ._pipeline import ResiliencePolicy, resilient
from ._quarantine import (
    QuarantineRecord,
    ReplayResult,
    RowsReplayed,
    areplay,
    quarantine,
    replay,
)
from ._quarantine_sinks import JSONLQuarantine, SQLQuarantine
from ._ratelimit import RateLimitAdapted, RateLimiter, RateLimitRejected, RateLimitWaited
from ._redact import redact
from ._redis_limits import RedisBulkhead, RedisRateLimiter
from ._report import CheckExitCode, CheckReport, CheckResult
from ._retry import Jitter, RetryOptions, RetryPolicy
from ._retry_after import default_retry_after, parse_retry_after
from ._retry_events import RetryExhausted, RetryScheduled, RetrySucceeded
from ._retrying import Attempt, Retrying, retry_with_backoff, retrying
from ._sql import quote_identifier
from ._timeouts import TimedOut, Timeout, timeout
from ._token_bucket import TokenBucket, default_quota
from ._trail import PolicyEvent, current_attempt
from ._transaction import AsyncTransaction, Transaction
from ._uow import UnitOfWork, unit_of_work
from ._upsert import RowsUpserted, aidempotent_upsert, idempotent_upsert
from ._validation import Validator
from ._version import __version__
from .exceptions import (
    AlertDeliveryError,
    BackfillError,
    BadResultError,
    BulkheadFullError,
    CheckError,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceededError,
    DuplicateKeyError,
    InvalidBatchError,
    LeaseLostError,
    LedgerError,
    MissingDependencyError,
    MissingUniqueConstraintError,
    RateLimitedError,
    RejectedError,
    ResilientPipelineError,
    RowProblem,
    StoreError,
    TransientStoreError,
    UnitOfWorkError,
    ValidationError,
)
from .stores.postgres import PostgresStore
from .stores.sqlite import SQLiteStore

__all__ = [
    "Alert",
    "AlertDeliveryError",
    "AlertDeliveryFailed",
    "AlertLog",
    "AlertSent",
    "AlertSuppressed",
    "Alerter",
    "AlerterStatistics",
    "AsyncTransaction",
    "Attempt",
    "BackfillError",
    "BackfillFinished",
    "BackfillReport",
    "BadResultError",
    "BreakerBackend",
    "BreakerStore",
    "Bulkhead",
    "BulkheadFullError",
    "BulkheadRejected",
    "BulkheadStatistics",
    "BulkheadWaited",
    "CallRejected",
    "Check",
    "CheckContext",
    "CheckError",
    "CheckErrored",
    "CheckExitCode",
    "CheckFailed",
    "CheckOutcome",
    "CheckReport",
    "CheckResult",
    "CheckSuite",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "CircuitClosed",
    "CircuitHalfOpened",
    "CircuitOpenError",
    "CircuitOpened",
    "CircuitStatistics",
    "Claimed",
    "ConfigurationError",
    "ConsecutiveFailures",
    "DeadlineExceededError",
    "Delivery",
    "DuplicateKeyError",
    "EmailNotifier",
    "Event",
    "FailureRate",
    "Fallback",
    "FallbackUsed",
    "Field",
    "HalfOpen",
    "InvalidBatchError",
    "Issue",
    "JSONLQuarantine",
    "Jitter",
    "LeaseLostError",
    "LedgerError",
    "LoggingNotifier",
    "MemoryAlertLog",
    "MissingDependencyError",
    "MissingUniqueConstraintError",
    "OpenDuration",
    "Partition",
    "PartitionCollected",
    "PartitionFailed",
    "PartitionLedger",
    "PartitionRecord",
    "PartitionRestated",
    "PartitionResult",
    "PolicyEvent",
    "PostgresStore",
    "QuarantineRecord",
    "Quarantined",
    "RateLimitAdapted",
    "RateLimitRejected",
    "RateLimitWaited",
    "RateLimitedError",
    "RateLimiter",
    "RedisBulkhead",
    "RedisRateLimiter",
    "RegistryStatistics",
    "RejectedError",
    "ReplayResult",
    "ResiliencePolicy",
    "ResilientPipelineError",
    "Restatement",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryExhausted",
    "RetryOptions",
    "RetryPolicy",
    "RetryScheduled",
    "RetrySucceeded",
    "Retrying",
    "Route",
    "RowProblem",
    "RowsQuarantined",
    "RowsReplayed",
    "RowsUpserted",
    "SQLQuarantine",
    "SQLiteStore",
    "Severity",
    "SlackNotifier",
    "StoreAlertLog",
    "StoreError",
    "Subscription",
    "SystemClock",
    "TimedOut",
    "Timeout",
    "TokenBucket",
    "Transaction",
    "TransientStoreError",
    "UnitOfWork",
    "UnitOfWorkError",
    "UpsertResult",
    "ValidationError",
    "ValidationReport",
    "Validator",
    "WebhookNotifier",
    "__version__",
    "abackfill",
    "aidempotent_upsert",
    "amonitor",
    "areplay",
    "backfill",
    "current_attempt",
    "daily",
    "deadline_scope",
    "default_quota",
    "default_retry_after",
    "emit",
    "fallback",
    "get_default_clock",
    "idempotent_upsert",
    "log_event",
    "monitor",
    "parse_retry_after",
    "quarantine",
    "quote_identifier",
    "redact",
    "remaining_time",
    "replay",
    "resilient",
    "retry_with_backoff",
    "retrying",
    "subscribe",
    "timeout",
    "unit_of_work",
]
