"""``backfill()``: collect every gap of a range, bounded-concurrently, resumably.

Each worker task loops: claim a partition (a lease in the ledger), fetch its
rows (through the retry/breaker policies), then write them and mark the
partition succeeded in ONE unit of work. Identical data is not rewritten;
changed data is a restatement. A crash loses at most the partitions in
flight, whose leases expire; running it again picks up the rest.
"""

from __future__ import annotations

import inspect
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import anyio
import anyio.to_thread
import attrs

from resilient_pipeline._core import Event, describe_error, emit, resolve_clock, run_in_event_loop
from resilient_pipeline.exceptions import (
    BackfillError,
    ConfigurationError,
    MissingDependencyError,
    TransientStoreError,
)
from resilient_pipeline.retry import RetryPolicy
from resilient_pipeline.storage import Transaction, unit_of_work

from . import _sql as q
from ._ledger import Claimed, Outcome, Partition, PartitionLedger, _periods

__all__ = ["BackfillFinished", "BackfillReport", "PartitionCollected", "abackfill", "backfill"]

Rows: TypeAlias = Sequence[Mapping[str, Any]]
Fetch: TypeAlias = "Callable[[Partition], Rows] | Callable[[Partition], Awaitable[Rows]]"
Write: TypeAlias = Callable[[Transaction, Partition, Rows], object]
Policy: TypeAlias = Callable[[Callable[..., Any]], Callable[..., Any]]

DEFAULT_FETCH_RETRY = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=60.0)
"""Fetches are retried 3 times by default; pass ``policies=`` to change (or add a breaker)."""

# SQLITE_BUSY, a serialization failure, a dropped connection: the write is idempotent.
_WRITE_RETRY = RetryPolicy(max_attempts=5, base_delay=0.2, retry_on=TransientStoreError)


@attrs.frozen(kw_only=True)
class PartitionCollected(Event):
    """A partition was collected and committed with its ledger row."""

    logger_name = "resilient_pipeline.ledger"
    level = logging.INFO
    template = "{source}: {partition} {outcome} ({rows} rows, {duration:.2f} s)"

    partition: str
    outcome: str
    rows: int
    duration: float


@attrs.frozen(kw_only=True)
class BackfillFinished(Event):
    """A backfill run ended."""

    logger_name = "resilient_pipeline.ledger"
    level = logging.INFO
    template = (
        "{source}: backfill {run_id} done in {duration:.1f} s: {succeeded} collected "
        "({restated} restated, {unchanged} unchanged), {failed} failed"
    )

    run_id: str
    succeeded: int
    unchanged: int
    restated: int
    failed: int
    duration: float


@attrs.frozen(kw_only=True)
class BackfillReport:
    """What one backfill run did.

    Attributes:
        collected: Partitions committed in this run, with their outcome
            (``"new"``, ``"unchanged"`` or ``"restated"``).
        failed: Partitions that failed in this run, with the last error.
    """

    run_id: str
    collected: tuple[tuple[Partition, Outcome], ...]
    failed: tuple[tuple[Partition, str], ...]
    duration: float

    def count(self, outcome: Outcome) -> int:
        """How many partitions had ``outcome``."""
        return sum(1 for _, o in self.collected if o == outcome)

    def raise_for_failures(self) -> None:
        """Raise :class:`BackfillError` if any partition failed."""
        if self.failed:
            raise BackfillError(
                f"{len(self.failed)} partition(s) failed in backfill {self.run_id}",
                failed=[p.as_tuple() for p, _ in self.failed],
                errors=[e for _, e in self.failed],
            )


def _commit(
    ledger: PartitionLedger, claimed: Claimed, rows: Rows, write: Write, run_id: str, t0: float
) -> Outcome:
    clock = resolve_clock(ledger.clock)
    fingerprint = q.fingerprint(rows)
    partition = claimed.partition
    with unit_of_work(ledger.store, name=f"collect {'/'.join(partition.as_tuple())}") as tx:
        # Identical data: nothing to write, only the ledger row (a true no-op for the data).
        if claimed.fingerprint != fingerprint:
            write(tx, partition, rows)
        return ledger.succeed_claimed(
            tx,
            claimed,
            rows=rows,
            fingerprint=fingerprint,
            duration=clock.monotonic() - t0,
            run_id=run_id,
        )


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise (events still flow)."""

    def __init__(self, enabled: bool | None, total: int, label: str) -> None:
        self._bar: Any = None
        if enabled is False or (enabled is None and not sys.stderr.isatty()):
            return
        try:
            from rich.progress import Progress
        except ImportError as exc:
            if enabled:
                raise MissingDependencyError(
                    package="rich", extra="progress", feature="backfill progress bars"
                ) from exc
            return
        self._bar = Progress(transient=False)
        self._task = self._bar.add_task(label, total=total)
        self._bar.start()

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


async def abackfill(
    ledger: PartitionLedger,
    *,
    source: str,
    keys: Iterable[object],
    start: object = None,
    end: object = None,
    periods: Iterable[object] | None = None,
    fetch: Fetch,
    write: Write,
    concurrency: int = 4,
    claim_batch: int = 20,
    policies: Sequence[Policy] = (DEFAULT_FETCH_RETRY,),
    progress: bool | None = None,
    run_id: str | None = None,
) -> BackfillReport:
    """Collect every gap of ``source`` x ``keys`` x [start, end] with ``concurrency`` workers.

    Args:
        ledger: The partition ledger (its store receives the data too).
        source: The source name, e.g. ``"meta_ads"``.
        keys: The expected keys (e.g. the active clients).
        start: First period (a date) ...
        end: ... and last period, both included; or give ``periods``.
        periods: The expected periods themselves (months, hours, ...).
        fetch: ``fetch(partition) -> rows`` (sync or async); wrapped in ``policies``.
        write: ``write(tx, partition, rows)``: write the rows in the unit of
            work ``tx`` (e.g. ``idempotent_upsert``); skipped when the rows
            are identical to what the ledger last recorded.
        concurrency: Partitions in flight at once (worker tasks).
        claim_batch: Partitions a worker leases per ledger transaction (fewer
            commits); the ledger's ``lease`` must cover a batch's worst duration.
        policies: Decorators applied to ``fetch``, outermost first (retry, breaker).
        progress: Show a rich progress bar (``None``: when stderr is a terminal
            and the ``progress`` extra is installed).
        run_id: This run's id in the ledger (default: a random one).

    Several processes (or machines) may run the same backfill against one
    PostgreSQL database: leases make each partition run once.

    Examples:
        >>> import datetime as dt
        >>> from resilient_pipeline import SQLiteStore, PartitionLedger
        >>> ledger = PartitionLedger(SQLiteStore(":memory:"))
        >>> written = []
        >>> report = backfill(ledger, source="meta_ads", keys=[1, 2],
        ...                   start=dt.date(2026, 11, 27), end=dt.date(2026, 11, 28),
        ...                   fetch=lambda p: [{"key": p.key, "day": p.period, "spend": 1.0}],
        ...                   write=lambda tx, p, rows: written.extend(rows), progress=False)
        >>> report.count("new"), len(written), ledger.gaps("meta_ads", [1, 2],
        ...     dt.date(2026, 11, 27), dt.date(2026, 11, 28))
        (4, 4, [])
    """
    for option, value in (("concurrency", concurrency), ("claim_batch", claim_batch)):
        if type(value) is not int or value < 1:
            raise ConfigurationError.for_option(option, value, "must be an int >= 1")
    run_id = run_id or uuid.uuid4().hex[:12]
    clock = resolve_clock(ledger.clock)
    started = clock.monotonic()
    wrapped: Callable[..., Any] = fetch
    for policy in reversed(policies):
        wrapped = policy(wrapped)
    is_async = inspect.iscoroutinefunction(fetch)
    # Every ledger write may meet SQLITE_BUSY or a serialization failure under load.
    commit = _WRITE_RETRY(_commit)
    claim_many = _WRITE_RETRY(ledger.claim_many)
    record_failure = _WRITE_RETRY(ledger.fail)
    plan = _WRITE_RETRY(ledger.plan)
    # Exactly these partitions, and only these: other keys or periods of the
    # source in the same range (a churned client, a month in between) are not ours.
    key_list = list(dict.fromkeys(str(k) for k in keys))  # read once: keys may be an iterator
    period_list = _periods(start, end, periods)
    lo, hi = (period_list[0], period_list[-1]) if period_list else ("", "")

    await anyio.to_thread.run_sync(lambda: plan(source, key_list, periods=period_list))
    wanted_keys, wanted_periods = set(key_list), set(period_list)
    todo = await anyio.to_thread.run_sync(
        lambda: sum(
            r.status in ("pending", "failed", "running")
            and r.partition.key in wanted_keys
            and r.partition.period in wanted_periods
            for r in ledger.records(source, lo, hi)
        )
    )
    collected: list[tuple[Partition, Outcome]] = []
    failed: list[tuple[Partition, str]] = []
    bar = _Progress(progress, todo, f"backfill {source}")

    def fetch_and_commit(claimed: Claimed, t0: float) -> tuple[Outcome, int]:
        rows = list(wrapped(claimed.partition))
        return commit(ledger, claimed, rows, write, run_id, t0), len(rows)

    async def collect(claimed: Claimed) -> None:
        partition = claimed.partition
        t0 = clock.monotonic()
        try:
            if is_async:
                rows = list(await wrapped(partition))
                outcome = await anyio.to_thread.run_sync(
                    lambda: commit(ledger, claimed, rows, write, run_id, t0)
                )
                count = len(rows)
            else:  # one thread hop for fetch + write
                outcome, count = await anyio.to_thread.run_sync(fetch_and_commit, claimed, t0)
        except Exception as exc:
            error = describe_error(exc)
            failed.append((partition, error))
            elapsed = clock.monotonic() - t0
            await anyio.to_thread.run_sync(
                lambda: record_failure(partition, error, duration=elapsed, run_id=run_id)
            )
            return
        collected.append((partition, outcome))
        emit(
            PartitionCollected(
                source=ledger.table,
                partition="/".join(partition.as_tuple()),
                outcome=outcome,
                rows=count,
                duration=clock.monotonic() - t0,
            ),
            ledger.on_event,
        )

    async def worker() -> None:
        while True:
            batch = await anyio.to_thread.run_sync(
                lambda: claim_many(
                    source,
                    lo,
                    hi,
                    run_id=run_id,
                    limit=claim_batch,
                    keys=key_list,
                    periods=period_list,
                )
            )
            if not batch:
                return
            for claimed in batch:
                await collect(claimed)
                bar.advance()

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
    finally:
        bar.stop()
    report = BackfillReport(
        run_id=run_id,
        collected=tuple(collected),
        failed=tuple(failed),
        duration=clock.monotonic() - started,
    )
    emit(
        BackfillFinished(
            source=ledger.table,
            run_id=run_id,
            succeeded=len(collected),
            unchanged=report.count("unchanged"),
            restated=report.count("restated"),
            failed=len(failed),
            duration=report.duration,
        ),
        ledger.on_event,
    )
    return report


backfill = run_in_event_loop(
    abackfill,
    name="backfill",
    doc=""":func:`abackfill` from sync code (runs its own event loop).

    Takes exactly the arguments of :func:`abackfill`; see there for an example.
    """,
)
