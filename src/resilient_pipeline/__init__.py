"""resilient-pipeline: composable, typed reliability primitives for data pipelines.

Example:
    >>> from resilient_pipeline import retry_with_backoff
    >>> @retry_with_backoff(max_attempts=5, deadline=60.0)
    ... def fetch_campaigns(day: str) -> list[dict[str, object]]:
    ...     return [{"day": day, "campaign": "brand"}]
    >>> fetch_campaigns("2026-11-28")
    [{'day': '2026-11-28', 'campaign': 'brand'}]
"""

from ._budget import RetryBudget, RetryBudgetStatistics
from ._bulkhead import Bulkhead, BulkheadRejected, BulkheadStatistics, BulkheadWaited
from ._clock import SystemClock, get_default_clock
from ._deadline import deadline_scope, remaining_time
from ._events import Event, Subscription, emit, log_event, subscribe
from ._fallback import Fallback, FallbackUsed, fallback
from ._pipeline import ResiliencePolicy, resilient
from ._ratelimit import RateLimitAdapted, RateLimiter, RateLimitRejected, RateLimitWaited
from ._redact import redact
from ._redis_limits import RedisBulkhead, RedisRateLimiter
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
from ._timeouts import TimedOut, Timeout, timeout
from ._token_bucket import TokenBucket, default_quota
from ._trail import PolicyEvent, current_attempt
from ._version import __version__
from .exceptions import (
    BadResultError,
    BulkheadFullError,
    ConfigurationError,
    DeadlineExceededError,
    MissingDependencyError,
    RateLimitedError,
    RejectedError,
    ResilientPipelineError,
)

__all__ = [
    "Attempt",
    "BadResultError",
    "Bulkhead",
    "BulkheadFullError",
    "BulkheadRejected",
    "BulkheadStatistics",
    "BulkheadWaited",
    "ConfigurationError",
    "DeadlineExceededError",
    "Event",
    "Fallback",
    "FallbackUsed",
    "Jitter",
    "MissingDependencyError",
    "PolicyEvent",
    "RateLimitAdapted",
    "RateLimitRejected",
    "RateLimitWaited",
    "RateLimitedError",
    "RateLimiter",
    "RedisBulkhead",
    "RedisRateLimiter",
    "RejectedError",
    "ResiliencePolicy",
    "ResilientPipelineError",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryExhausted",
    "RetryOptions",
    "RetryPolicy",
    "RetryScheduled",
    "RetrySucceeded",
    "Retrying",
    "Subscription",
    "SystemClock",
    "TimedOut",
    "Timeout",
    "TokenBucket",
    "__version__",
    "current_attempt",
    "deadline_scope",
    "default_quota",
    "default_retry_after",
    "emit",
    "fallback",
    "get_default_clock",
    "log_event",
    "parse_retry_after",
    "redact",
    "remaining_time",
    "resilient",
    "retry_with_backoff",
    "retrying",
    "subscribe",
    "timeout",
]
