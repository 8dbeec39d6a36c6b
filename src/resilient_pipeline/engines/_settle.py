"""Settling a run: what a dead worker left leased in this job's share is waited out and taken over.

A backfill pass leaves a partition another worker holds, and rightly: a
partition is leased by one worker at a time. But a worker that died (SIGKILL,
out of memory, a lost node) holds its partitions until their lease ends, so
the pass that replaces it (Celery's redelivery, Dask's recomputation) or that
runs beside it finds them leased, leaves them, and would report the run done
while they are gaps. So after the pass :func:`run_job
<resilient_pipeline.engines.run_job>` looks at the leases of the job's share
(its keys x periods): a lease that is renewed belongs to a live worker and is
left to it; one that is not is waited out, on the ledger's clock, and the
partition taken over by another pass, a bounded number of times.

The decision is a pure core (:func:`next_step`, :func:`settling`, a generator
that yields what to do next and is sent what happened, as httpx's
``auth_flow``); :func:`settle` and :func:`asettle` drive it, doing the I/O and
the sleeping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import anyio.to_thread
import attrs

from resilient_pipeline._core import Clock, describe_error, resolve_clock
from resilient_pipeline.ledger import BackfillReport

if TYPE_CHECKING:
    from ._job import Job

__all__ = [
    "POLL",
    "TAKEOVERS",
    "Leases",
    "Look",
    "Pass",
    "Reply",
    "Step",
    "asettle",
    "joined",
    "leases",
    "next_step",
    "settle",
    "settling",
]

_R = TypeVar("_R", bound="BackfillReport | Leases")

TAKEOVERS = 3
"""Passes after the first, each after a lease that ended unrenewed; then the run reports."""
POLL = 0.5
"""Seconds between looks at most: a live worker renews every third of a lease."""


@attrs.frozen
class Pass:
    """Run one backfill pass; send back its :class:`~resilient_pipeline.ledger.BackfillReport`."""


@attrs.frozen
class Look:
    """Wait ``after`` seconds, then send back the :class:`Leases` of the share."""

    after: float = 0.0


@attrs.frozen(kw_only=True)
class Leases:
    """The share's partitions some worker holds now: ``{partition: lease end}``, and the time.

    Attributes:
        held: Lease ends (the ledger's clock) of the share's ``running`` partitions.
        now: The ledger clock's ``time()`` when they were read.
        error: Why they could not be read (the ledger unreachable), if so.
    """

    held: Mapping[str, float] = attrs.field(factory=dict)
    now: float = 0.0
    error: str | None = None


Step: TypeAlias = "Pass | Look"
Reply: TypeAlias = "BackfillReport | Leases"


def next_step(
    watched: Mapping[str, float], held: Mapping[str, float], now: float, poll: float
) -> float | None:
    """The wait's pure core: ``0.0`` run again (a lease ended), ``None`` done, or seconds to wait.

    ``watched``: the leases (partition: end) seen when the pass had nothing
    left to claim; ``held``: the leases now. A watched lease whose end moved
    was renewed (its worker lives); one gone was released (succeeded, failed).
    A lease has ended once the clock is past its end (the ledger claims it then).

    Examples:
        >>> next_step({"a": 10.0}, {"a": 10.0}, now=9.0, poll=0.5)
        0.5
        >>> next_step({"a": 10.0}, {"a": 10.0}, now=10.0, poll=0.5)  # ends now: just after
        0.001
        >>> next_step({"a": 10.0}, {"a": 10.0}, now=10.001, poll=0.5)
        0.0
        >>> next_step({"a": 10.0}, {"a": 12.0}, now=11.0, poll=0.5) is None
        True
    """
    if any(end < now for end in held.values()):
        return 0.0
    unrenewed = [held[p] for p, end in watched.items() if p in held and held[p] <= end]
    if not unrenewed:
        return None
    return max(min(poll, min(unrenewed) - now), 0.001)


def settling(*, lease: float, takeovers: int = TAKEOVERS) -> Generator[Step, Reply, BackfillReport]:
    """The whole settling of a run, deciding only: yields a :class:`Pass` or a :class:`Look`.

    After each pass (unless it stopped early) it looks at the leases: none
    held, or every one renewed or released, and the run is done; one that
    ends unrenewed, and it asks for another pass, at most ``takeovers`` times.
    A look that fails ends the run with its error in the report. Returns the
    passes' reports joined.

    Examples:
        >>> from resilient_pipeline.ledger import BackfillReport
        >>> flow = settling(lease=3.0)
        >>> next(flow), flow.send(BackfillReport(run_id="r"))
        (Pass(), Look(after=0.0))
        >>> flow.send(Leases(held={"s/1/d": 100.0}, now=99.0))  # nobody renews it ...
        Look(after=0.5)
        >>> flow.send(Leases(held={"s/1/d": 100.0}, now=100.5))  # ... it ended: take it over
        Pass()
    """
    poll = min(lease / 6, POLL)
    report = _expect(BackfillReport, (yield Pass()))
    for _ in range(takeovers):
        if report.errors:  # the pass stopped early (the ledger unreachable): report it as is
            break
        ended = yield from _ended(poll)
        if isinstance(ended, str):
            return attrs.evolve(report, errors=(*report.errors, ended))
        if not ended:
            break
        report = joined(report, _expect(BackfillReport, (yield Pass())))
    return report


def _ended(poll: float) -> Generator[Step, Reply, bool | str]:
    """Look until a lease seen first ends unrenewed (True) or none is left to wait for (False);
    the error text if a look failed."""
    seen = _expect(Leases, (yield Look()))
    watched = seen.held  # empty when the look failed: nothing to wait for
    step = next_step(watched, watched, seen.now, poll)
    while seen.error is None and step:
        seen = _expect(Leases, (yield Look(step)))
        step = next_step(watched, seen.held, seen.now, poll)
    return seen.error or step == 0.0


def _expect(kind: type[_R], reply: Reply) -> _R:
    if not isinstance(reply, kind):
        raise TypeError(f"sent {type(reply).__name__}, expected {kind.__name__}")
    return reply


def joined(first: BackfillReport, then: BackfillReport) -> BackfillReport:
    """Two passes of one run as one report.

    Examples:
        >>> from resilient_pipeline.ledger import BackfillReport, Partition
        >>> p, q = Partition("s", 1, "2026-11-01"), Partition("s", 2, "2026-11-01")
        >>> both = joined(BackfillReport(run_id="r", collected=((p, "new"),), duration=1.0),
        ...               BackfillReport(run_id="r", collected=((q, "new"),), recovered=(q,)))
        >>> both.counts()["new"], both.counts()["recovered"], both.duration
        (2, 1, 1.0)
    """
    return attrs.evolve(
        first,
        collected=first.collected + then.collected,
        failures=first.failures + then.failures,
        restated=first.restated + then.restated,
        recovered=first.recovered + then.recovered,
        lost=first.lost + then.lost,
        errors=tuple(dict.fromkeys(first.errors + then.errors)),
        duration=first.duration + then.duration,
    )


def leases(job: Job, keys: Sequence[object] | None, clock: Clock) -> Leases:
    """The leases held now on the share's partitions (``keys`` or the job's, x its periods)."""
    try:
        gaps = job.ledger.gaps(
            job.source,
            job.keys if keys is None else keys,
            job.start,
            job.end,
            periods=job.periods,
        )
    except Exception as exc:  # the pass's collections stand; the report says what is unsure
        error = f"reading the leases of the run's partitions failed: {describe_error(exc)}"
        return Leases(now=clock.time(), error=error)
    held = {str(g.partition): float(g.lease_expires or 0.0) for g in gaps if g.status == "running"}
    return Leases(held=held, now=clock.time())


def settle(
    job: Job, run: Callable[[], BackfillReport], *, keys: Sequence[object] | None
) -> BackfillReport:
    """Run ``run()`` (one pass) and settle the run (sync driver of :func:`settling`)."""
    clock = resolve_clock(job.ledger.clock)
    started = clock.monotonic()
    flow = settling(lease=job.ledger.lease)
    try:
        step = next(flow)
        while True:
            if isinstance(step, Look):
                if step.after:
                    clock.sleep(step.after)
                step = flow.send(leases(job, keys, clock))
            else:
                step = flow.send(run())
    except StopIteration as done:
        report: BackfillReport = done.value
    return attrs.evolve(report, duration=clock.monotonic() - started)


async def asettle(
    job: Job, run: Callable[[], Awaitable[BackfillReport]], *, keys: Sequence[object] | None
) -> BackfillReport:
    """:func:`settle` in a running event loop: the looks in a worker thread."""
    clock = resolve_clock(job.ledger.clock)
    started = clock.monotonic()
    flow = settling(lease=job.ledger.lease)
    try:
        step = next(flow)
        while True:
            if isinstance(step, Look):
                if step.after:
                    await clock.asleep(step.after)
                step = flow.send(await anyio.to_thread.run_sync(leases, job, keys, clock))
            else:
                step = flow.send(await run())
    except StopIteration as done:
        report: BackfillReport = done.value
    return attrs.evolve(report, duration=clock.monotonic() - started)
