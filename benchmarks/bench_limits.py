"""Overhead per call of each primitive and of the full composition, beside peers.

Run:  .venv/bin/python benchmarks/bench_limits.py [--quick]

Every rate limiter is configured so that it never limits (a huge rate): what
is measured is the cost a healthy call pays. Peers, where comparable:
aiolimiter (async only), pyrate-limiter (in-memory bucket), limits (moving
and fixed window in memory). The goal: the full composition's success path
(fallback, deadline, retry, rate limiter, bulkhead, timeout) costs less than
tenacity's retry decorator alone.

Issue 15's goals (``goals()``, collected by ``run_all.py``), each a ratio of
medians over interleaved rounds of ours and the peer in one process:

* full composition, sync: <= 2 us, which the issue measured as 0.40x
  tenacity at 5.97 us: the goal is <= 0.134x tenacity retry alone;
* full composition, async: <= 5 us against the issue's 20.5 us, which measured
  0.57x tenacity on this machine before the change: <= 0.138x tenacity;
* ``Bulkhead``, sync: <= 2x a bare ``threading.BoundedSemaphore``
  acquire/release around the same call;
* ``RateLimiter``, async: <= 1x aiolimiter around the same call.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import threading
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
warnings.simplefilter("ignore")

import limits  # noqa: E402
import limits.storage  # noqa: E402
import limits.strategies  # noqa: E402
import pyrate_limiter  # noqa: E402
import tenacity  # noqa: E402
from _harness import (  # noqa: E402
    Goal,
    interleaved,
    interleaved_async,
    medians,
    ratio_goal,
    table,
    verdicts,
)
from aiolimiter import AsyncLimiter  # noqa: E402

from resilient_pipeline import Bulkhead, RateLimiter, RetryPolicy, fallback, resilient, timeout  # noqa: E402

logging.getLogger().addHandler(logging.NullHandler())
QUICK = "--quick" in sys.argv
N = 5_000 if QUICK else 30_000
ROUNDS = 7
BIG = 1e12  # a rate that never limits
TENACITY = "tenacity retry alone"
AWAITS = "full composition, a body that awaits once"
TENACITY_AWAITS = "tenacity retry alone, a body that awaits once"


def ok() -> int:
    return 1


async def aok() -> int:
    return 1


async def awaits() -> int:
    """A body that suspends once, as a real fetch does: it keeps the timeout's cancel scope."""
    await asyncio.sleep(0)
    return 1


def full() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return resilient(
        fallback=fallback(0),
        deadline=60.0,
        retry=RetryPolicy(max_attempts=3, base_delay=0),
        rate_limiter=RateLimiter(rate=BIG),
        bulkhead=Bulkhead(max_concurrent=1_000),
        timeout=30.0,
    )


def tenacity_retry() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return tenacity.retry(
        stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none(), reraise=True
    )


def pyrate_call(fn: Callable[[], Any]) -> Callable[[], Any]:
    limiter = pyrate_limiter.Limiter(pyrate_limiter.Rate(10**9, pyrate_limiter.Duration.SECOND))

    def call() -> Any:
        limiter.try_acquire("bench", blocking=False)
        return fn()

    return call


def limits_call(strategy: type[Any]) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def wrap(fn: Callable[[], Any]) -> Callable[[], Any]:
        limiter = strategy(limits.storage.MemoryStorage())
        item = limits.RateLimitItemPerSecond(10**9)

        def call() -> Any:
            limiter.hit(item, "bench")
            return fn()

        return call

    return wrap


def aiolimiter_call(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    limiter = AsyncLimiter(10**9, 1)

    async def call() -> Any:
        async with limiter:
            return await fn()

    return call


def semaphore_call(fn: Callable[[], Any]) -> Callable[[], Any]:
    """The peer of the bulkhead goal: a bare BoundedSemaphore acquire/release around the call."""
    semaphore = threading.BoundedSemaphore(1_000)

    def call() -> Any:
        semaphore.acquire()
        try:
            return fn()
        finally:
            semaphore.release()

    return call


def sync_contenders() -> dict[str, Callable[[], Any]]:
    decorators: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
        "timeout (cooperative)": timeout(30.0),
        "Bulkhead": Bulkhead(max_concurrent=1_000),
        "BoundedSemaphore": semaphore_call,
        "RateLimiter": RateLimiter(rate=BIG),
        "pyrate-limiter": pyrate_call,
        "limits (moving window)": limits_call(limits.strategies.MovingWindowRateLimiter),
        "limits (fixed window)": limits_call(limits.strategies.FixedWindowRateLimiter),
        "fallback": fallback(0),
        "full composition": full(),
        TENACITY: tenacity_retry(),
    }
    return {"bare call": ok} | {name: deco(ok) for name, deco in decorators.items()}


def async_contenders() -> dict[str, Callable[[], Awaitable[Any]]]:
    decorators: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
        "timeout (cancel scope)": timeout(30.0),
        "Bulkhead": Bulkhead(max_concurrent=1_000),
        "RateLimiter": RateLimiter(rate=BIG),
        "aiolimiter": aiolimiter_call,
        "fallback": fallback(0),
        "full composition": full(),
        TENACITY: tenacity_retry(),
    }
    return (
        {"bare call": aok}
        | {name: deco(aok) for name, deco in decorators.items()}
        | {AWAITS: full()(awaits), TENACITY_AWAITS: tenacity_retry()(awaits)}
    )


def _awaiting(samples: dict[str, list[float]]) -> str:
    """The ratio for a body that awaits once (it keeps the cancel scope): not the goal's body."""
    if AWAITS not in samples:
        return ""
    ratio = ratio_goal("", "", samples, ours=AWAITS, peer=TENACITY_AWAITS, limit=0.0).ratio
    return f"; a body that awaits once: {ratio:.2f}x (not the goal's body)"


def _us(samples: dict[str, list[float]], name: str) -> str:
    return f"{statistics.median(samples[name]) / 1e3:.2f} us on this run"


def measure(
    quick: bool, only: tuple[str, ...] | None = None
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Interleaved samples of the sync and async contenders (``only``: a subset of names)."""
    n = 5_000 if quick else N
    rounds = 5 if quick else ROUNDS
    sync, asyn = sync_contenders(), async_contenders()
    if only is not None:
        sync = {k: v for k, v in sync.items() if k in only}
        asyn = {k: v for k, v in asyn.items() if k in only}
    return (
        interleaved(sync, number=n, rounds=rounds),
        interleaved_async(asyn, number=n // 4, rounds=rounds),
    )


GOAL_NAMES = (
    "full composition",
    TENACITY,
    AWAITS,
    TENACITY_AWAITS,
    "Bulkhead",
    "BoundedSemaphore",
    "RateLimiter",
    "aiolimiter",
)


def goals_from(sync: dict[str, list[float]], asyn: dict[str, list[float]]) -> list[Goal]:
    return [
        ratio_goal(
            "resilient() full composition, sync success path",
            "<= 2 us: <= 0.134x tenacity retry alone",
            sync,
            ours="full composition",
            peer=TENACITY,
            limit=0.134,
            note=_us(sync, "full composition"),
        ),
        ratio_goal(
            "resilient() full composition, async success path (asyncio)",
            "<= 5 us: <= 0.138x tenacity retry alone",
            asyn,
            ours="full composition",
            peer=TENACITY,
            limit=0.138,
            note=_us(asyn, "full composition") + _awaiting(asyn),
        ),
        ratio_goal(
            "Bulkhead, sync success path",
            "<= 2x a bare threading.BoundedSemaphore acquire/release",
            sync,
            ours="Bulkhead",
            peer="BoundedSemaphore",
            limit=2.0,
        ),
        ratio_goal(
            "RateLimiter, async success path (asyncio)",
            "<= aiolimiter",
            asyn,
            ours="RateLimiter",
            peer="aiolimiter",
            limit=1.0,
        ),
    ]


def goals(quick: bool) -> list[Goal]:
    """Issue 15's policy-stack goals (see the module docstring)."""
    return goals_from(*measure(quick, GOAL_NAMES))


def run() -> str:
    sync, asyn = measure(QUICK)
    return "\n\n".join(
        [
            table("Sync success path", medians(sync), baseline=TENACITY),
            table("Async success path (asyncio)", medians(asyn), baseline=TENACITY),
            verdicts(goals_from(sync, asyn)),
        ]
    )


if __name__ == "__main__":
    print(run())
