"""A tiny side-by-side timing harness shared by the benchmarks (stdlib and anyio only).

Two parts:

* timing: :func:`interleaved` runs ours and the peers' in the same rounds
  (rotating the order each round, so a load spike on a shared machine hits
  every contender alike) and keeps every round's figure;
* the protocol that ``benchmarks/run_all.py`` collects: every ``bench_*.py``
  module exposes ``goals(quick: bool) -> list[Goal]``, one :class:`Goal` per
  goal of the issue it answers, each a *ratio* of ours to a peer measured in
  the same rounds (median of the per-round ratios, with their spread). Its
  ``__main__`` still prints its full tables.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass

import anyio

__all__ = [
    "Goal",
    "interleaved",
    "interleaved_async",
    "medians",
    "ns_per_acall",
    "ns_per_call",
    "ratio_goal",
    "table",
    "verdicts",
]


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


# ------------------------------------------------------------ interleaved rounds
def _loop(fn: Callable[[], object], number: int, errors: tuple[type[BaseException], ...]) -> float:
    start = time.perf_counter_ns()
    if errors:
        for _ in range(number):
            try:  # noqa: SIM105 -- suppress() would add its own cost to the timed loop
                fn()
            except errors:
                pass
    else:
        for _ in range(number):
            fn()
    return (time.perf_counter_ns() - start) / number


async def _aloop(
    fn: Callable[[], Awaitable[object]], number: int, errors: tuple[type[BaseException], ...]
) -> float:
    start = time.perf_counter_ns()
    if errors:
        for _ in range(number):
            try:  # noqa: SIM105
                await fn()
            except errors:
                pass
    else:
        for _ in range(number):
            await fn()
    return (time.perf_counter_ns() - start) / number


def _order(names: Sequence[str], round_: int) -> list[str]:
    shift = round_ % len(names)
    return [*names[shift:], *names[:shift]]


def interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    number: int,
    rounds: int = 7,
    errors: tuple[type[BaseException], ...] = (),
    gc_off: bool = True,
) -> dict[str, list[float]]:
    """ns/call of every function in every round; each round runs all of them, order rotating.

    One uncounted warm-up round comes first. ``errors`` are caught in the
    timed loop (for rejection paths). ``gc_off=False`` keeps the garbage
    collector running, so a path that leaves reference cycles pays for them.
    """
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    if gc_off:
        gc.disable()
    try:
        for name in names:
            _loop(fns[name], max(1, number // 10), errors)
        for round_ in range(rounds):
            for name in _order(names, round_):
                samples[name].append(_loop(fns[name], number, errors))
    finally:
        if gc_off:
            gc.enable()
    return samples


def interleaved_async(
    fns: dict[str, Callable[[], Awaitable[object]]],
    *,
    number: int,
    rounds: int = 7,
    errors: tuple[type[BaseException], ...] = (),
    gc_off: bool = True,
    backend: str = "asyncio",
) -> dict[str, list[float]]:
    """:func:`interleaved` for coroutine functions, every round in one event loop."""
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}

    async def main() -> None:
        for name in names:
            await _aloop(fns[name], max(1, number // 10), errors)
        for round_ in range(rounds):
            for name in _order(names, round_):
                samples[name].append(await _aloop(fns[name], number, errors))

    if gc_off:
        gc.disable()
    try:
        anyio.run(main, backend=backend)
    finally:
        if gc_off:
            gc.enable()
    return samples


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    """The median ns/call of each contender."""
    return {name: statistics.median(values) for name, values in samples.items()}


# ------------------------------------------------------------------ the protocol
@dataclass(frozen=True)
class Goal:
    """One goal, measured: the ratio of ours to a peer, median of interleaved rounds.

    Attributes:
        capability: What is measured ("Bulkhead, sync success path").
        goal: The goal as the issue states it ("<= 2x a bare BoundedSemaphore").
        ratio: Median over the rounds of (ours / peer) for lower-is-better
            goals, (ours / peer) of a throughput for higher-is-better ones;
            ``None`` when it could not be measured (``note`` says why).
        low: The smallest per-round ratio.
        high: The largest per-round ratio.
        limit: The ratio the goal allows (at most, or at least when
            ``higher_is_better``).
        higher_is_better: ``True`` for "at least" goals.
        rounds: How many interleaved rounds the ratio is the median of.
        note: Anything the reader needs (absolute figures, why not measured).
    """

    capability: str
    goal: str
    ratio: float | None
    low: float | None
    high: float | None
    limit: float
    higher_is_better: bool = False
    rounds: int = 0
    note: str = ""

    @property
    def met(self) -> bool | None:
        """``True`` or ``False``; ``None`` when not measured."""
        if self.ratio is None:
            return None
        return self.ratio >= self.limit if self.higher_is_better else self.ratio <= self.limit

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def ratio_goal(
    capability: str,
    goal: str,
    samples: dict[str, list[float]],
    *,
    ours: str,
    peer: str,
    limit: float,
    higher_is_better: bool = False,
    note: str = "",
) -> Goal:
    """A :class:`Goal` from interleaved samples: per-round ``ours / peer``, median and spread.

    The samples are costs (ns/call, seconds); for ``higher_is_better`` goals
    the ratio is inverted (``peer / ours``: how many times faster we are).
    """
    pairs = zip(samples[ours], samples[peer], strict=True)
    ratios = sorted((p / o) if higher_is_better else (o / p) for o, p in pairs)
    return Goal(
        capability=capability,
        goal=goal,
        ratio=statistics.median(ratios),
        low=ratios[0],
        high=ratios[-1],
        limit=limit,
        higher_is_better=higher_is_better,
        rounds=len(ratios),
        note=note,
    )


def verdicts(goals: Sequence[Goal]) -> str:
    """The goals as plain lines, for a module's ``__main__``."""
    lines = []
    for g in goals:
        if g.ratio is None:
            lines.append(f"goal {g.capability}: {g.goal}: not measured ({g.note})")
            continue
        state = "met" if g.met else "NOT met"
        lines.append(
            f"goal {g.capability}: {g.goal}: {g.ratio:.2f}x "
            f"(spread {g.low:.2f}-{g.high:.2f}, {g.rounds} rounds) {state}"
        )
    return "\n".join(lines)


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
