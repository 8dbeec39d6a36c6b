"""The partition ledger: which (source, key, period) were collected, and which are gaps.

Every partition has one row: its status (``pending``, ``running``,
``succeeded``, ``failed``, ``quarantined``), attempts, last error, row count,
fingerprint, duration and run id. ``succeeded`` is written *in the same
transaction as the partition's data* (:meth:`PartitionLedger.succeed` takes the
unit of work's transaction), so a partition is succeeded only if its data
committed. Claims and failures are short transactions of their own, so a
crash leaves a visible ``running`` row whose lease expires.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeAlias

import attrs

from resilient_pipeline._core import (
    Clock,
    Event,
    EventHandler,
    emit,
    normalize_handlers,
    number,
    resolve_clock,
)
from resilient_pipeline.alerting import Severity
from resilient_pipeline.checks import Check, CheckContext, CheckOutcome
from resilient_pipeline.exceptions import (
    ConfigurationError,
    LeaseLostError,
    LedgerError,
    StoreError,
)
from resilient_pipeline.storage import (
    Store,
    Transaction,
    is_concurrent_ddl,
    unit_of_work,
    validate_identifier,
)

from . import _sql as q

__all__ = [
    "Claimed",
    "Partition",
    "PartitionFailed",
    "PartitionLedger",
    "PartitionRecord",
    "PartitionRestated",
    "Restatement",
    "daily",
]

Status: TypeAlias = Literal["pending", "running", "succeeded", "failed", "quarantined"]
Outcome: TypeAlias = Literal["new", "unchanged", "restated"]


@attrs.frozen(order=True)
class Partition:
    """One unit of collected data: ``(source, key, period)``; key and period are text.

    Examples:
        >>> import datetime as dt
        >>> Partition("meta_ads", 7, dt.date(2026, 11, 28))
        Partition(source='meta_ads', key='7', period='2026-11-28')
    """

    source: str = attrs.field(converter=str)
    key: str = attrs.field(converter=str)

    @key.validator
    def _key(self, _attribute: object, value: str) -> None:
        if "\x1f" in value:
            raise ConfigurationError.for_option("key", value, "must not contain U+001F")

    period: str = attrs.field(converter=q.period_text)

    def as_tuple(self) -> tuple[str, str, str]:
        """``(source, key, period)``."""
        return (self.source, self.key, self.period)


@attrs.frozen
class Claimed:
    """A partition leased by :meth:`PartitionLedger.claim_many`, with what it last recorded."""

    partition: Partition
    fingerprint: str | None
    row_count: int | None


@attrs.frozen(kw_only=True)
class PartitionRecord:
    """A partition's row in the ledger."""

    partition: Partition
    status: Status
    attempts: int
    last_error: str | None
    row_count: int | None
    fingerprint: str | None
    duration: float | None
    run_id: str | None
    lease_owner: str | None
    lease_expires: float | None
    updated_at: float
    restatements: int


@attrs.frozen(kw_only=True)
class Restatement:
    """Upstream changed an already-succeeded partition's data."""

    partition: Partition
    run_id: str | None
    restated_at: float
    before_rows: int | None
    after_rows: int | None
    before_fingerprint: str | None
    after_fingerprint: str | None


@attrs.frozen(kw_only=True)
class PartitionRestated(Event):
    """A succeeded partition was collected again with different data."""

    logger_name = "resilient_pipeline.ledger"
    level = logging.WARNING
    template = "{source}: {partition} restated upstream ({before_rows} -> {after_rows} rows)"

    partition: str
    before_rows: int | None
    after_rows: int | None


@attrs.frozen(kw_only=True)
class PartitionFailed(Event):
    """A partition's collection failed (``quarantined`` once out of attempts)."""

    logger_name = "resilient_pipeline.ledger"
    level = logging.ERROR
    template = "{source}: {partition} {status} after attempt {attempts}: {error}"

    partition: str
    status: str
    attempts: int
    error: str


def daily(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end``, both included.

    Examples:
        >>> import datetime as dt
        >>> [d.day for d in daily(dt.date(2026, 11, 27), dt.date(2026, 11, 29))]
        [27, 28, 29]
    """
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def _periods(start: object, end: object, periods: Iterable[object] | None) -> list[str]:
    if periods is not None:
        return sorted({q.period_text(p) for p in periods})
    if isinstance(start, dt.date) and isinstance(end, dt.date):
        return [q.period_text(d) for d in daily(start, end)]
    raise ConfigurationError.for_option(
        "periods", periods, "give start and end dates, or the periods themselves"
    )


# Joins a period's keys in gaps(); a key containing it is rejected by plan()/succeed().
_SEPARATOR = "\x1f"


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@attrs.define(eq=False)
class PartitionLedger:
    """The ledger of partitions, kept in a store's database next to the data.

    Args:
        store: A :class:`~resilient_pipeline.SQLiteStore` or ``PostgresStore``.
        table: The partitions table; restatements go in ``<table>_restatements``.
        lease: Seconds a claim holds a partition before another worker may
            take it over (choose more than a partition's worst duration).
        max_attempts: Failures after which a partition is ``quarantined`` and
            left alone by :func:`backfill` until you reset it.
        clock: Where time comes from (leases use its wall-clock ``time()``).
        worker_id: This worker's name on its leases (default host:pid:random).
        on_event: Handlers for the ledger's events.

    Examples:
        >>> import datetime as dt
        >>> from resilient_pipeline import SQLiteStore, unit_of_work
        >>> ledger = PartitionLedger(SQLiteStore(":memory:"))
        >>> with unit_of_work(ledger.store) as tx:
        ...     ledger.succeed(tx, Partition("meta_ads", 1, "2026-11-28"), rows=[{"spend": 3}])
        'new'
        >>> [p.key for p in ledger.gaps("meta_ads", [1, 2], dt.date(2026, 11, 28),
        ...                              dt.date(2026, 11, 28))]
        ['2']
    """

    store: Store
    table: str = attrs.field(default="rp_partitions", kw_only=True)
    lease: float = attrs.field(default=600.0, kw_only=True)
    max_attempts: int = attrs.field(default=5, kw_only=True)
    clock: Clock | None = attrs.field(default=None, kw_only=True)
    worker_id: str = attrs.field(factory=_worker_id, kw_only=True)
    on_event: tuple[EventHandler, ...] = attrs.field(
        default=(), kw_only=True, converter=normalize_handlers
    )

    def __attrs_post_init__(self) -> None:
        validate_identifier(self.table, option="table")
        validate_identifier(f"{self.table}_restatements", option="table")
        number(gt=0).check("lease", self.lease)
        attempts: object = self.max_attempts
        if type(attempts) is not int or attempts < 1:
            raise ConfigurationError.for_option("max_attempts", attempts, "must be an int >= 1")

    # ------------------------------------------------------------- plumbing
    def _now(self) -> float:
        return resolve_clock(self.clock).time()

    def _sql(self, tx: Transaction, template: str, **extra: str) -> str:
        self._ensure_schema(tx)
        return q.sql(
            template,
            tx.placeholder,
            t=tx.table(self.table),
            r=tx.table(f"{self.table}_restatements"),
            **extra,
        )

    def _ensure_schema(self, tx: Transaction) -> None:
        ready: set[str] = self.store.cache.setdefault("ledger_tables", set())
        if self.table in ready:
            return
        index = f"{self.table}_status"
        partitions, restatements = tx.table(self.table), tx.table(f"{self.table}_restatements")
        statements = q.ddl(partitions, restatements, tx.quote(index), tx.dialect)
        # Several workers may create the schema at once (each one's first call).
        for made, statement in zip(
            (partitions, tx.table(index), restatements), statements, strict=True
        ):
            if not self._exists(tx, made):
                self._create(tx, statement)
        tx.after_commit(lambda: ready.add(self.table))

    @staticmethod
    def _exists(tx: Transaction, name: str) -> bool:
        """Whether the table or index ``name`` (quoted) exists; always ``False`` on SQLite.

        On PostgreSQL even a no-op ``CREATE INDEX IF NOT EXISTS`` share-locks
        the table until commit: two workers doing it and then inserting
        deadlock. SQLite runs DDL under its one write lock, so ``IF NOT
        EXISTS`` is enough there.
        """
        if tx.dialect != "postgres":
            return False
        row = tx.fetchone(f"SELECT to_regclass({tx.placeholder}) IS NOT NULL", (name,))
        return row is not None and bool(row[0])

    @staticmethod
    def _create(tx: Transaction, statement: str) -> None:
        failed_step = tx.failed_step
        try:
            with tx.savepoint():
                tx.execute(statement)
        except StoreError as exc:
            # PostgreSQL: another worker's CREATE committed while ours waited on
            # it (a unique violation on pg_type, or "already exists"): it exists.
            if not is_concurrent_ddl(exc):
                raise
            tx.failed_step = failed_step  # recovered: a later failure names its own step

    def ensure_schema(self) -> None:
        """Create the ledger's tables if they do not exist (idempotent)."""
        with unit_of_work(self.store, name="ledger.ensure_schema") as tx:
            self._ensure_schema(tx)

    def _current_sql(self, tx: Transaction) -> str:
        # FOR UPDATE: a claim (SKIP LOCKED) cannot take the row between our read and write.
        select = self._sql(tx, q.CURRENT)
        return select + " FOR UPDATE" if tx.dialect == "postgres" else select

    # --------------------------------------------------------------- writing
    def plan(
        self,
        source: str,
        keys: Iterable[object],
        start: object = None,
        end: object = None,
        *,
        periods: Iterable[object] | None = None,
    ) -> int:
        """Record every expected partition as ``pending`` unless it is known; the count added."""
        wanted = _periods(start, end, periods)
        now = self._now()
        params = [(str(source), str(k), p, now) for p in wanted for k in dict.fromkeys(keys)]
        with unit_of_work(self.store, name="ledger.plan") as tx:
            return max(tx.executemany(self._sql(tx, q.PLAN), params), 0)

    def claim(
        self,
        source: str,
        start: object = None,
        end: object = None,
        *,
        run_id: str = "",
        keys: Iterable[object] | None = None,
        periods: Iterable[object] | None = None,
    ) -> Partition | None:
        """Lease the next claimable partition of ``source`` in [start, end], or ``None``."""
        claimed = self.claim_many(
            source, start, end, run_id=run_id, limit=1, keys=keys, periods=periods
        )
        return claimed[0].partition if claimed else None

    def claim_many(
        self,
        source: str,
        start: object = None,
        end: object = None,
        *,
        run_id: str = "",
        limit: int = 10,
        keys: Iterable[object] | None = None,
        periods: Iterable[object] | None = None,
    ) -> list[Claimed]:
        """Lease up to ``limit`` claimable partitions of ``source`` in [start, end], in one commit.

        Claimable: ``pending``, ``failed`` in another run, or ``running`` with
        an expired lease (its worker died). ``keys`` and ``periods``, when
        given, restrict the claim to exactly those (an empty list claims
        nothing); other partitions of the source in the range are left alone.
        On PostgreSQL concurrent workers skip each other's rows
        (``FOR UPDATE SKIP LOCKED``); SQLite serialises writers anyway.
        """
        lo, hi = q.period_text(start or ""), q.period_text(end or "\uffff")
        only: list[tuple[Literal["key", "period"], list[str]]] = []
        if keys is not None:
            only.append(("key", sorted({str(k) for k in keys})))
        if periods is not None:
            only.append(("period", sorted({q.period_text(p) for p in periods})))
        with unit_of_work(self.store, name="ledger.claim") as tx:
            now = self._now()
            condition, params = "", []
            for column, texts in only:
                sql, param = q.one_of(column, texts, tx.dialect, tx.placeholder)
                condition += sql
                params.append(param)
            select = self._sql(tx, q.CLAIMABLE, limit=str(max(int(limit), 1)), only=condition)
            if tx.dialect == "postgres":
                select += " FOR UPDATE SKIP LOCKED"
            # A partition that failed in this run waits for the next run (no hot loop).
            rows = tx.fetchall(select, (str(source), lo, hi, *params, run_id, now))
            claimed = [Claimed(Partition(source, k, p), fp, n) for k, p, fp, n in rows]
            tx.executemany(
                self._sql(tx, q.CLAIM),
                [
                    (self.worker_id, now + self.lease, run_id, now, *c.partition.as_tuple())
                    for c in claimed
                ],
            )
            return claimed

    def start(self, partition: Partition, *, run_id: str = "") -> None:
        """Lease this ``partition`` now (its own transaction), counting an attempt.

        Raises:
            LeaseLostError: Another worker holds an unexpired lease on it.
        """
        with unit_of_work(self.store, name="ledger.start") as tx:
            now = self._now()
            current = tx.fetchone(self._current_sql(tx), partition.as_tuple())
            if current is not None and current[0] == "running" and current[1] != self.worker_id:
                expires = tx.fetchone(
                    self._sql(
                        tx,
                        "SELECT lease_expires FROM {t} WHERE source = {p}"
                        " AND key = {p} AND period = {p}",
                    ),
                    partition.as_tuple(),
                )
                if expires is not None and expires[0] is not None and expires[0] > now:
                    raise LeaseLostError(
                        f"{partition.as_tuple()} is leased by {current[1]}",
                        partition=partition.as_tuple(),
                    )
            tx.execute(
                self._sql(tx, q.START),
                (*partition.as_tuple(), self.worker_id, now + self.lease, run_id, now),
            )

    def succeed(
        self,
        tx: Transaction,
        partition: Partition,
        *,
        rows: Sequence[Any] | None = None,
        row_count: int | None = None,
        fingerprint: str | None = None,
        duration: float | None = None,
        run_id: str | None = None,
    ) -> Outcome:
        """Mark ``partition`` succeeded inside ``tx``, the transaction that wrote its data.

        Give the rows (fingerprinted here) or ``row_count`` and ``fingerprint``.
        Returns ``"new"``, ``"unchanged"`` (same fingerprint as before) or
        ``"restated"`` (different data for an already-succeeded partition,
        recorded with before/after counts).

        Raises:
            LeaseLostError: Another worker took the partition over; ``tx``
                must roll back (the unit of work does, as this raises).
        """
        if rows is not None:
            fingerprint = fingerprint or q.fingerprint(rows)
            row_count = len(rows) if row_count is None else row_count
        now = self._now()
        current = tx.fetchone(self._current_sql(tx), partition.as_tuple())
        if current is None:
            tx.execute(
                self._sql(tx, q.UPSERT_SUCCEEDED),
                (*partition.as_tuple(), row_count, fingerprint, duration, run_id, now),
            )
            return "new"
        status, owner, before_fp, before_rows, _attempts = current
        if status == "running" and owner not in (None, self.worker_id):
            raise LeaseLostError(
                f"{partition.as_tuple()} is leased by {owner}, not {self.worker_id}",
                partition=partition.as_tuple(),
            )
        return self._record_success(
            tx, partition, row_count, fingerprint, duration, run_id, before_fp, before_rows, now
        )

    def _record_success(
        self,
        tx: Transaction,
        partition: Partition,
        row_count: int | None,
        fingerprint: str | None,
        duration: float | None,
        run_id: str | None,
        before_fp: str | None,
        before_rows: int | None,
        now: float,
        *,
        owned: bool = False,
    ) -> Outcome:
        outcome: Outcome = "new"
        if before_fp is not None and fingerprint is not None:
            outcome = "unchanged" if before_fp == fingerprint else "restated"
        if outcome == "restated":
            tx.execute(
                self._sql(tx, q.RESTATED),
                (
                    *partition.as_tuple(),
                    run_id,
                    now,
                    before_rows,
                    row_count,
                    before_fp,
                    fingerprint,
                ),
            )
            emit(
                PartitionRestated(
                    source=self.table,
                    partition="/".join(partition.as_tuple()),
                    before_rows=before_rows,
                    after_rows=row_count,
                ),
                self.on_event,
            )
        params = (
            row_count,
            fingerprint,
            duration,
            run_id,
            now,
            1 if outcome == "restated" else 0,
            *partition.as_tuple(),
        )
        if not owned:
            tx.execute(self._sql(tx, q.SUCCEED), params)
        # Claimed by us: the update itself proves we still hold the lease (one round trip).
        elif tx.execute(self._sql(tx, q.SUCCEED + q.STILL_OURS), (*params, self.worker_id)) != 1:
            raise LeaseLostError(
                f"{partition.as_tuple()} was re-claimed by another worker",
                partition=partition.as_tuple(),
            )
        return outcome

    def succeed_claimed(
        self,
        tx: Transaction,
        claimed: Claimed,
        *,
        rows: Sequence[Any],
        fingerprint: str,
        duration: float,
        run_id: str,
    ) -> Outcome:
        """:meth:`succeed` for a partition this worker claimed (what :func:`backfill` uses).

        The previous fingerprint came with the claim, so this is one UPDATE.
        """
        return self._record_success(
            tx,
            claimed.partition,
            len(rows),
            fingerprint,
            duration,
            run_id,
            claimed.fingerprint,
            claimed.row_count,
            self._now(),
            owned=True,
        )

    def fail(
        self, partition: Partition, error: str, *, duration: float | None = None, run_id: str = ""
    ) -> Status:
        """Record a failed attempt (its own transaction); ``quarantined`` once out of attempts."""
        with unit_of_work(self.store, name="ledger.fail") as tx:
            current = tx.fetchone(self._current_sql(tx), partition.as_tuple())
            if current is None:
                raise LedgerError(f"{partition.as_tuple()} was never planned or claimed")
            attempts = int(current[4])
            status: Status = "quarantined" if attempts >= self.max_attempts else "failed"
            tx.execute(
                self._sql(tx, q.FAIL),
                (
                    status,
                    error,
                    duration,
                    run_id,
                    self._now(),
                    *partition.as_tuple(),
                    self.worker_id,
                ),
            )
        emit(
            PartitionFailed(
                source=self.table,
                partition="/".join(partition.as_tuple()),
                status=status,
                attempts=attempts,
                error=error,
            ),
            self.on_event,
        )
        return status

    def completeness_check(
        self,
        source: str,
        keys: Iterable[object],
        *,
        start: object = None,
        end: object = None,
        period_param: str = "day",
        severity: Severity = "error",
    ) -> Check:
        """A :class:`~resilient_pipeline.Check` whose offending rows are this ledger's gaps.

        Without ``start``/``end`` it checks the run's ``params[period_param]``
        (one day), so ``monitor(..., params={"day": ...})`` checks that day.

        Examples:
            >>> import datetime as dt
            >>> from resilient_pipeline import SQLiteStore
            >>> ledger = PartitionLedger(SQLiteStore(":memory:"))
            >>> check = ledger.completeness_check("meta_ads", [1, 2])
            >>> check.run(params={"day": dt.date(2026, 11, 28)}).message
            'meta_ads: 2 of 2 partition(s) missing or not succeeded: 1/2026-11-28, 2/2026-11-28'
        """
        wanted = list(dict.fromkeys(keys))

        def body(context: CheckContext) -> CheckOutcome:
            lo = start if start is not None else context.params[period_param]
            hi = end if end is not None else context.params[period_param]
            if isinstance(lo, str) and isinstance(hi, str) and len(lo) == len(hi) == 10:
                lo, hi = dt.date.fromisoformat(lo), dt.date.fromisoformat(hi)
            gaps = self.gaps(source, wanted, lo, hi)
            total = len(wanted) * len(_periods(lo, hi, None))
            shown = ", ".join(f"{g.key}/{g.period}" for g in gaps[:20])
            more = f" and {len(gaps) - 20} more" if len(gaps) > 20 else ""
            return CheckOutcome(
                [{"source": g.source, "key": g.key, "period": g.period} for g in gaps],
                message=f"{source}: {len(gaps)} of {total} partition(s) missing or not "
                f"succeeded: {shown}{more}",
            )

        return Check(
            name=f"{source}_complete",
            severity=severity,
            body=body,
            action=f"Backfill the gaps: python -m resilient_pipeline gaps --source {source} ... "
            "then backfill(); see docs/runbooks/daily-collection-incomplete.md",
        )

    # --------------------------------------------------------------- reading
    def gaps(
        self,
        source: str,
        keys: Iterable[object],
        start: object = None,
        end: object = None,
        *,
        periods: Iterable[object] | None = None,
    ) -> list[Partition]:
        """Every expected partition that is missing or not ``succeeded``, by period then key.

        Expected partitions are ``keys`` x the dates from ``start`` to ``end``
        (or ``periods``). One indexed range query, then set arithmetic.
        """
        wanted = _periods(start, end, periods)
        key_list = [str(k) for k in dict.fromkeys(keys)]
        if not wanted or not key_list:
            return []
        with unit_of_work(self.store, name="ledger.gaps") as tx:
            concat = "string_agg" if tx.dialect == "postgres" else "group_concat"
            rows = tx.fetchall(
                self._sql(tx, q.SUCCEEDED_IN_RANGE, concat=concat),
                (_SEPARATOR, str(source), wanted[0], wanted[-1]),
            )
        done = dict(rows)
        expected = set(key_list)
        gaps: list[Partition] = []
        for period in wanted:
            joined = done.get(period)
            missing = expected - set(joined.split(_SEPARATOR)) if joined else expected
            if missing:
                gaps.extend(Partition(source, k, period) for k in key_list if k in missing)
        return gaps

    def records(
        self, source: str, start: object = None, end: object = None
    ) -> list[PartitionRecord]:
        """The ledger rows of ``source`` in [start, end] (all periods by default)."""
        lo, hi = q.period_text(start or ""), q.period_text(end or "\uffff")
        with unit_of_work(self.store, name="ledger.records") as tx:
            rows = tx.fetchall(
                self._sql(tx, q.RECORDS_IN_RANGE, columns=", ".join(q.COLUMNS)),
                (str(source), lo, hi),
            )
        records = []
        for row in rows:
            values = dict(zip(q.COLUMNS, row, strict=True))
            partition = Partition(values.pop("source"), values.pop("key"), values.pop("period"))
            records.append(PartitionRecord(partition=partition, **values))
        return sorted(records, key=lambda r: (r.partition.period, r.partition.key))

    def restatements(self, source: str, *, since: float = 0.0) -> list[Restatement]:
        """Restatements of ``source`` recorded at or after ``since`` (epoch seconds)."""
        with unit_of_work(self.store, name="ledger.restatements") as tx:
            rows = tx.fetchall(self._sql(tx, q.RESTATEMENTS_SINCE), (str(source), since))
        return [
            Restatement(
                partition=Partition(r[0], r[1], r[2]),
                run_id=r[3],
                restated_at=r[4],
                before_rows=r[5],
                after_rows=r[6],
                before_fingerprint=r[7],
                after_fingerprint=r[8],
            )
            for r in rows
        ]
