"""Tests for the Redis-backed rate limiter and bulkhead, against the real server."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import anyio
import pytest
import redis

from resilient_pipeline import ConfigurationError, resilient
from resilient_pipeline.exceptions import BulkheadFullError, RateLimitedError
from resilient_pipeline.limits._redis import RedisBulkhead, RedisRateLimiter
from tests.helpers.redis_workers import hammer_bulkhead, hammer_limiter

pytestmark = pytest.mark.redis

PROCESSES = 4


def server_time(url: str) -> float:
    client = redis.Redis.from_url(url)
    try:
        seconds, micros = client.time()
        return seconds + micros / 1e6
    finally:
        client.close()


def test_bucket_is_shared_and_says_when_to_come_back(redis_url: str, redis_prefix: str) -> None:
    """Two limiters on one prefix share the bucket; a refusal carries retry_after."""
    one = RedisRateLimiter(url=redis_url, prefix=redis_prefix, rate=1, burst=2, on_limit="reject")
    two = RedisRateLimiter(url=redis_url, prefix=redis_prefix, rate=1, burst=2, on_limit="reject")
    one.acquire("acct")
    two.acquire("acct")
    with pytest.raises(RateLimitedError) as info:
        one.acquire("acct")
    assert info.value.retry_after is not None
    assert 0.5 < info.value.retry_after <= 1.0
    two.acquire("other-acct")


def admitted(limiter: RedisRateLimiter, key: str, tries: int) -> int:
    """How many of ``tries`` immediate calls the limiter admits."""
    count = 0
    for _ in range(tries):
        try:
            limiter.acquire(key)
        except RateLimitedError:
            continue
        count += 1
    return count


def test_limiters_with_different_names_keep_their_own_buckets(
    redis_url: str, redis_prefix: str
) -> None:
    """On one prefix and one key, limiters of different names never take each other's tokens."""
    # One token an hour: no refill can happen during the test, so counts are exact.
    hourly: dict[str, Any] = {"url": redis_url, "prefix": redis_prefix, "rate": 1, "per": 3600}
    slow = RedisRateLimiter(**hourly, burst=2, on_limit="reject", name="slow")
    fast = RedisRateLimiter(**hourly, burst=5, on_limit="reject", name="fast")
    assert 2 == admitted(slow, "acct", 10)
    assert 5 == admitted(fast, "acct", 10)
    twin = RedisRateLimiter(**hourly, burst=2, on_limit="reject", name="slow")
    assert (0, 0) == (admitted(slow, "acct", 3), admitted(twin, "acct", 3))


def test_a_fast_limiter_does_not_refill_a_slow_one(redis_url: str, redis_prefix: str) -> None:
    """A limiter's refill rate applies to its own bucket only (the issue's 1-a-minute case)."""
    slow = RedisRateLimiter(
        url=redis_url, prefix=redis_prefix, rate=1, per=60, on_limit="reject", name="slow"
    )
    # A million tokens a second: any bucket fast touches is full again within microseconds.
    fast = RedisRateLimiter(
        url=redis_url, prefix=redis_prefix, rate=1_000_000, burst=1000, name="fast"
    )
    results = []
    for _ in range(20):
        fast.acquire("acct")
        results.append(admitted(slow, "acct", 1))
    assert [1] + [0] * 19 == results


def test_limiter_and_bulkhead_of_one_name_do_not_collide(redis_url: str, redis_prefix: str) -> None:
    """A limiter and a bulkhead named alike on one prefix keep separate Redis keys."""
    limiter = RedisRateLimiter(url=redis_url, prefix=redis_prefix, rate=100, name="ads-api")
    bulkhead = RedisBulkhead(url=redis_url, prefix=redis_prefix, max_concurrent=1, name="ads-api")
    limiter.acquire("ads-api")
    limiter.acquire()
    lease = bulkhead.acquire()
    assert 1 == bulkhead.in_flight()
    bulkhead.release(lease)
    limiter.acquire("ads-api")


@pytest.mark.slow
def test_processes_never_exceed_the_quota(redis_url: str, redis_prefix: str) -> None:
    """Several OS processes hammering one key never get more than rate * t + burst in all."""
    rate, burst, seconds = 50.0, 5, 1.0
    started = server_time(redis_url)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
        futures = [
            pool.submit(hammer_limiter, redis_url, redis_prefix, rate, burst, seconds)
            for _ in range(PROCESSES)
        ]
        admitted = [future.result(timeout=60) for future in futures]
    elapsed = server_time(redis_url) - started
    assert sum(admitted) <= rate * elapsed + burst
    assert sum(admitted) >= burst + rate * seconds * 0.5  # the quota was really used


@pytest.mark.slow
def test_processes_never_exceed_the_slots(redis_url: str, redis_prefix: str) -> None:
    """Several OS processes never have more than max_concurrent leases at once."""
    limit, seconds = 2, 1.0
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
        futures = [
            pool.submit(hammer_bulkhead, redis_url, redis_prefix, limit, seconds)
            for _ in range(PROCESSES)
        ]
        results = [future.result(timeout=60) for future in futures]
    assert max(peak for _, peak in results) <= limit
    assert sum(admitted for admitted, _ in results) > limit


def test_expired_lease_frees_its_slot(redis_url: str, redis_prefix: str) -> None:
    """A slot held by a crashed caller comes back when its lease expires."""
    bulkhead = RedisBulkhead(url=redis_url, prefix=redis_prefix, max_concurrent=1, lease_ttl=0.05)
    bulkhead.acquire()  # never released, as if the process died
    with pytest.raises(BulkheadFullError):
        bulkhead.acquire()
    time.sleep(0.06)  # a real Redis clock: let the lease run out
    bulkhead.release(bulkhead.acquire())
    assert 0 == bulkhead.in_flight()


@pytest.mark.anyio
async def test_async_decorators_release_their_leases(redis_url: str, redis_prefix: str) -> None:
    """Async functions take a token and a lease, and give the lease back (asyncio and trio)."""
    bulkhead = RedisBulkhead(url=redis_url, prefix=redis_prefix, max_concurrent=1, lease_ttl=5)
    limiter = RedisRateLimiter(url=redis_url, prefix=redis_prefix, rate=100)

    @resilient(rate_limiter=limiter, bulkhead=bulkhead, timeout=5.0)
    async def fetch(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x

    assert [1, 2] == [await fetch(1), await fetch(2)]
    assert 0 == bulkhead.in_flight()


def test_bad_options_name_the_option(redis_url: str) -> None:
    """Invalid limits and a missing connection are refused at construction."""
    with pytest.raises(ConfigurationError) as info:
        RedisRateLimiter(url=redis_url, rate=0)
    assert "rate" == info.value.option
    with pytest.raises(ConfigurationError) as info:
        RedisBulkhead(max_concurrent=1)
    assert "url" == info.value.option
    with pytest.raises(ConfigurationError) as info:
        RedisBulkhead(url=redis_url, max_concurrent=0)
    assert "max_concurrent" == info.value.option
