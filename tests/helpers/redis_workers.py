"""Worker processes for the Redis multi-process tests (importable by 'spawn' children)."""

from __future__ import annotations

import time

from resilient_pipeline.exceptions import BulkheadFullError, RateLimitedError
from resilient_pipeline.limits._redis import RedisBulkhead, RedisRateLimiter


def hammer_limiter(url: str, prefix: str, rate: float, burst: int, seconds: float) -> int:
    """Try to take tokens in a tight loop for ``seconds``; how many were admitted."""
    limiter = RedisRateLimiter(url=url, prefix=prefix, rate=rate, burst=burst, on_limit="reject")
    admitted = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            limiter.acquire("shared-account")
        except RateLimitedError:
            continue
        admitted += 1
    return admitted


def hammer_bulkhead(url: str, prefix: str, limit: int, seconds: float) -> tuple[int, int]:
    """Hold leases in a loop for ``seconds``; (calls admitted, most calls seen inside at once)."""
    bulkhead = RedisBulkhead(url=url, prefix=prefix, max_concurrent=limit, lease_ttl=10.0)
    counter = f"{prefix}inside"
    client = bulkhead._redis
    admitted, peak = 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            lease = bulkhead.acquire()
        except BulkheadFullError:
            continue
        try:
            peak = max(peak, int(client.incr(counter)))
            admitted += 1
            time.sleep(0.002)  # hold the slot so the others collide with it
            client.decr(counter)
        finally:
            bulkhead.release(lease)
    return admitted, peak
