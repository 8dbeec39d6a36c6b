"""Circuit breakers side by side: success- and rejection-path cost, sync and async, and Redis mode.

Run: .venv/bin/python benchmarks/bench_breaker.py
(the last table needs Redis on 127.0.0.1:6379)

Every peer runs in this one process, on the same functions, best of 9 interleaved rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiobreaker
import circuitbreaker
import purgatory
import pybreaker

from resilient_pipeline import CircuitBreaker, ConsecutiveFailures, OpenDuration

sys.path.insert(0, str(Path(__file__).parent))
import _harness

logging.disable(logging.CRITICAL)  # peers and we log on trips; measure the breakers, not logging

SYNC_N = 50_000
ASYNC_N = 20_000
REPEATS = 9


class Down(Exception):
    pass


def ok() -> int:
    return 1


def boom() -> int:
    raise Down


async def aok() -> int:
    return 1


async def aboom() -> int:
    raise Down


def _loop_sync(fn: Callable[[], Any], n: int, errors: tuple[type[BaseException], ...]) -> float:
    start = time.perf_counter_ns()
    if errors:
        for _ in range(n):
            try:  # noqa: SIM105 -- suppress() would add its own cost to the timed loop
                fn()
            except errors:
                pass
    else:
        for _ in range(n):
            fn()
    return (time.perf_counter_ns() - start) / n


async def _loop_async(
    fn: Callable[[], Awaitable[Any]], n: int, errors: tuple[type[BaseException], ...]
) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        try:  # noqa: SIM105 -- suppress() would add its own cost to the timed loop
            await fn()
        except errors:
            pass
    return (time.perf_counter_ns() - start) / n


def interleaved(
    fns: dict[str, Callable[[], Any]],
    n: int,
    errors: tuple[type[BaseException], ...] = (),
    *,
    is_async: bool = False,
) -> dict[str, float]:
    """Best ns/call of each function; every round runs all of them, so load spikes hit all.

    Unlike ``_harness.ns_per_call`` the garbage collector stays on: a breaker
    that leaves a reference cycle per rejection must pay for it here.
    """
    best = dict.fromkeys(fns, float("inf"))

    async def rounds_async() -> None:
        for _ in range(REPEATS):
            for name, fn in fns.items():
                best[name] = min(best[name], await _loop_async(fn, n, errors))

    if is_async:
        asyncio.run(rounds_async())
    else:
        for _ in range(REPEATS):
            for name, fn in fns.items():
                best[name] = min(best[name], _loop_sync(fn, n, errors))
    return best


def trip_sync(fn: Callable[[], Any]) -> None:
    for _ in range(10):
        with contextlib.suppress(Exception):  # tripping the breaker, whatever its error
            fn()


async def trip_async(fn: Callable[[], Awaitable[Any]]) -> None:
    for _ in range(10):
        with contextlib.suppress(Exception):
            await fn()


# ------------------------------------------------------------------ the breakers
def ours(fn: Callable[..., Any]) -> Callable[..., Any]:
    breaker = CircuitBreaker(
        name=f"bench-{uuid.uuid4().hex[:6]}",
        trip=ConsecutiveFailures(threshold=5),
        open_duration=OpenDuration(seconds=3600),
    )
    return breaker(fn)


def with_pybreaker(fn: Callable[..., Any]) -> Callable[..., Any]:
    return pybreaker.CircuitBreaker(fail_max=5, reset_timeout=3600)(fn)


def with_circuitbreaker(fn: Callable[..., Any]) -> Callable[..., Any]:
    return circuitbreaker.circuit(failure_threshold=5, recovery_timeout=3600)(fn)


def with_purgatory(fn: Callable[..., Any]) -> Callable[..., Any]:
    factory = purgatory.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=3600)
    return factory(f"bench-{uuid.uuid4().hex[:6]}")(fn)


def with_apurgatory(fn: Callable[..., Any]) -> Callable[..., Any]:
    factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=3600)
    return factory(f"bench-{uuid.uuid4().hex[:6]}")(fn)


def with_aiobreaker(fn: Callable[..., Any]) -> Callable[..., Any]:
    return aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=datetime.timedelta(seconds=3600))(
        fn
    )


SYNC_PEERS = {
    "resilient-pipeline": ours,
    "pybreaker": with_pybreaker,
    "circuitbreaker": with_circuitbreaker,
    "purgatory": with_purgatory,
}
ASYNC_PEERS = {
    "resilient-pipeline": ours,
    "aiobreaker": with_aiobreaker,
    "circuitbreaker": with_circuitbreaker,
    "purgatory": with_apurgatory,
}


def table(title: str, rows: dict[str, float]) -> None:
    print()
    print(_harness.table(title, rows, baseline="resilient-pipeline"))


def sync_tables() -> None:
    success = {name: make(ok) for name, make in SYNC_PEERS.items()}
    success["(bare call)"] = ok
    table("Sync success path", interleaved(success, SYNC_N))
    rejecting = {}
    for name, make in SYNC_PEERS.items():
        rejecting[name] = fn = make(boom)
        trip_sync(fn)
    table("Sync rejection path (open circuit)", interleaved(rejecting, SYNC_N, (Exception,)))


def async_tables() -> None:
    success = {name: make(aok) for name, make in ASYNC_PEERS.items()}
    success["(bare await)"] = aok
    table("Async success path (asyncio)", interleaved(success, ASYNC_N, is_async=True))
    rejecting = {}
    for name, make in ASYNC_PEERS.items():
        rejecting[name] = fn = make(aboom)
        asyncio.run(trip_async(fn))
    rows = interleaved(rejecting, ASYNC_N, (Exception,), is_async=True)
    table("Async rejection path (asyncio)", rows)


def redis_table() -> None:
    import redis

    from resilient_pipeline.breaker import RedisBreakerStore

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"rp-bench:{uuid.uuid4().hex[:8]}:"
    try:
        store = RedisBreakerStore(client, prefix=prefix)
        ours_redis = CircuitBreaker(name="ads", store=store)(ok)
        storage = pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, client, namespace=f"{prefix}pybreaker"
        )
        theirs = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=3600, state_storage=storage)(ok)
        rows = {
            "resilient-pipeline": 1e9 / interleaved({"x": ours_redis}, 50_000)["x"],
            "pybreaker": 1e9 / interleaved({"x": theirs}, 2_000)["x"],
        }
        print("\n### Redis-shared state, success path (calls/s per process)\n")
        print("| breaker | calls/s | resilient-pipeline is |")
        print("|---|---:|---:|")
        for name, value in rows.items():
            print(f"| {name} | {value:,.0f} | {rows['resilient-pipeline'] / value:.1f}x faster |")
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    print(f"## Circuit breaker ({datetime.date.today().isoformat()})")
    sync_tables()
    async_tables()
    redis_table()
