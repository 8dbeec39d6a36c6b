"""The partition ledger: which (source, key, period) were collected, and which are gaps.

Every partition has one row: its status (see ``_states.py`` and
docs/ledger.md for every state and transition), failed attempts, the root
cause of its last failure (text, class, time), row count, fingerprint,
duration, run id, lease and crash count. ``succeeded`` is written *in the
same transaction as the partition's data* (:meth:`PartitionLedger.succeed`
takes the unit of work's transaction), so a partition is succeeded only if
its data committed. Claims, renewals and failures are short transactions of
their own, so a crash leaves a visible ``running`` row whose short lease
expires.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeAlias

import attrs

from resilient_pipeline._core import (
    Clock,
    EventHandler,
    describe_error,
    emit,
    normalize_handlers,
    number,
    redact,
    resolve_clock,
)
from resilient_pipeline.alerting import Severity
from resilient_pipeline.checks import Check, CheckContext, CheckOutcome
from resilient_pipeline.exceptions import (
    ConfigurationError,
    LeaseLostError,
    LedgerError,
)
from resilient_pipeline.storage import Store, Transaction, unit_of_work, validate_identifier

from . import _schema
from . import _sql as q
from ._cause import error_class as class_of
from ._claim import claim as claim_in
from ._fingerprint import digest, previous
from ._records import (
    Claimed,
    Partition,
    PartitionFailed,
    PartitionRecord,
    PartitionRestated,
    Restatement,
)
from ._states import RESETTABLE, Status, after_failure, normalize_status

__all__ = ["Outcome", "PartitionLedger", "daily", "periods_of"]

Outcome: TypeAlias = Literal["new", "unchanged", "restated"]


def daily(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end``, both included.

    Examples:
        >>> import datetime as dt
        >>> [d.day for d in daily(dt.date(2026, 11, 27), dt.date(2026, 11, 29))]
        [27, 28, 29]
    """
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def periods_of(start: object, end: object, periods: Iterable[object] | None) -> list[str]:
    """The periods as stored, sorted: ``periods`` itself, or every date from start to end."""
    if periods is not None:
        return sorted({q.period_text(p) for p in periods})
    if isinstance(start, dt.date) and isinstance(end, dt.date):
        return [q.period_text(d) for d in daily(start, end)]
    raise ConfigurationError.for_option(
        "periods", periods, "give start and end dates, or the periods themselves"
    )


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _record(values: dict[str, Any]) -> PartitionRecord:
    partition = Partition(values.pop("source"), values.pop("key"), values.pop("period"))
    values["status"] = normalize_status(values["status"])
    return PartitionRecord(partition=partition, **values)


def _range(start: object, end: object) -> tuple[str, str]:
    return q.period_text("" if start is None else start), q.period_text(
        "\uffff" if end is None else end
    )


@attrs.frozen
class _Success:
    """A claimed partition's success, ready to record (alone or with the next claim)."""

    partition: Partition
    row_count: int | None
    fingerprint: str | None
    duration: float | None
    run_id: str | None
    measure: float | None
    before: tuple[str | None, int | None, float | None]  # fingerprint, rows, measure
    now: float

    @property
    def outcome(self) -> Outcome:
        """New data, the same data again, or changed data."""
        before_fp = self.before[0]
        if before_fp is None or self.fingerprint is None:
            return "new"
        return "unchanged" if before_fp == self.fingerprint else "restated"

    @property
    def params(self) -> tuple[Any, ...]:
        """The parameters of ``SUCCEED``."""
        return (
            self.row_count,
            self.fingerprint,
            self.duration,
            self.run_id,
            self.measure,
            self.now,
            1 if self.outcome == "restated" else 0,
            *self.partition.as_tuple(),
        )


@attrs.define(eq=False)
class PartitionLedger:
    """The ledger of partitions, kept in a store's database next to the data.

    Args:
        store: A :class:`~resilient_pipeline.SQLiteStore` or ``PostgresStore``.
        table: The partitions table; restatements go in ``<table>_restatements``.
        lease: Seconds a claim holds a partition before another worker may take
            it over. :func:`backfill` renews the leases of the partitions it
            works on every ``lease / 3`` seconds, so a short lease (the default
            30 s) is safe for long fetches, and a killed worker's partitions are
            claimable again within one lease.
        max_attempts: Failed attempts (the collect function ran and failed)
            after which a partition is ``exhausted``: left alone by
            :func:`backfill` until you retry it (``include_exhausted=True``,
            :meth:`reset`, ``python -m resilient_pipeline retry``).
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
        >>> [(g.key, g.status) for g in ledger.gaps("meta_ads", [1, 2], dt.date(2026, 11, 28),
        ...                                         dt.date(2026, 11, 28))]
        [('2', 'missing')]
    """

    store: Store
    table: str = attrs.field(default="rp_partitions", kw_only=True)
    lease: float = attrs.field(default=30.0, kw_only=True)
    max_attempts: int = attrs.field(default=5, kw_only=True)
    clock: Clock | None = attrs.field(default=None, kw_only=True)
    worker_id: str = attrs.field(factory=_worker_id, kw_only=True)
    on_event: tuple[EventHandler, ...] = attrs.field(
        default=(), kw_only=True, converter=normalize_handlers
    )
    # The last keys/periods condition built from tuples (immutable): a backfill
    # claims with the same ones for every partition (see _only).
    _only_memo: tuple[Any, ...] | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        validate_identifier(self.table, option="table")
        validate_identifier(f"{self.table}_restatements", option="table")
        number(gt=0).check("lease", self.lease)
        attempts: object = self.max_attempts
        if type(attempts) is not int or attempts < 1:
            raise ConfigurationError.for_option("max_attempts", attempts, "must be an int >= 1")
        worker: object = self.worker_id
        if not isinstance(worker, str) or not worker:
            raise ConfigurationError.for_option(
                "worker_id", self.worker_id, "must be a non-empty str"
            )

    # ------------------------------------------------------------- plumbing
    def _now(self) -> float:
        return resolve_clock(self.clock).time()

    def _sql(self, tx: Transaction, template: str, **extra: str) -> str:
        self._ensure_schema(tx)
        # Built once per store, table and statement: quoting and validating the
        # table names on every call cost more than the statement on SQLite.
        statements: dict[tuple[object, ...], str] = self.store.cache.setdefault("ledger_sql", {})
        # The keywords in call order: a call site always passes them in the same order.
        cache_key = (self.table, template, *extra.items())
        statement = statements.get(cache_key)
        if statement is None:
            if len(statements) > 1024:  # limits and conditions vary little; stay bounded anyway
                statements.clear()
            statement = statements[cache_key] = q.sql(
                template,
                tx.placeholder,
                t=tx.table(self.table),
                r=tx.table(f"{self.table}_restatements"),
                **extra,
            )
        return statement

    def _ensure_schema(self, tx: Transaction) -> None:
        ready: set[str] = self.store.cache.setdefault("ledger_tables", set())
        if self.table in ready:
            return
        _schema.ensure(tx, self.table)
        tx.after_commit(lambda: ready.add(self.table))

    def _readable(self, tx: Transaction) -> bool:
        """For the read methods: ``False`` when the ledger has no table yet (none is created)."""
        ready: set[str] = self.store.cache.setdefault("ledger_tables", set())
        if self.table in ready:
            return True
        if not _schema.table_exists(tx, self.table):
            return False
        self._ensure_schema(tx)  # an older ledger gains its newer columns
        return True

    def ensure_schema(self) -> None:
        """Create the ledger's tables, or add the columns a newer version needs (idempotent)."""
        with unit_of_work(self.store, name="ledger.ensure_schema") as tx:
            self._ensure_schema(tx)

    def _current(self, tx: Transaction, partition: Partition) -> tuple[Any, ...] | None:
        # FOR UPDATE: a claim (SKIP LOCKED) cannot take the row between our read and write.
        select = self._sql(tx, q.CURRENT)
        if tx.dialect == "postgres":
            select += " FOR UPDATE"
        return tx.fetchone(select, partition.as_tuple())

    def _only(
        self,
        tx: Transaction,
        keys: Iterable[object] | None,
        periods: Iterable[object] | None,
    ) -> tuple[str, list[object]]:
        # Sorting and encoding 1,000 keys cost more than the claim itself: reuse the
        # condition when given the very same tuples again (they cannot have changed).
        memo = self._only_memo
        reusable = isinstance(keys, (tuple, type(None))) and isinstance(
            periods, (tuple, type(None))
        )
        if (
            reusable
            and memo is not None
            and memo[0] is keys
            and memo[1] is periods
            and memo[2] == tx.placeholder
        ):
            return memo[3], list(memo[4])
        condition, params = "", []
        only: list[tuple[Literal["key", "period"], list[str]]] = []
        if keys is not None:
            only.append(("key", sorted({q.key_text(k) for k in keys})))
        if periods is not None:
            only.append(("period", sorted({q.period_text(p) for p in periods})))
        for column, texts in only:
            sql, param = q.listed(column, texts, tx.dialect, tx.placeholder)
            condition += sql
            params.append(param)
        if reusable:
            self._only_memo = (keys, periods, tx.placeholder, condition, tuple(params))
        return condition, params

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
        wanted = periods_of(start, end, periods)
        now = self._now()
        key_list = [q.key_text(k) for k in dict.fromkeys(keys)]
        source = q.source_text(source)
        params = [(source, k, p, now) for p in wanted for k in key_list]
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
        include_exhausted: bool = False,
        recheck: Iterable[object] | None = None,
    ) -> Partition | None:
        """Lease the next claimable partition of ``source`` in [start, end], or ``None``."""
        claimed = self.claim_many(
            source,
            start,
            end,
            run_id=run_id,
            limit=1,
            keys=keys,
            periods=periods,
            include_exhausted=include_exhausted,
            recheck=recheck,
        )
        return claimed[0].partition if claimed else None

    def claim_many(
        self,
        source: str,
        start: object = None,
        end: object = None,
        *,
        run_id: str = "",
        limit: int = 1,
        keys: Iterable[object] | None = None,
        periods: Iterable[object] | None = None,
        include_exhausted: bool = False,
        recheck: Iterable[object] | None = None,
        tx: Transaction | None = None,
    ) -> list[Claimed]:
        """Lease up to ``limit`` claimable partitions of ``source`` in [start, end], in one commit.

        Claimable, in the order claims take them (each group by period, then
        key): ``pending``; ``failed`` in another run; ``running`` with an
        expired lease (its worker died: counted as a crash, not an attempt);
        with ``include_exhausted``, ``exhausted`` (once per run); and
        ``succeeded`` partitions of the ``recheck`` periods nobody holds, for
        a look-back (they stay ``succeeded`` while re-collected). A claim is
        never an attempt. ``keys`` and ``periods``, when given, restrict the
        claim to exactly those (an empty list claims nothing). On PostgreSQL
        concurrent workers skip each other's rows (``FOR UPDATE SKIP
        LOCKED``); SQLite serialises writers anyway. Each group is one index
        range scan that stops at ``limit``: a claim's cost does not grow with
        the size of the ledger.

        ``tx``: claim inside this open transaction instead of one of its own,
        e.g. the unit of work committing the previous partition's data, so
        the success and the next claim are one commit (what :func:`backfill`
        does). The claim holds only if ``tx`` commits.

        Claim only what you start now: a claimed partition is stranded until
        its lease expires if the worker dies.
        """
        if type(limit) is not int or limit < 1:
            raise ConfigurationError.for_option("limit", limit, "must be an int >= 1")
        lo, hi = _range(start, end)
        recheck_list = None if recheck is None else sorted({q.period_text(p) for p in recheck})
        options = (q.source_text(source), lo, hi, run_id, limit, keys, periods, include_exhausted)
        if tx is not None:
            return self._claim(tx, *options, recheck_list)
        with unit_of_work(self.store, name="ledger.claim") as own:
            return self._claim(own, *options, recheck_list)

    # The claim of claim_many in ``tx``, recording the success ``after`` first (on
    # PostgreSQL one statement with the claim of pending work): see _claim.py.
    _claim = claim_in

    def start(self, partition: Partition, *, run_id: str = "") -> None:
        """Lease this ``partition`` now (its own transaction); not an attempt.

        Raises:
            LeaseLostError: Another worker holds an unexpired lease on it.
        """
        with unit_of_work(self.store, name="ledger.start") as tx:
            now = self._now()
            current = self._current(tx, partition)
            if current is not None:
                owner, expires = current[1], current[5]
                if owner not in (None, self.worker_id) and expires is not None and expires >= now:
                    raise LeaseLostError(
                        f"{partition.as_tuple()} is leased by {owner}",
                        partition=partition.as_tuple(),
                    )
            tx.execute(
                self._sql(tx, q.START),
                (*partition.as_tuple(), self.worker_id, now + self.lease, run_id, now),
            )

    def renew(self, partitions: Iterable[Partition]) -> list[Partition]:
        """Extend this worker's leases on ``partitions`` by ``lease`` from now; the ones lost.

        A heartbeat: :func:`backfill` calls it every ``lease / 3`` seconds for
        the partitions in flight. A partition another worker took over (after
        our lease expired) is returned as lost; its commit would raise
        :class:`~resilient_pipeline.exceptions.LeaseLostError`.

        Examples:
            >>> from resilient_pipeline import SQLiteStore
            >>> ledger = PartitionLedger(SQLiteStore(":memory:"), worker_id="w1")
            >>> partition = Partition("s", 1, "2026-11")
            >>> ledger.start(partition)
            >>> ledger.renew([partition])
            []
        """
        held = list(partitions)
        if not held:
            return []
        with unit_of_work(self.store, name="ledger.renew") as tx:
            expires = self._now() + self.lease
            sql = self._sql(tx, q.RENEW)
            return [
                p for p in held if tx.execute(sql, (expires, *p.as_tuple(), self.worker_id)) != 1
            ]

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
        measure: float | None = None,
    ) -> Outcome:
        """Mark ``partition`` succeeded inside ``tx``, the transaction that wrote its data.

        Give the rows (fingerprinted here) or ``row_count`` and ``fingerprint``;
        ``measure`` (e.g. the partition's total spend) is kept to size a later
        restatement. Returns ``"new"``, ``"unchanged"`` (same fingerprint as
        before) or ``"restated"`` (different data for an already-succeeded
        partition, recorded with before/after counts and measures).

        Raises:
            LeaseLostError: Another worker took the partition over; ``tx``
                must roll back (the unit of work does, as this raises).
        """
        if rows is not None:
            fingerprint = fingerprint or digest(list(rows))
            row_count = len(rows) if row_count is None else row_count
        now = self._now()
        current = self._current(tx, partition)
        if current is None:
            tx.execute(
                self._sql(tx, q.UPSERT_SUCCEEDED),
                (*partition.as_tuple(), row_count, fingerprint, duration, run_id, measure, now),
            )
            return "new"
        owner, before_fp, before_rows, expires, before_measure = (
            current[i] for i in (1, 2, 3, 5, 6)
        )
        if owner not in (None, self.worker_id) and expires is not None and expires >= now:
            raise LeaseLostError(
                f"{partition.as_tuple()} is leased by {owner}, not {self.worker_id}",
                partition=partition.as_tuple(),
            )
        if rows is not None and fingerprint is not None:
            before_fp = previous(before_fp, rows, fingerprint)
        before = (before_fp, before_rows, before_measure)
        return self._record_success(
            tx, partition, row_count, fingerprint, duration, run_id, measure, before, now
        )

    def succeed_claimed(
        self,
        tx: Transaction,
        claimed: Claimed,
        *,
        rows: Sequence[Any] | None = None,
        row_count: int | None = None,
        fingerprint: str,
        duration: float,
        run_id: str,
        measure: float | None = None,
    ) -> Outcome:
        """:meth:`succeed` for a partition this worker claimed (what :func:`backfill` uses).

        The previous fingerprint came with the claim, so this is one UPDATE,
        which also proves the lease is still ours.

        Raises:
            LeaseLostError: Another worker took the partition over.
        """
        count = len(rows) if row_count is None and rows is not None else row_count
        success = self._success_of(claimed, count, fingerprint, duration, run_id, measure)
        self._record(tx, success)
        return success.outcome

    def _success_of(
        self,
        claimed: Claimed,
        row_count: int | None,
        fingerprint: str | None,
        duration: float | None,
        run_id: str | None,
        measure: float | None,
    ) -> _Success:
        """The success of a partition this worker claimed, to record with :meth:`_record`."""
        before = (claimed.fingerprint, claimed.row_count, claimed.measure)
        return _Success(
            claimed.partition,
            row_count,
            fingerprint,
            duration,
            run_id,
            measure,
            before,
            self._now(),
        )

    def _record_success(
        self,
        tx: Transaction,
        partition: Partition,
        row_count: int | None,
        fingerprint: str | None,
        duration: float | None,
        run_id: str | None,
        measure: float | None,
        before: tuple[str | None, int | None, float | None],
        now: float,
    ) -> Outcome:
        success = _Success(
            partition, row_count, fingerprint, duration, run_id, measure, before, now
        )
        tx.execute(self._sql(tx, q.SUCCEED), success.params)
        self._restated(tx, success)
        return success.outcome

    def _record(self, tx: Transaction, success: _Success) -> None:
        """Record a claimed partition's success; the update itself proves the lease is ours."""
        done = tx.execute(
            self._sql(tx, q.SUCCEED + q.STILL_OURS), (*success.params, self.worker_id)
        )
        self._check_still_ours(tx, success, done)

    def _check_still_ours(self, tx: Transaction, success: _Success, done: int) -> None:
        if done != 1:
            partition = success.partition.as_tuple()
            raise LeaseLostError(
                f"{partition} was re-claimed by another worker", partition=partition
            )
        self._restated(tx, success)

    def _restated(self, tx: Transaction, success: _Success) -> None:
        """A restatement's row and event (nothing for new or unchanged data)."""
        if success.outcome != "restated":
            return
        partition = success.partition
        before_fp, before_rows, before_measure = success.before
        tx.execute(
            self._sql(tx, q.RESTATED),
            (
                *partition.as_tuple(),
                success.run_id,
                success.now,
                before_rows,
                success.row_count,
                before_fp,
                success.fingerprint,
                before_measure,
                success.measure,
            ),
        )
        emit(
            PartitionRestated(
                source=self.table,
                partition=str(partition),
                before_rows=before_rows,
                after_rows=success.row_count,
            ),
            self.on_event,
        )

    def fail(
        self,
        partition: Partition,
        error: str | BaseException,
        *,
        duration: float | None = None,
        run_id: str = "",
        counted: bool = True,
        error_class: str | None = None,
        error_at: float | None = None,
        replace_error: bool = True,
    ) -> Status:
        """Record a failure (its own transaction); the partition's status after it.

        ``error`` is the root cause: an exception (described, secrets masked,
        its class recorded) or a text (masked here). ``counted``: whether the
        collect function ran; a failure that is not an attempt (the circuit
        was open before the call) leaves the count alone. After
        ``max_attempts`` counted failures the partition is ``exhausted``.
        A ``succeeded`` partition (a failed look-back) stays ``succeeded``.
        ``replace_error=False`` keeps an error already recorded (a rejection
        by an open circuit explains less than the upstream error before it).

        Raises:
            LeaseLostError: Another worker holds the partition now (nothing recorded).
            LedgerError: The partition was never planned or claimed.
        """
        kind: str | None = error_class
        if isinstance(error, BaseException):
            text, kind = describe_error(error), error_class or class_of(error)
        else:
            text = redact(str(error))
        with unit_of_work(self.store, name="ledger.fail") as tx:
            now = self._now()
            current = self._current(tx, partition)
            if current is None:
                raise LedgerError(f"{partition.as_tuple()} was never planned or claimed")
            owner = current[1]
            if owner not in (None, self.worker_id):
                raise LeaseLostError(
                    f"{partition.as_tuple()} is leased by {owner}, not {self.worker_id}",
                    partition=partition.as_tuple(),
                )
            when = error_at if error_at is not None else now
            if not replace_error and current[7] is not None:
                text, kind, when = current[7], current[8], current[9]
            status, attempts = after_failure(
                normalize_status(current[0]),
                int(current[4]),
                counted=counted,
                max_attempts=self.max_attempts,
            )
            tx.execute(
                self._sql(tx, q.FAIL),
                (
                    status,
                    attempts,
                    text,
                    kind,
                    when,
                    duration,
                    run_id,
                    now,
                    *partition.as_tuple(),
                    self.worker_id,
                ),
            )
        emit(
            PartitionFailed(
                source=self.table,
                partition=str(partition),
                status=status,
                attempts=attempts,
                error=text,
                error_class=kind or "",
                counted=counted,
            ),
            self.on_event,
        )
        return status

    def reset(
        self,
        source: str,
        *,
        keys: Iterable[object] | None = None,
        start: object = None,
        end: object = None,
        periods: Iterable[object] | None = None,
        statuses: Iterable[str] = ("exhausted",),
        dry_run: bool = False,
    ) -> list[PartitionRecord]:
        """Set partitions back to ``pending`` with 0 attempts, so the next backfill collects them.

        Selects the partitions of ``source`` in [start, end] (or exactly
        ``periods``; every period by default), of ``keys`` (every key by
        default), whose status is in ``statuses`` (``"exhausted"`` by
        default; also ``"failed"``, ``"succeeded"`` to collect again,
        ``"pending"``). A ``running`` partition cannot be reset: it is leased,
        and becomes claimable when its lease expires. ``last_error`` and its
        class and time are kept for history. Returns the records as they were
        before the reset; ``dry_run`` only returns them.

        Examples:
            >>> from resilient_pipeline import SQLiteStore
            >>> ledger = PartitionLedger(SQLiteStore(":memory:"), max_attempts=1)
            >>> partition = Partition("meta_ads", 7, "2026-11-28")
            >>> ledger.start(partition)
            >>> ledger.fail(partition, ConnectionError("503 from upstream"))
            'exhausted'
            >>> [(r.key, r.status, r.attempts) for r in ledger.reset("meta_ads", keys=[7])]
            [('7', 'exhausted', 1)]
            >>> [(r.status, r.attempts, r.last_error) for r in ledger.records("meta_ads")]
            [('pending', 0, 'ConnectionError: 503 from upstream')]
        """
        if isinstance(statuses, str):
            statuses = (statuses,)
        wanted: set[str] = set()
        for status in statuses:
            name = "exhausted" if status == "quarantined" else status
            if name not in RESETTABLE:
                raise ConfigurationError.for_option(
                    "statuses",
                    status,
                    f"must be among {', '.join(RESETTABLE)} (a running partition is leased: "
                    "it becomes claimable when its lease expires)",
                )
            wanted.add(name)
        lo, hi = _range(start, end)
        with unit_of_work(self.store, name="ledger.reset") as tx:
            condition, params = self._only(tx, keys, periods)
            select = self._sql(tx, q.RECORDS_IN_RANGE, columns=", ".join(q.COLUMNS), only=condition)
            if tx.dialect == "postgres":
                select += " FOR UPDATE"
            found = [
                (row[3], _record(dict(zip(q.COLUMNS, row, strict=True))))
                for row in tx.fetchall(select, (q.source_text(source), lo, hi, *params))
            ]
            chosen = [(stored, r) for stored, r in found if r.status in wanted]
            if not dry_run and chosen:
                now = self._now()
                tx.executemany(
                    self._sql(tx, q.RESET),
                    [(now, *r.as_tuple(), stored) for stored, r in chosen],
                )
        return sorted((r for _, r in chosen), key=lambda r: (r.period, r.key))

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
        The message counts the gaps by status (``gaps()`` has each one's record).

        Examples:
            >>> import datetime as dt
            >>> from resilient_pipeline import SQLiteStore
            >>> ledger = PartitionLedger(SQLiteStore(":memory:"))
            >>> check = ledger.completeness_check("meta_ads", [1, 2])
            >>> check.run(params={"day": dt.date(2026, 11, 28)}).message
            'meta_ads: 2 of 2 partition(s) not succeeded (2 missing): 1/2026-11-28, 2/2026-11-28'
        """
        wanted = list(dict.fromkeys(keys))

        def body(context: CheckContext) -> CheckOutcome:
            lo = start if start is not None else context.params[period_param]
            hi = end if end is not None else context.params[period_param]
            if isinstance(lo, str) and isinstance(hi, str) and len(lo) == len(hi) == 10:
                lo, hi = dt.date.fromisoformat(lo), dt.date.fromisoformat(hi)
            gaps = self.gaps(source, wanted, lo, hi)
            total = len(wanted) * len(periods_of(lo, hi, None))
            shown = ", ".join(f"{g.key}/{g.period}" for g in gaps[:20])
            more = f" and {len(gaps) - 20} more" if len(gaps) > 20 else ""
            by_status = Counter(g.status for g in gaps)
            counts = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
            return CheckOutcome(
                [{"source": g.source, "key": g.key, "period": g.period} for g in gaps],
                message=f"{source}: {len(gaps)} of {total} partition(s) not succeeded "
                f"({counts}): {shown}{more}",
            )

        return Check(
            name=f"{source}_complete",
            severity=severity,
            body=body,
            action=f"missing/pending/failed: re-run the collector (or backfill()) for the range; "
            f"exhausted: read last_error, fix the cause, then `python -m resilient_pipeline "
            f"retry --db <db> --source {source} --start <day> --end <day>`; "
            "see docs/runbooks/daily-collection-incomplete.md",
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
    ) -> list[PartitionRecord]:
        """Every expected partition that is not ``succeeded``, with its record, by period then key.

        Expected partitions are ``keys`` x the dates from ``start`` to ``end``
        (or ``periods``). One never planned has ``status="missing"``; the
        others show status, attempts, last error (class, time), lease owner
        and expiry. Records have ``source``, ``key``, ``period`` and
        ``as_tuple()`` like a :class:`Partition`.
        """
        wanted = periods_of(start, end, periods)
        key_list = [q.key_text(k) for k in dict.fromkeys(keys)]
        if not wanted or not key_list:
            return []
        rows: list[tuple[Any, ...]] = []
        others: list[tuple[Any, ...]] = []
        with unit_of_work(self.store, name="ledger.gaps") as tx:
            if self._readable(tx):  # no ledger yet: every expected partition is missing
                concat = "string_agg" if tx.dialect == "postgres" else "group_concat"
                rows = tx.fetchall(
                    self._sql(tx, q.SUCCEEDED_IN_RANGE, concat=concat),
                    (q.SEPARATOR, q.source_text(source), wanted[0], wanted[-1]),
                )
                others = tx.fetchall(
                    self._sql(tx, q.NOT_SUCCEEDED_IN_RANGE, columns=", ".join(q.COLUMNS), only=""),
                    (q.source_text(source), wanted[0], wanted[-1]),
                )
        known = {(r[1], r[2]): r for r in others}
        done = dict(rows)
        expected = set(key_list)
        gaps: list[PartitionRecord] = []
        for period in wanted:
            joined = done.get(period)
            missing = expected - set(joined.split(q.SEPARATOR)) if joined else expected
            for key in key_list:
                if key not in missing:
                    continue
                row = known.get((key, period))
                if row is None:
                    gaps.append(
                        PartitionRecord(partition=Partition(source, key, period), status="missing")
                    )
                else:
                    gaps.append(_record(dict(zip(q.COLUMNS, row, strict=True))))
        return gaps

    def records(
        self, source: str, start: object = None, end: object = None
    ) -> list[PartitionRecord]:
        """The ledger rows of ``source`` in [start, end] (all periods by default).

        Like :meth:`gaps`, :meth:`sources` and :meth:`restatements`, it never
        creates the ledger's tables: without them there is nothing to read.
        """
        lo, hi = _range(start, end)
        with unit_of_work(self.store, name="ledger.records") as tx:
            if not self._readable(tx):
                return []
            rows = tx.fetchall(
                self._sql(tx, q.RECORDS_IN_RANGE, columns=", ".join(q.COLUMNS), only=""),
                (q.source_text(source), lo, hi),
            )
        records = [_record(dict(zip(q.COLUMNS, row, strict=True))) for row in rows]
        return sorted(records, key=lambda r: (r.partition.period, r.partition.key))

    def _statuses(self, source: str, start: object, end: object) -> list[tuple[str, str, Status]]:
        """``(key, period, status)`` of each row :meth:`records` would return, unsorted.

        What a backfill counts its work with: the states without building records.
        """
        lo, hi = _range(start, end)
        with unit_of_work(self.store, name="ledger.statuses") as tx:
            if not self._readable(tx):
                return []
            rows = tx.fetchall(
                self._sql(tx, q.RECORDS_IN_RANGE, columns="key, period, status", only=""),
                (q.source_text(source), lo, hi),
            )
        return [(key, period, normalize_status(status)) for key, period, status in rows]

    def sources(self) -> list[str]:
        """The sources with partitions in the ledger, sorted (``[]`` before the first plan).

        Examples:
            >>> from resilient_pipeline import SQLiteStore
            >>> ledger = PartitionLedger(SQLiteStore(":memory:"))
            >>> ledger.sources()
            []
            >>> _ = ledger.plan("meta_ads", [1], periods=["2026-11"])
            >>> ledger.sources()
            ['meta_ads']
        """
        with unit_of_work(self.store, name="ledger.sources") as tx:
            if not self._readable(tx):
                return []
            rows = tx.fetchall(self._sql(tx, q.SOURCES))
        return sorted(str(row[0]) for row in rows)

    def restatements(self, source: str, *, since: float = 0.0) -> list[Restatement]:
        """Restatements of ``source`` recorded at or after ``since`` (epoch seconds)."""
        with unit_of_work(self.store, name="ledger.restatements") as tx:
            if not self._readable(tx):
                return []
            rows = tx.fetchall(self._sql(tx, q.RESTATEMENTS_SINCE), (q.source_text(source), since))
        return [
            Restatement(
                partition=Partition(r[0], r[1], r[2]),
                run_id=r[3],
                restated_at=r[4],
                before_rows=r[5],
                after_rows=r[6],
                before_fingerprint=r[7],
                after_fingerprint=r[8],
                before_measure=r[9],
                after_measure=r[10],
            )
            for r in rows
        ]
