"""Circuit breakers side by side: success- and rejection-path cost, sync and async, and Redis mode.

Run: .venv/bin/python benchmarks/bench_breaker.py
(the last table needs Redis on 127.0.0.1:6379)

Every peer runs in this one process, on the same functions, in interleaved
rounds (the order rotating each round); tables show the median round.

Goals (``goals()``, collected by ``run_all.py``), each the median over the
rounds of ours divided by the peer measured in the same round:

* success path, sync and async: cheaper than every peer (ours / the fastest
  peer of the round <= 1);
* rejection path (open circuit), sync and async: <= 0.6x circuitbreaker
  (issue 15);
* Redis-shared state, success path: at least 10x pybreaker's Redis storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import sys
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

QUICK = "--quick" in sys.argv
SYNC_N = 10_000 if QUICK else 50_000
ASYNC_N = 5_000 if QUICK else 20_000
REPEATS = 5 if QUICK else 9


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


def interleaved(
    fns: dict[str, Callable[[], Any]],
    n: int,
    errors: tuple[type[BaseException], ...] = (),
    *,
    is_async: bool = False,
) -> dict[str, list[float]]:
    """ns/call of each function in every round; each round runs all of them, order rotating.

    Unlike ``_harness.ns_per_call`` the garbage collector stays on: a breaker
    that leaves a reference cycle per rejection must pay for it here.
    """
    if is_async:
        return _harness.interleaved_async(
            fns, number=n, rounds=REPEATS, errors=errors, gc_off=False
        )
    return _harness.interleaved(fns, number=n, rounds=REPEATS, errors=errors, gc_off=False)


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


def table(title: str, samples: dict[str, list[float]]) -> None:
    print()
    print(_harness.table(title, _harness.medians(samples), baseline="resilient-pipeline"))


OURS = "resilient-pipeline"


def sync_samples() -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    success = {name: make(ok) for name, make in SYNC_PEERS.items()}
    success["(bare call)"] = ok
    rejecting = {}
    for name, make in SYNC_PEERS.items():
        rejecting[name] = fn = make(boom)
        trip_sync(fn)
    return interleaved(success, SYNC_N), interleaved(rejecting, SYNC_N, (Exception,))


def async_samples() -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    success = {name: make(aok) for name, make in ASYNC_PEERS.items()}
    success["(bare await)"] = aok
    rejecting = {}
    for name, make in ASYNC_PEERS.items():
        rejecting[name] = fn = make(aboom)
        asyncio.run(trip_async(fn))
    return (
        interleaved(success, ASYNC_N, is_async=True),
        interleaved(rejecting, ASYNC_N, (Exception,), is_async=True),
    )


def _with_fastest_peer(samples: dict[str, list[float]]) -> dict[str, list[float]]:
    peers = [values for name, values in samples.items() if name != OURS and name[0] != "("]
    return samples | {"fastest peer": [min(round_) for round_ in zip(*peers, strict=True)]}


def redis_samples() -> dict[str, list[float]] | str:
    """ns/call of ours and pybreaker over Redis-shared state, or why it could not run."""
    try:
        import redis
    except ImportError:
        return "redis-py not installed"
    from resilient_pipeline.breaker import RedisBreakerStore

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        return f"no Redis at 127.0.0.1:6379 ({type(exc).__name__})"
    prefix = f"rp-bench:{uuid.uuid4().hex[:8]}:"
    try:
        store = RedisBreakerStore(client, prefix=prefix)
        storage = pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, client, namespace=f"{prefix}pybreaker"
        )
        fns = {
            OURS: CircuitBreaker(name="ads", store=store)(ok),
            "pybreaker": pybreaker.CircuitBreaker(
                fail_max=5, reset_timeout=3600, state_storage=storage
            )(ok),
        }
        return _harness.interleaved(fns, number=500 if QUICK else 2_000, rounds=REPEATS)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def goals_from(
    sync: tuple[dict[str, list[float]], dict[str, list[float]]],
    asyn: tuple[dict[str, list[float]], dict[str, list[float]]],
    shared: dict[str, list[float]] | str,
) -> list[_harness.Goal]:
    goals = []
    for mode, (success, rejecting) in (("sync", sync), ("async (asyncio)", asyn)):
        goals.append(
            _harness.ratio_goal(
                f"circuit breaker, {mode} success path",
                "cheaper than every peer: <= 1x the fastest peer",
                _with_fastest_peer(success),
                ours=OURS,
                peer="fastest peer",
                limit=1.0,
            )
        )
        goals.append(
            _harness.ratio_goal(
                f"circuit breaker, {mode} rejection path (open circuit)",
                "<= 0.6x circuitbreaker",
                rejecting,
                ours=OURS,
                peer="circuitbreaker",
                limit=0.6,
            )
        )
    what, goal = "circuit breaker, Redis-shared state, success path", ">= 10x pybreaker's Redis"
    if isinstance(shared, str):
        goals.append(_harness.Goal(what, goal, None, None, None, 10.0, True, note=shared))
    else:
        goals.append(
            _harness.ratio_goal(
                what, goal, shared, ours=OURS, peer="pybreaker", limit=10.0, higher_is_better=True
            )
        )
    return goals


def goals(quick: bool) -> list[_harness.Goal]:
    """The breaker's goals (see the module docstring)."""
    global SYNC_N, ASYNC_N, REPEATS
    if quick:
        SYNC_N, ASYNC_N, REPEATS = 10_000, 5_000, 5
    return goals_from(sync_samples(), async_samples(), redis_samples())


def main() -> None:
    print(f"## Circuit breaker ({datetime.date.today().isoformat()})")
    sync, asyn, shared = sync_samples(), async_samples(), redis_samples()
    table("Sync success path", sync[0])
    table("Sync rejection path (open circuit)", sync[1])
    table("Async success path (asyncio)", asyn[0])
    table("Async rejection path (asyncio)", asyn[1])
    if isinstance(shared, str):
        print(f"\n### Redis-shared state: not measured, {shared}")
    else:
        table("Redis-shared state, success path", shared)
    print()
    print(_harness.verdicts(goals_from(sync, asyn, shared)))


if __name__ == "__main__":
    main()
