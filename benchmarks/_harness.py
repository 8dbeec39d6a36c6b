"""A tiny side-by-side timing harness shared by the benchmarks (stdlib only)."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable

import anyio


def ns_per_call(fn: Callable[[], object], *, number: int, repeat: int = 5) -> float:
    """Median over ``repeat`` runs of the time per call, in nanoseconds."""
    timings = []
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter_ns()
            for _ in range(number):
                fn()
            timings.append((time.perf_counter_ns() - start) / number)
    finally:
        gc.enable()
    return statistics.median(timings)


def ns_per_acall(fn: Callable[[], Awaitable[object]], *, number: int, repeat: int = 5) -> float:
    """``ns_per_call`` for a coroutine function, timed inside one asyncio event loop."""

    async def main() -> float:
        timings = []
        for _ in range(repeat):
            start = time.perf_counter_ns()
            for _ in range(number):
                await fn()
            timings.append((time.perf_counter_ns() - start) / number)
        return statistics.median(timings)

    return anyio.run(main)


def table(title: str, rows: dict[str, float], *, baseline: str, unit: str = "ns/call") -> str:
    """A Markdown table of timings with ratios against ``baseline``."""
    base = rows[baseline]
    width = max(len(name) for name in rows)
    lines = [
        f"### {title}",
        "",
        f"| {'implementation'.ljust(width)} | {unit:>10} | x {baseline} |",
        f"| {'-' * width} | {'-' * 10}: | {'-' * (len(baseline) + 2)}: |",
    ]
    for name, value in rows.items():
        lines.append(f"| {name.ljust(width)} | {value:10.0f} | {value / base:.2f} |")
    return "\n".join(lines)
