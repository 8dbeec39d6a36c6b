"""retry_with_backoff beside a hand-written loop, tenacity, backoff and stamina.

Run:  .venv/bin/python benchmarks/bench_retry.py [--quick]

Prints ns/call and ratios, in one process, for:
* the success path of a trivial function (the cost every healthy call pays);
* fail-once-then-succeed with zero waits (the cost of one retry itself);
* the async equivalents.
Every retrying implementation is configured alike: 3 attempts, retry on any
Exception, no waiting. Logging is left at each library's default (ours and
stamina's log a retry through stdlib logging; with no handler configured).

Every table is the median of interleaved rounds (every contender in every
round, the order rotating). Goals (``goals()``, collected by ``run_all.py``):
the success path costs at most 2x the hand-written loop, and fail-once is
cheaper than every peer (ours / the round's fastest peer <= 1), sync and async.
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
from _harness import (  # noqa: E402
    Goal,
    interleaved,
    interleaved_async,
    medians,
    ratio_goal,
    table,
    verdicts,
)

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


OURS = "resilient_pipeline"
PEERS = ("tenacity", "backoff", "stamina")


def samples(quick: bool) -> dict[str, dict[str, list[float]]]:
    """Interleaved ns/call of every contender, per scenario."""
    n_ok, n_fail, rounds = (20_000, 2_000, 5) if quick else (N_OK, N_FAIL, 7)
    sync = decorators()
    asyn = decorators() | {HAND: ahand_loop}
    return {
        "sync success": interleaved(
            {"bare call": ok} | {name: deco(ok) for name, deco in sync.items()},
            number=n_ok,
            rounds=rounds,
        ),
        "sync fail once": interleaved(
            {name: deco(fail_once()) for name, deco in sync.items()}, number=n_fail, rounds=rounds
        ),
        "async success": interleaved_async(
            {"bare await": aok} | {name: deco(aok) for name, deco in asyn.items()},
            number=n_ok // 2,
            rounds=rounds,
        ),
        "async fail once": interleaved_async(
            {name: deco(afail_once()) for name, deco in asyn.items()},
            number=n_fail,
            rounds=rounds,
        ),
    }


def goals_from(measured: dict[str, dict[str, list[float]]]) -> list[Goal]:
    goals = []
    for mode in ("sync", "async (asyncio)"):
        key = mode.split()[0]
        goals.append(
            ratio_goal(
                f"retry, {mode} success path",
                "<= 2x a hand-written loop",
                measured[f"{key} success"],
                ours=OURS,
                peer=HAND,
                limit=2.0,
            )
        )
        failing = measured[f"{key} fail once"]
        fastest = [min(round_) for round_ in zip(*(failing[p] for p in PEERS), strict=True)]
        goals.append(
            ratio_goal(
                f"retry, {mode} fail once then succeed",
                "cheaper than every peer: <= 1x the fastest peer",
                failing | {"fastest peer": fastest},
                ours=OURS,
                peer="fastest peer",
                limit=1.0,
            )
        )
    return goals


def goals(quick: bool) -> list[Goal]:
    """The retry goals (see the module docstring)."""
    return goals_from(samples(quick))


def run() -> str:
    measured = samples(QUICK)
    titles = {
        "sync success": "Sync success path",
        "sync fail once": "Sync fail once, then succeed (zero wait)",
        "async success": "Async success path (asyncio)",
        "async fail once": "Async fail once, then succeed (zero wait, asyncio)",
    }
    sections = [
        table(title, medians(measured[key]), baseline=HAND) for key, title in titles.items()
    ]
    sections.append(verdicts(goals_from(measured)))
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(run())
