"""Limits on one call: timeouts, bulkheads, rate limits, fallbacks; ``resilient()`` composes them.

Examples:
    >>> from resilient_pipeline.limits import Bulkhead
    >>> Bulkhead(max_concurrent=4).statistics().max_concurrent
    4
"""

from __future__ import annotations

from resilient_pipeline._core import deadline_scope, remaining_time

from ._bulkhead import Bulkhead, BulkheadRejected, BulkheadStatistics, BulkheadWaited
from ._compose import ResiliencePolicy, resilient
from ._fallback import Fallback, FallbackUsed, fallback
from ._outage import LimitStoreFailed
from ._ratelimit import RateLimitAdapted, RateLimiter, RateLimitRejected, RateLimitWaited
from ._redis import RedisBulkhead, RedisRateLimiter
from ._timeout import TimedOut, Timeout, timeout
from ._token_bucket import TokenBucket, default_quota
from ._trail import PolicyEvent, current_attempt

__all__ = [
    "Bulkhead",
    "BulkheadRejected",
    "BulkheadStatistics",
    "BulkheadWaited",
    "Fallback",
    "FallbackUsed",
    "LimitStoreFailed",
    "PolicyEvent",
    "RateLimitAdapted",
    "RateLimitRejected",
    "RateLimitWaited",
    "RateLimiter",
    "RedisBulkhead",
    "RedisRateLimiter",
    "ResiliencePolicy",
    "TimedOut",
    "Timeout",
    "TokenBucket",
    "current_attempt",
    "deadline_scope",
    "default_quota",
    "fallback",
    "remaining_time",
    "resilient",
    "timeout",
]
