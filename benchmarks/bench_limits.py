"""Overhead per call of each primitive and of the full composition, beside peers.

Run:  .venv/bin/python benchmarks/bench_limits.py [--quick]

Every rate limiter is configured so that it never limits (a huge rate): what
is measured is the cost a healthy call pays. Peers, where comparable:
aiolimiter (async only), pyrate-limiter (in-memory bucket), limits (moving
and fixed window in memory). The goal: the full composition's success path
(fallback, deadline, retry, rate limiter, bulkhead, timeout) costs less than
tenacity's retry decorator alone.
"""

from __future__ import annotations

import logging
import sys
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
from _harness import ns_per_acall, ns_per_call, table  # noqa: E402
from aiolimiter import AsyncLimiter  # noqa: E402

from resilient_pipeline import Bulkhead, RateLimiter, RetryPolicy, fallback, resilient, timeout  # noqa: E402

logging.getLogger().addHandler(logging.NullHandler())
QUICK = "--quick" in sys.argv
N = 5_000 if QUICK else 30_000
BIG = 1e12  # a rate that never limits
TENACITY = "tenacity retry alone"


def ok() -> int:
    return 1


async def aok() -> int:
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


def run() -> str:
    sections = []
    sync: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
        "timeout (cooperative)": timeout(30.0),
        "Bulkhead": Bulkhead(max_concurrent=1_000),
        "RateLimiter": RateLimiter(rate=BIG),
        "pyrate-limiter": pyrate_call,
        "limits (moving window)": limits_call(limits.strategies.MovingWindowRateLimiter),
        "limits (fixed window)": limits_call(limits.strategies.FixedWindowRateLimiter),
        "fallback": fallback(0),
        "full composition": full(),
        TENACITY: tenacity_retry(),
    }
    rows = {"bare call": ns_per_call(ok, number=N)}
    rows |= {name: ns_per_call(deco(ok), number=N) for name, deco in sync.items()}
    sections.append(table("Sync success path", rows, baseline=TENACITY))

    asynchronous: dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {
        "timeout (cancel scope)": timeout(30.0),
        "Bulkhead": Bulkhead(max_concurrent=1_000),
        "RateLimiter": RateLimiter(rate=BIG),
        "aiolimiter": aiolimiter_call,
        "fallback": fallback(0),
        "full composition": full(),
        TENACITY: tenacity_retry(),
    }
    rows = {"bare call": ns_per_acall(aok, number=N // 4)}
    rows |= {name: ns_per_acall(deco(aok), number=N // 4) for name, deco in asynchronous.items()}
    sections.append(table("Async success path (asyncio)", rows, baseline=TENACITY))
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(run())
