"""``backfill()``: collect every gap of a range, bounded-concurrently, resumably.

Each worker loops: claim ONE partition (a short lease in the ledger,
renewed by a heartbeat while the work runs), fetch it through the
retry/breaker policies, then write it, mark it succeeded and claim the
worker's next partition in ONE unit of work (one commit per partition; the
next claim holds only if the data commits). Identical data is not rewritten;
changed data is a restatement. A crash strands at most the partitions in
flight (one per worker), claimable again one lease later. With a sync fetch a
worker's whole loop runs in one thread (no thread hop per partition).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import logging
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeAlias, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
import attrs

from resilient_pipeline._core import (
    OBSERVED,
    Event,
    bind_context,
    describe_error,
    emit,
    number,
    resolve_clock,
    run_in_event_loop,
)
from resilient_pipeline.exceptions import (
    ConfigurationError,
    InvalidPartitionError,
    LeaseLostError,
    MissingDependencyError,
    PartitionContractError,
    RejectedError,
    TransientStoreError,
)
from resilient_pipeline.retry import RetryPolicy
from resilient_pipeline.storage import Transaction, unit_of_work
from resilient_pipeline.validation import (
    CheckedUnit,
    PartitionContract,
    QuarantineSink,
    quarantine_unit,
    unit_of_record,
)

from ._cause import Trace, root_cause
from ._fingerprint import digest, fingerprint_unit, previous
from ._ledger import Outcome, PartitionLedger, periods_of
from ._ledger import _Success as Success
from ._records import Claimed, Partition
from ._report import BackfillReport, PartitionFailure, RestatedPartition
from ._sql import key_text, source_text
from ._states import after_failure

__all__ = ["BackfillFinished", "PartitionCollected", "abackfill", "backfill"]

Rows: TypeAlias = Sequence[Mapping[str, Any]]
Fetch: TypeAlias = "Callable[[Partition], Any] | Callable[[Partition], Awaitable[Any]]"
Write: TypeAlias = Callable[[Transaction, Partition, Any], object]
Policy: TypeAlias = Callable[[Callable[..., Any]], Callable[..., Any]]
Measure: TypeAlias = "str | Callable[[Any], float]"
T = TypeVar("T")

DEFAULT_FETCH_RETRY = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=60.0)
"""Fetches are retried 3 times by default; pass ``policies=`` to change (or add a breaker)."""

# SQLITE_BUSY, a serialization failure, a dropped connection: the write is idempotent.
_WRITE_RETRY = RetryPolicy(max_attempts=5, base_delay=0.2, retry_on=TransientStoreError)


def _attempt(unit: Callable[[], T]) -> T:
    return unit()


# Decorated once: wrapping each partition's commit anew cost more than its UPDATE.
_retry_commit = _WRITE_RETRY(_attempt)

_log = logging.getLogger("resilient_pipeline.ledger")


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
    """A backfill run ended.

    Attributes:
        run_id: The run's id.
        succeeded: Partitions committed (new, unchanged or restated).
        unchanged: ... of which identical to what was committed before.
        restated: ... of which upstream had changed.
        failed: Partitions that failed and are still gaps (retryable or exhausted).
        duration: Seconds.
        exhausted: Failed partitions now out of attempts.
        recovered: Partitions taken over from a crashed worker's expired lease.
        lost: Partitions another worker took over while this run held them.
        restatement: ``"meta_ads restated 12 partitions, spend +10.4%"``, or ``""``.
    """

    logger_name = "resilient_pipeline.ledger"
    level = logging.INFO
    template = (
        "{source}: backfill {run_id} done in {duration:.1f} s: {succeeded} collected "
        "({restated} restated, {unchanged} unchanged), {failed} failed ({exhausted} exhausted), "
        "{recovered} recovered from crashed runs, {lost} lost to other workers"
    )

    run_id: str
    succeeded: int
    unchanged: int
    restated: int
    failed: int
    duration: float
    exhausted: int = 0
    recovered: int = 0
    lost: int = 0
    restatement: str = ""


# ------------------------------------------------------------------ options
def _recheck_periods(period_list: list[str], lookback: object) -> list[str] | None:
    """The periods of the range whose succeeded partitions a look-back collects again."""
    if lookback is None:
        return None
    if isinstance(lookback, dt.timedelta):
        if lookback <= dt.timedelta(0):
            raise ConfigurationError.for_option("lookback", lookback, "must be positive")
        try:
            dates = [dt.date.fromisoformat(p) for p in period_list]
        except ValueError:
            raise ConfigurationError.for_option(
                "lookback",
                lookback,
                "a timedelta needs daily periods (YYYY-MM-DD); give a number of periods",
            ) from None
        if not dates:
            return []
        last = max(dates)
        return [p for p, d in zip(period_list, dates, strict=True) if d > last - lookback]
    if type(lookback) is not int or lookback < 0:
        raise ConfigurationError.for_option(
            "lookback", lookback, "must be a number of periods (int >= 0), a timedelta or None"
        )
    return period_list[len(period_list) - lookback :] if lookback else []


def _rows_of(payload: Any) -> Iterable[Any]:
    if isinstance(payload, CheckedUnit):
        return (row for rows in payload.collections.values() for row in rows)
    return payload  # type: ignore[no-any-return]


def _measure_of(measure: Measure | None, payload: Any) -> float | None:
    """The partition's measure: a field summed over every row, or your function's value."""
    if measure is None:
        return None
    if callable(measure):
        value: object = measure(payload)
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ConfigurationError.for_option(
                "measure", measure, f"returned a {type(value).__name__}, not a number"
            )
        return float(value)
    total = 0.0
    for index, row in enumerate(_rows_of(payload)):
        item: object = row.get(measure) if isinstance(row, Mapping) else getattr(row, measure, None)
        if item is None:
            continue  # a row without the measure (another collection's, a subtotal)
        if isinstance(item, bool) or not isinstance(item, (int, float, Decimal)):
            raise ConfigurationError.for_option(
                "measure", measure, f"row {index} holds a {type(item).__name__}, not a number"
            )
        total += float(item)
    return total


def _check_options(
    ledger: PartitionLedger,
    concurrency: object,
    measure: object,
    contract: object,
    quarantine: object,
    heartbeat: object,
) -> float:
    if not isinstance(ledger, PartitionLedger):
        raise ConfigurationError.for_option("ledger", ledger, "must be a PartitionLedger")
    if type(concurrency) is not int or concurrency < 1:
        raise ConfigurationError.for_option("concurrency", concurrency, "must be an int >= 1")
    if measure is not None and not callable(measure) and not (isinstance(measure, str) and measure):
        raise ConfigurationError.for_option(
            "measure", measure, "must be a field name, a function of the rows, or None"
        )
    if contract is not None and not isinstance(contract, PartitionContract):
        raise ConfigurationError.for_option("contract", contract, "must be a PartitionContract")
    if quarantine is not None:
        if contract is None:
            raise ConfigurationError.for_option(
                "quarantine", quarantine, "quarantines units: give contract= too"
            )
        if not all(hasattr(quarantine, name) for name in ("put", "records", "discard")):
            raise ConfigurationError.for_option(
                "quarantine", quarantine, "must be a QuarantineSink"
            )
    if heartbeat is None:
        return ledger.lease / 3
    number(gt=0).check("heartbeat", heartbeat)
    if float(heartbeat) >= ledger.lease:  # type: ignore[arg-type]
        raise ConfigurationError.for_option(
            "heartbeat", heartbeat, f"must be shorter than the ledger's lease ({ledger.lease} s)"
        )
    return float(heartbeat)  # type: ignore[arg-type]


def _order(partition: Partition) -> tuple[str, str]:
    return (partition.period, partition.key)


class _Progress:
    """A rich progress bar on a terminal; nothing otherwise (events still flow)."""

    def __init__(self, enabled: bool | None) -> None:
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

    @property
    def shown(self) -> bool:
        """Whether there is a bar (only then is the work counted: a read of the whole range)."""
        return self._bar is not None

    def start(self, total: int, label: str) -> None:
        self._task = self._bar.add_task(label, total=total)
        self._bar.start()

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# ------------------------------------------------------------------ the run
@attrs.define(eq=False)
class _Run:
    """One backfill run's state: what is in flight, what happened."""

    ledger: PartitionLedger
    source: str
    run_id: str
    write: Write
    contract: PartitionContract | None
    sink: QuarantineSink | None
    measure: Measure | None
    collected: list[tuple[Partition, Outcome]] = attrs.Factory(list)
    failures: list[PartitionFailure] = attrs.Factory(list)
    restated: list[RestatedPartition] = attrs.Factory(list)
    recovered: list[Partition] = attrs.Factory(list)
    lost: list[Partition] = attrs.Factory(list)
    in_flight: set[Partition] = attrs.Factory(set)
    traces: dict[Partition, Trace] = attrs.Factory(dict)
    last_upstream: tuple[BaseException, float] | None = None
    quarantined: dict[str, list[str]] = attrs.Factory(dict)
    errors: list[str] = attrs.Factory(list)

    # -- the fetch, watched (the policies wrap these) ----------------------------
    def _accept(self, partition: Partition, answer: Any) -> Any:
        if self.contract is None:
            if isinstance(answer, (Mapping, str, bytes)) or not isinstance(answer, Iterable):
                raise ConfigurationError.for_option(
                    "fetch",
                    type(answer).__name__,
                    f"must return the rows of {partition} (an iterable of rows; "
                    "a unit of collections needs contract=)",
                )
            return list(answer)
        return self.contract.check(answer, unit_id=str(partition)).raise_for_verdict()

    def _failed(self, trace: Trace, error: BaseException) -> None:
        at = resolve_clock(self.ledger.clock).time()
        trace.failed(error, at)
        self.last_upstream = (error, at)

    def watched(self, fetch: Callable[[Partition], Any]) -> Callable[[Partition], Any]:
        def call(partition: Partition) -> Any:
            trace = self.traces[partition]
            trace.ran()
            try:
                payload = self._accept(partition, fetch(partition))
            except RejectedError:
                trace.rejected()
                raise
            except Exception as exc:
                self._failed(trace, exc)
                raise
            trace.succeeded()
            return payload

        return call

    def awatched(
        self, fetch: Callable[[Partition], Awaitable[Any]]
    ) -> Callable[[Partition], Awaitable[Any]]:
        async def call(partition: Partition) -> Any:
            trace = self.traces[partition]
            trace.ran()
            try:
                payload = self._accept(partition, await fetch(partition))
            except RejectedError:
                trace.rejected()
                raise
            except Exception as exc:
                self._failed(trace, exc)
                raise
            trace.succeeded()
            return payload

        return call

    # -- committing -----------------------------------------------------------------
    def commit(
        self,
        claimed: Claimed,
        payload: Any,
        t0: float,
        then: Callable[[Transaction, Success, bool], list[Claimed] | None] | None = None,
        give_back: Callable[[int], None] | None = None,
    ) -> tuple[Outcome, list[Claimed] | None]:
        """Write the payload and mark the partition succeeded, in one unit of work.

        ``then(tx, success)`` records the success and claims the worker's next
        partition in that same unit of work: one commit per partition instead
        of two (the claim holds only if the data commits), and on PostgreSQL
        one statement. ``then``'s last argument says whether nothing follows it
        in the unit of work (it may commit). Returns the outcome and what
        ``then`` claimed (``None``: no claim was tried to the end). When the
        unit of work fails after ``then`` claimed, those claims rolled back
        with it: ``give_back(n)`` returns them to the run's ``limit``.
        """
        ledger = self.ledger
        clock = resolve_clock(ledger.clock)
        partition = claimed.partition
        if isinstance(payload, CheckedUnit):
            fingerprint, count = fingerprint_unit(payload.collections), payload.row_count
        else:
            fingerprint, count = digest(payload), len(payload)
            before = previous(claimed.fingerprint, payload, fingerprint)
            if before != claimed.fingerprint:  # recorded before the v2 digest: same rows
                claimed = attrs.evolve(claimed, fingerprint=before)
        measure = _measure_of(self.measure, payload)
        look_up = False  # whether another worker may have quarantined this unit meanwhile

        def once() -> tuple[Outcome, list[Claimed] | None]:
            nonlocal look_up
            following: list[Claimed] | None = []
            try:
                with unit_of_work(ledger.store, name=f"collect {partition}") as tx:
                    look_up = self._may_be_quarantined(tx, claimed)
                    # Identical data: nothing to write, only the ledger row.
                    if claimed.fingerprint != fingerprint:
                        self.write(tx, partition, payload)
                    success = ledger._success_of(
                        claimed, count, fingerprint, clock.monotonic() - t0, self.run_id, measure
                    )
                    # Quarantine records of this unit go in this unit of work, after the
                    # success: then the success and claim must not commit it.
                    discard_here = look_up and self._sink_in_store()
                    if then is None:
                        ledger._record(tx, success)
                    else:
                        following = then(tx, success, not discard_here)
                    if discard_here:
                        # In the data's unit of work: the records go if and only if it commits.
                        self._discard_unit_records(partition, tx)
                        look_up = False
            except BaseException:
                if following and give_back is not None:  # rolled back: not claimed after all
                    give_back(len(following))
                raise
            return success.outcome, following

        outcome, following = _retry_commit(once)
        if outcome == "restated":
            self.restated.append(
                RestatedPartition(
                    partition=partition,
                    before_rows=claimed.row_count,
                    after_rows=count,
                    before_measure=claimed.measure,
                    after_measure=measure,
                )
            )
        # Not built when nobody would see it: no handler, and its log level off.
        if ledger.on_event or OBSERVED or _log.isEnabledFor(PartitionCollected.level):
            emit(
                PartitionCollected(
                    source=ledger.table,
                    partition=str(partition),
                    outcome=outcome,
                    rows=count,
                    duration=clock.monotonic() - t0,
                ),
                ledger.on_event,
            )
        if look_up:  # a sink elsewhere (a file, another database): once the data is in
            self._discard_unit_records(partition)
        self._resolve_quarantine(partition)
        return outcome, following

    # -- quarantine records of a unit collected whole ------------------------------------
    def _sink_in_store(self) -> bool:
        """Whether the sink is a table in the ledger's own store (it joins our unit of work)."""
        return self.sink is not None and getattr(self.sink, "store", None) is self.ledger.store

    def _may_be_quarantined(self, tx: Transaction, claimed: Claimed) -> bool:
        """Whether the unit may have quarantine records this run did not load at its start.

        A record is written only by a failure, which the ledger keeps until a
        success: a partition claimed as failed, exhausted or from a dead
        worker's lease may have one; a look-back re-check only if its row still
        holds an error (one indexed read). Records older than the run were
        loaded when it started. No sink: no look-up at all.
        """
        if self.sink is None:
            return False
        if claimed.recovered or claimed.status in ("failed", "exhausted", "running"):
            return True
        if claimed.status != "succeeded":
            return False
        current = self.ledger._current(tx, claimed.partition)
        return current is not None and current[7] is not None

    def _discard_unit_records(self, partition: Partition, tx: Transaction | None = None) -> None:
        """Discard every quarantine record of ``partition``'s unit, whoever wrote it.

        With ``tx`` the sink joins that unit of work (a savepoint): the discard
        commits with the data. A sink that cannot be read or written leaves
        the records (logged): the data is what matters, a stale record only waits.
        """
        sink, unit_id = self.sink, str(partition)
        if sink is None:
            return
        try:
            with contextlib.nullcontext() if tx is None else tx.savepoint():
                ids = [
                    record.id
                    for record in sink.records(source=partition.source)
                    if (unit := unit_of_record(record)) is not None and unit.unit_id == unit_id
                ]
                if ids:
                    sink.discard(ids)
        except Exception as exc:
            _log.warning(
                "%s: its quarantine records could not be discarded: %s",
                partition,
                describe_error(exc),
            )
            return
        self.quarantined.pop(unit_id, None)  # discarded above, if it was still there

    def _resolve_quarantine(self, partition: Partition) -> None:
        """Discard the unit's older quarantine records (collected whole, or set aside anew)."""
        ids = self.quarantined.pop(str(partition), None)
        if not ids or self.sink is None:
            return
        try:
            self.sink.discard(ids)
        except Exception as exc:  # the data is committed; a stale record only waits
            _log.warning(
                "%s: its out-of-date quarantine records %s stay: %s",
                partition,
                ids,
                describe_error(exc),
            )

    def _discard_own(self, partition: Partition, record_id: str) -> None:
        """Take back the record this worker set aside for a unit it no longer holds."""
        if self.quarantined.get(str(partition)) == [record_id]:
            del self.quarantined[str(partition)]
        try:
            if self.sink is not None:
                self.sink.discard([record_id])
        except Exception as exc:
            _log.warning("%s: record %s stays: %s", partition, record_id, describe_error(exc))

    def _quarantine(self, unit: object, partition: Partition) -> tuple[str | None, str]:
        if self.sink is None or not isinstance(unit, CheckedUnit):
            return None, ""
        try:
            record = quarantine_unit(
                self.sink,
                unit,
                source=partition.source,
                clock=self.ledger.clock,
                on_event=self.ledger.on_event,
            )
        except Exception as exc:
            return None, f" (the unit could not be quarantined: {describe_error(exc)})"
        # One record per unit: the newest answer replaces what an earlier run set aside.
        self._resolve_quarantine(partition)
        self.quarantined[str(partition)] = [record.id]
        return record.id, ""

    # -- failing --------------------------------------------------------------------
    def fail(self, claimed: Claimed, error: BaseException, trace: Trace, duration: float) -> None:
        """Record a failure's root cause (and quarantine an invalid or exhausted unit)."""
        ledger = self.ledger
        partition = claimed.partition
        cause = root_cause(
            error,
            trace,
            now=resolve_clock(ledger.clock).time(),
            run_last=self.last_upstream,
        )
        unit = error.unit if isinstance(error, PartitionContractError) else None
        quarantine_id, note = None, ""
        # Set aside before the ledger records the failure, which ends our lease: a
        # worker that claims the unit next and collects it whole then sees the record.
        predicted, _ = after_failure(
            claimed.status,
            claimed.attempts,
            counted=cause.counted,
            max_attempts=ledger.max_attempts,
        )
        if isinstance(error, InvalidPartitionError) or (  # wrong rows: the whole unit now
            predicted == "exhausted" and unit is not None  # incomplete, out of attempts
        ):
            quarantine_id, note = self._quarantine(unit, partition)
        try:
            status = _WRITE_RETRY(ledger.fail)(
                partition,
                cause.error + note,
                duration=duration,
                run_id=self.run_id,
                counted=cause.counted,
                error_class=cause.error_class,
                error_at=cause.at,
                replace_error=not cause.bare,
            )
        except LeaseLostError:
            self.lost.append(partition)
            if quarantine_id is not None:  # the unit is another worker's now: not our record
                self._discard_own(partition, quarantine_id)
            return
        except Exception as exc:  # the database: the lease expires, a later run takes it over
            self.failures.append(
                PartitionFailure(
                    partition=partition,
                    status="running",
                    error=f"{cause.error} (not recorded in the ledger: {describe_error(exc)})",
                    error_class=cause.error_class,
                    attempts=-1,
                    counted=cause.counted,
                    quarantine_id=quarantine_id,
                )
            )
            return
        if status == "exhausted" and quarantine_id is None and unit is not None:
            quarantine_id, note = self._quarantine(unit, partition)
        _, attempts = after_failure(
            claimed.status,
            claimed.attempts,
            counted=cause.counted,
            max_attempts=ledger.max_attempts,
        )
        self.failures.append(
            PartitionFailure(
                partition=partition,
                status=status,  # type: ignore[arg-type]
                error=cause.error + note,
                error_class=cause.error_class,
                attempts=attempts,
                counted=cause.counted,
                quarantine_id=quarantine_id,
            )
        )

    def load_quarantined(self, wanted: set[tuple[str, str]]) -> None:
        """The quarantine records of this run's units, to discard once a unit is collected."""
        if self.sink is None:
            return
        try:
            records = self.sink.records(source=self.source)
        except Exception as exc:
            _log.warning("%s: cannot read the quarantine: %s", self.source, describe_error(exc))
            return
        for record in records:
            unit = unit_of_record(record)
            if unit is None:
                continue
            parts = unit.unit_id.split("/")
            if len(parts) == 3 and parts[0] == self.source and (parts[1], parts[2]) in wanted:
                self.quarantined.setdefault(unit.unit_id, []).append(record.id)


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
    policies: Sequence[Policy] = (DEFAULT_FETCH_RETRY,),
    progress: bool | None = None,
    run_id: str | None = None,
    include_exhausted: bool = False,
    lookback: int | dt.timedelta | None = None,
    measure: Measure | None = None,
    contract: PartitionContract | None = None,
    quarantine: QuarantineSink | None = None,
    heartbeat: float | None = None,
    limit: int | None = None,
) -> BackfillReport:
    """Collect every gap of ``source`` x ``keys`` x [start, end] with ``concurrency`` workers.

    Args:
        ledger: The partition ledger (its store receives the data too).
        source: The source name, e.g. ``"meta_ads"``.
        keys: The expected keys (e.g. the active clients).
        start: First period (a date) ...
        end: ... and last period, both included; or give ``periods``.
        periods: The expected periods themselves (months, hours, ...).
        fetch: ``fetch(partition)`` (sync or async), wrapped in ``policies``:
            returns the rows, or with ``contract`` the unit (collection name →
            rows).
        write: ``write(tx, partition, rows)`` (with ``contract``:
            ``write(tx, partition, checked_unit)``, every collection): write in
            the unit of work ``tx`` (e.g. ``idempotent_upsert``); skipped when
            the data is identical to what the ledger last recorded.
        concurrency: Partitions in flight at once; each worker claims one
            partition when it is ready to start it, never more.
        policies: Decorators applied to ``fetch``, outermost first (retry, breaker).
        progress: Show a rich progress bar (``None``: when stderr is a terminal
            and the ``progress`` extra is installed).
        run_id: This run's id in the ledger (default: a random one).
        include_exhausted: Also collect ``exhausted`` partitions (once each):
            the retry after the cause was fixed.
        lookback: Collect the succeeded partitions of the last periods of the
            range again, to catch restatements: a number of periods (the last
            ``n`` of the range) or, for daily periods, a ``timedelta``
            (``timedelta(days=7)``: the last 7 days of the range). Unchanged
            data writes nothing; changed data is written and reported.
        measure: Sizes restatements: a field summed over the rows (``"spend"``)
            or a function of the rows (of the checked unit with ``contract``).
        contract: A :class:`~resilient_pipeline.validation.PartitionContract`:
            each unit is checked; only a complete unit is written, whole. An
            incomplete unit is a failed attempt (retried by the policies, then
            by later runs); an invalid one is quarantined whole and the
            partition fails (a later run fetches it again).
        quarantine: Where incomplete-and-exhausted and invalid units go (with
            ``contract``). Once a unit is collected whole, every quarantine
            record of it is discarded, also those other workers wrote during
            this run (in the same commit when the sink is a ``SQLQuarantine``
            of the ledger's store).
        heartbeat: Seconds between lease renewals of the partitions in flight
            (default: the ledger's ``lease / 3``; real time).
        limit: Claim at most this many partitions in this run (``None``: until
            no gap is left). A worker of a distributed engine takes its share
            this way and leaves the rest to the others; what it does not claim
            stays a gap for the next worker or run.

    Returns:
        A :class:`BackfillReport`; partition failures never raise: see
        ``report.failures`` and ``report.alerts()``.

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
    interval = _check_options(ledger, concurrency, measure, contract, quarantine, heartbeat)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ConfigurationError.for_option("limit", limit, "must be an int >= 1 or None")
    run_id = run_id or uuid.uuid4().hex[:12]
    clock = resolve_clock(ledger.clock)
    started = clock.monotonic()
    # Exactly these partitions, and only these: other keys or periods of the
    # source in the same range (a churned client, a month in between) are not ours.
    key_list = list(dict.fromkeys(key_text(k) for k in keys))  # read once: keys may be an iterator
    period_list = periods_of(start, end, periods)
    recheck = _recheck_periods(period_list, lookback)
    lo, hi = (period_list[0], period_list[-1]) if period_list else ("", "")
    run = _Run(
        ledger=ledger,
        source=source_text(source),
        run_id=run_id,
        write=write,
        contract=contract,
        sink=quarantine,
        measure=measure,
    )
    is_async = inspect.iscoroutinefunction(fetch)
    wrapped: Callable[..., Any] = run.awatched(fetch) if is_async else run.watched(fetch)
    for policy in reversed(policies):
        wrapped = policy(wrapped)

    plan = _WRITE_RETRY(ledger.plan)
    await anyio.to_thread.run_sync(lambda: plan(source, key_list, periods=period_list))
    wanted = {(k, p) for k in key_list for p in period_list}
    rechecked = set(recheck or ())
    claimable = {"pending", "failed", "running"} | ({"exhausted"} if include_exhausted else set())

    def todo() -> int:
        return sum(
            (key, period) in wanted
            and (status in claimable or (status == "succeeded" and period in rechecked))
            for key, period, status in ledger._statuses(source, lo, hi)
        )

    bar = _Progress(progress)
    if bar.shown:
        bar.start(await anyio.to_thread.run_sync(todo), f"backfill {source}")
    await anyio.to_thread.run_sync(run.load_quarantined, wanted)

    # Tuples: the ledger builds the claim's key and period condition once for the run.
    claim_keys, claim_periods = tuple(key_list), tuple(period_list)
    claim_recheck = None if recheck is None else sorted(set(recheck))

    claims = [0]  # made so far, against ``limit``; workers claim from several threads
    claims_lock = threading.Lock()

    def give_back(n: int) -> None:
        """``n`` claims counted against ``limit`` were not made after all (or rolled back)."""
        with claims_lock:
            claims[0] -= n

    def claim_in(
        tx: Transaction | None, after: Success | None = None, last: bool = False
    ) -> list[Claimed] | None:
        """This worker's next partition: alone, or in ``tx`` after recording ``after``.

        ``last``: nothing follows in ``tx``, so the claim may commit it. ``None``:
        it did, before every group of claimable partitions was tried.
        """
        with claims_lock:
            spent = limit is not None and claims[0] >= limit
            if not spent:
                claims[0] += 1
        if spent:
            if tx is not None and after is not None:
                ledger._record(tx, after)
            return []
        claimed: list[Claimed] = []
        try:
            if tx is None:
                claimed = ledger.claim_many(
                    source,
                    lo,
                    hi,
                    run_id=run_id,
                    limit=1,
                    keys=claim_keys,
                    periods=claim_periods,
                    include_exhausted=include_exhausted,
                    recheck=recheck,
                )
            else:
                claimed = ledger._claim(
                    tx,
                    str(source),
                    lo,
                    hi,
                    run_id,
                    1,
                    claim_keys,
                    claim_periods,
                    include_exhausted,
                    claim_recheck,
                    after=after,
                    commit=last,
                )
        finally:
            if not claimed:  # nothing taken (or the claim failed): the budget is not spent
                give_back(1)
        if not claimed and tx is not None and tx.committed:
            return None  # only pending work was looked for: the worker claims alone next
        return claimed

    @contextlib.contextmanager
    def working(claimed: Claimed) -> Iterator[Trace]:
        """A partition's work: its context fields, its trace, out of flight at the end."""
        partition = claimed.partition
        # Every event and log line of this partition's work, in any thread, carries these
        # (run_id and source are bound once per worker: redacting them cost per partition).
        with bind_context(
            partition_key=partition.key,
            period=partition.period,
            attempt=claimed.attempts + 1,
        ):
            trace = run.traces[partition] = Trace()
            if claimed.recovered:
                run.recovered.append(partition)
            try:
                yield trace
            finally:
                run.in_flight.discard(partition)
                run.traces.pop(partition, None)

    def committed(
        claimed: Claimed, outcome: Outcome, following: list[Claimed] | None
    ) -> list[Claimed] | None:
        # In flight from the claim on: the heartbeat renews it from now.
        run.in_flight.update(c.partition for c in following or ())
        run.collected.append((claimed.partition, outcome))
        return following

    def collect(claimed: Claimed) -> list[Claimed] | None:
        """Fetch (sync), write, commit with the next claim; ``None``: no next claim tried."""
        with working(claimed) as trace:
            t0 = clock.monotonic()
            try:
                payload = wrapped(claimed.partition)
                return committed(claimed, *run.commit(claimed, payload, t0, claim_in, give_back))
            except LeaseLostError:
                run.lost.append(claimed.partition)
            except Exception as exc:
                run.fail(claimed, exc, trace, clock.monotonic() - t0)
            return None

    async def acollect(claimed: Claimed) -> list[Claimed] | None:
        """:func:`collect` for an async fetch: the fetch in the event loop, the rest in a thread."""
        with working(claimed) as trace:
            t0 = clock.monotonic()
            try:
                payload = await wrapped(claimed.partition)
                result = await anyio.to_thread.run_sync(
                    run.commit, claimed, payload, t0, claim_in, give_back
                )
                return committed(claimed, *result)
            except LeaseLostError:
                run.lost.append(claimed.partition)
            except Exception as exc:
                elapsed = clock.monotonic() - t0
                await anyio.to_thread.run_sync(run.fail, claimed, exc, trace, elapsed)
            return None

    def claim_alone() -> list[Claimed] | None:
        """A claim in its own transaction; ``None`` when the ledger cannot be reached."""
        try:
            claimed = _WRITE_RETRY(claim_in)(None) or []  # alone: never None
        except Exception as exc:  # the ledger is unreachable: this worker stops, the run reports
            run.errors.append(f"claiming a partition failed: {describe_error(exc)}")
            return None
        run.in_flight.update(c.partition for c in claimed)
        return claimed

    def sync_worker() -> None:
        """A worker's whole loop in one thread: no thread hop per partition."""
        following: list[Claimed] | None = None
        while True:
            anyio.from_thread.check_cancelled()
            if following is None:  # the first claim, or the last partition failed
                following = claim_alone()
            if not following:
                return
            following = collect(following[0])
            bar.advance()

    async def worker() -> None:
        # The run's fields, on every partition's events (the thread gets a copy of them).
        with bind_context(run_id=run_id, source=str(source)):
            if not is_async:
                await anyio.to_thread.run_sync(sync_worker, limiter=threads)
                return
            following: list[Claimed] | None = None
            while True:
                if following is None:
                    following = await anyio.to_thread.run_sync(claim_alone)
                if not following:
                    return
                following = await acollect(following[0])
                bar.advance()

    async def beat() -> None:
        while True:
            await anyio.sleep(interval)
            held = list(run.in_flight)
            if not held:
                continue
            try:
                lost = await anyio.to_thread.run_sync(ledger.renew, held)
            except Exception as exc:  # the next beat tries again; the lease is 3 beats long
                _log.warning(
                    "%s: could not renew %d lease(s): %s", source, len(held), describe_error(exc)
                )
                continue
            for partition in lost:
                if partition not in run.in_flight:  # committed (or failed) while we renewed
                    continue
                _log.warning(
                    "%s: the lease on %s was taken over by another worker", source, partition
                )

    workers = concurrency if key_list and period_list else 0
    threads = anyio.CapacityLimiter(max(workers, 1))  # one per sync worker, never queued
    try:
        async with anyio.create_task_group() as outer:
            outer.start_soon(beat)
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(worker)
            outer.cancel_scope.cancel()
    finally:
        bar.stop()
    report = BackfillReport(
        run_id=run_id,
        source=source_text(source),
        collected=tuple(sorted(run.collected, key=lambda c: _order(c[0]))),
        failures=tuple(sorted(run.failures, key=lambda f: _order(f.partition))),
        restated=tuple(sorted(run.restated, key=lambda r: _order(r.partition))),
        recovered=tuple(sorted(run.recovered, key=_order)),
        lost=tuple(sorted(run.lost, key=_order)),
        measure=None if measure is None else getattr(measure, "__name__", str(measure)),
        errors=tuple(dict.fromkeys(run.errors)),
        duration=clock.monotonic() - started,
    )
    counts = report.counts()
    summary = report.restatement_summary()
    with bind_context(run_id=run_id, source=str(source)):
        finished = BackfillFinished(
            source=ledger.table,
            run_id=run_id,
            succeeded=len(run.collected),
            unchanged=counts["unchanged"],
            restated=counts["restated"],
            failed=len(report.failed),
            duration=report.duration,
            exhausted=counts["exhausted"],
            recovered=counts["recovered"],
            lost=counts["lost"],
            restatement="" if summary is None else summary.text(),
        )
    emit(finished, ledger.on_event)
    return report


backfill = run_in_event_loop(
    abackfill,
    name="backfill",
    doc=""":func:`abackfill` from sync code (runs its own event loop; the heartbeat too).

    Takes exactly the arguments of :func:`abackfill`; see there for an example.
    """,
)
