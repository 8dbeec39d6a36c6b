"""retry_with_backoff beside a hand-written loop, tenacity, backoff and stamina.

Run:  .venv/bin/python benchmarks/bench_retry.py [--quick]

Prints ns/call and ratios, in one process, for:
* the success path of a trivial function (the cost every healthy call pays);
* fail-once-then-succeed with zero waits (the cost of one retry itself);
* the async equivalents.
Every retrying implementation is configured alike: 3 attempts, retry on any
Exception, no waiting. Logging is left at each library's default (ours and
stamina's log a retry through stdlib logging; with no handler configured).
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

import backoff  # noqa: E402
import stamina  # noqa: E402
import tenacity  # noqa: E402
from _harness import ns_per_acall, ns_per_call, table  # noqa: E402

from resilient_pipeline import retry_with_backoff  # noqa: E402

# Logging as an application that configured nothing: records are built, then dropped.
logging.getLogger().addHandler(logging.NullHandler())
QUICK = "--quick" in sys.argv
N_OK = 20_000 if QUICK else 100_000
N_FAIL = 2_000 if QUICK else 10_000
HAND = "hand-written loop"


def hand_loop(fn: Callable[[], Any]) -> Callable[[], Any]:
    def wrapper() -> Any:
        for attempt in range(3):
            try:
                return fn()
            except Exception:
                if attempt == 2:
                    raise
        return None

    return wrapper


def ahand_loop(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def wrapper() -> Any:
        for attempt in range(3):
            try:
                return await fn()
            except Exception:
                if attempt == 2:
                    raise
        return None

    return wrapper


def decorators() -> dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]:
    return {
        HAND: hand_loop,
        "resilient_pipeline": retry_with_backoff(max_attempts=3, base_delay=0),
        "tenacity": tenacity.retry(
            stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none(), reraise=True
        ),
        "backoff": backoff.on_exception(backoff.constant, Exception, max_tries=3, interval=0),
        "stamina": stamina.retry(
            on=Exception, attempts=3, wait_initial=0, wait_max=0, wait_jitter=0
        ),
    }


def ok() -> int:
    return 1


async def aok() -> int:
    return 1


def fail_once() -> Callable[[], int]:
    state = [0]

    def fn() -> int:
        state[0] += 1
        if state[0] % 2:
            raise ConnectionError("flaky")
        return 1

    return fn


def afail_once() -> Callable[[], Awaitable[int]]:
    state = [0]

    async def fn() -> int:
        state[0] += 1
        if state[0] % 2:
            raise ConnectionError("flaky")
        return 1

    return fn


def run() -> str:
    sections = []
    sync = decorators()
    rows = {"bare call": ns_per_call(ok, number=N_OK)}
    rows |= {name: ns_per_call(deco(ok), number=N_OK) for name, deco in sync.items()}
    sections.append(table("Sync success path", rows, baseline=HAND))

    rows = {name: ns_per_call(deco(fail_once()), number=N_FAIL) for name, deco in sync.items()}
    sections.append(table("Sync fail once, then succeed (zero wait)", rows, baseline=HAND))

    asyn = decorators() | {HAND: ahand_loop}
    rows = {"bare await": ns_per_acall(aok, number=N_OK)}
    rows |= {name: ns_per_acall(deco(aok), number=N_OK) for name, deco in asyn.items()}
    sections.append(table("Async success path (asyncio)", rows, baseline=HAND))

    rows = {name: ns_per_acall(deco(afail_once()), number=N_FAIL) for name, deco in asyn.items()}
    title = "Async fail once, then succeed (zero wait, asyncio)"
    sections.append(table(title, rows, baseline=HAND))
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(run())
