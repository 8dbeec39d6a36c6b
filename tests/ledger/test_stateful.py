"""Hypothesis state machine of the ledger: several workers, crashes, lease expiry, heartbeats.

The model is written independently of the ledger's SQL: a dict per partition
(status, attempts, crashes, lease holder and expiry, run id, committed data)
and, per worker, the leases it believes it holds. Every rule calls the real
ledger (SQLite file) and compares its answer with the model's prediction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilient_pipeline import Partition, PartitionLedger, SQLiteStore, unit_of_work
from resilient_pipeline.exceptions import LeaseLostError
from resilient_pipeline.ledger import Claimed
from resilient_pipeline.testing import FakeClock

KEYS = ["1", "2"]
DAYS = ["2026-11-27", "2026-11-28"]
PARTITIONS = [Partition("meta", k, d) for d in DAYS for k in KEYS]
LEASE = 10.0
MAX_ATTEMPTS = 3
SLOTS = st.integers(0, 2)


@attrs.define
class Row:
    """The model of one partition's ledger row."""

    status: str = "pending"
    attempts: int = 0
    crashes: int = 0
    holder: str | None = None
    expires: float | None = None
    run_id: str = ""
    data: int | None = None  # the committed data version; None: never committed


@attrs.define
class Worker:
    """A worker process: its id, its current run, and the leases it believes it holds."""

    worker_id: str
    run_id: str
    ledger: PartitionLedger
    held: dict[Partition, float] = attrs.Factory(dict)
    claims: dict[Partition, Claimed] = attrs.Factory(dict)


class LedgerMachine(RuleBasedStateMachine):
    """The ledger against an independent model, under concurrent workers and crashes."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.clock = FakeClock()
        self.store = SQLiteStore(Path(self.dir.name) / "l.db")
        with unit_of_work(self.store) as tx:
            tx.execute("CREATE TABLE data (key TEXT, period TEXT, version INTEGER)")
        self.generation = 0
        self.workers = [self.spawn(slot) for slot in range(3)]
        self.workers[0].ledger.plan("meta", KEYS, periods=DAYS)
        self.rows = {p: Row() for p in PARTITIONS}
        self.upstream = dict.fromkeys(PARTITIONS, 0)  # the data upstream would answer now

    def spawn(self, slot: int) -> Worker:
        """A new worker process in ``slot`` (a new id, a new run)."""
        self.generation += 1
        worker_id = f"w{slot}-{self.generation}"
        ledger = PartitionLedger(
            self.store,
            lease=LEASE,
            max_attempts=MAX_ATTEMPTS,
            clock=self.clock,
            worker_id=worker_id,
        )
        return Worker(worker_id, f"run-{self.generation}", ledger)

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    @property
    def now(self) -> float:
        return self.clock.time()

    # ----------------------------------------------------------- predictions
    def claimable(self, worker: Worker, *, exhausted: bool, lookback: bool) -> list[Partition]:
        """What a claim may take, group by group (new, failed, expired, exhausted, re-checks),
        each group by period then key."""

        def may(p: Partition) -> bool:
            row = self.rows[p]
            if row.status == "pending":
                return True
            if row.status == "failed" or (row.status == "exhausted" and exhausted):
                return row.run_id != worker.run_id
            if row.status == "running":
                return row.expires is not None and row.expires < self.now
            if row.status == "succeeded" and lookback:
                free = row.expires is None or row.expires < self.now
                return row.run_id != worker.run_id and free
            return False

        rank = {"pending": 0, "failed": 1, "running": 2, "exhausted": 3, "succeeded": 4}
        order = sorted(PARTITIONS, key=lambda p: (rank[self.rows[p].status], p.period, p.key))
        return [p for p in order if may(p)]

    # ------------------------------------------------------------------ rules
    @rule(slot=SLOTS, exhausted=st.booleans(), lookback=st.booleans())
    def claim(self, slot: int, exhausted: bool, lookback: bool) -> None:
        """A worker claims one partition (or none); exactly the one the model expects."""
        worker = self.workers[slot]
        expected = self.claimable(worker, exhausted=exhausted, lookback=lookback)
        got = worker.ledger.claim_many(
            "meta",
            run_id=worker.run_id,
            limit=1,
            include_exhausted=exhausted,
            recheck=DAYS if lookback else None,
        )
        assert expected[:1] == [c.partition for c in got]
        for claimed in got:
            row = self.rows[claimed.partition]
            assert (row.holder is not None) == claimed.recovered
            row.crashes += 1 if row.holder is not None else 0
            if row.status != "succeeded":
                row.status = "running"
            row.holder, row.expires, row.run_id = worker.worker_id, self.now + LEASE, worker.run_id
            worker.held[claimed.partition] = self.now + LEASE
            worker.claims[claimed.partition] = claimed

    @precondition(lambda self: any(w.held for w in self.workers))
    @rule(slot=SLOTS, data=st.data())
    def succeed(self, slot: int, data: st.DataObject) -> None:
        """A worker commits a held partition's data with its ledger row, or loses its lease."""
        worker = self.workers[slot]
        if not worker.held:
            return
        partition = data.draw(st.sampled_from(sorted(worker.held)))
        version = self.upstream[partition]
        rows = [{"version": version}]
        del worker.held[partition]
        claimed = worker.claims.pop(partition)
        row = self.rows[partition]

        def commit() -> str:
            with unit_of_work(self.store) as tx:
                where = (partition.key, partition.period)
                tx.execute("DELETE FROM data WHERE key = ? AND period = ?", where)
                tx.execute("INSERT INTO data VALUES (?, ?, ?)", (*where, version))
                return worker.ledger.succeed_claimed(
                    tx,
                    claimed,
                    rows=rows,
                    fingerprint=str(version),
                    duration=0.0,
                    run_id=worker.run_id,
                )

        if row.holder != worker.worker_id:
            with pytest.raises(LeaseLostError):
                commit()
            return
        outcome = commit()
        before = row.data
        expected = "new" if before is None else ("unchanged" if before == version else "restated")
        assert expected == outcome
        row.status, row.data, row.holder, row.expires = "succeeded", version, None, None
        row.run_id = worker.run_id

    @precondition(lambda self: any(w.held for w in self.workers))
    @rule(slot=SLOTS, counted=st.booleans(), data=st.data())
    def fail(self, slot: int, counted: bool, data: st.DataObject) -> None:
        """A worker records a failure of a held partition (an attempt only if ``counted``)."""
        worker = self.workers[slot]
        if not worker.held:
            return
        partition = data.draw(st.sampled_from(sorted(worker.held)))
        del worker.held[partition]
        del worker.claims[partition]
        row = self.rows[partition]
        error = ConnectionError("503 upstream")
        if row.holder not in (None, worker.worker_id):
            with pytest.raises(LeaseLostError):
                worker.ledger.fail(partition, error, run_id=worker.run_id, counted=counted)
            return
        status = worker.ledger.fail(partition, error, run_id=worker.run_id, counted=counted)
        if row.status != "succeeded":
            row.attempts += 1 if counted else 0
            row.status = "exhausted" if row.attempts >= MAX_ATTEMPTS else "failed"
        assert row.status == status
        row.holder, row.expires, row.run_id = None, None, worker.run_id

    @rule(slot=SLOTS)
    def heartbeat(self, slot: int) -> None:
        """A worker renews its leases; it loses exactly those another worker took over."""
        worker = self.workers[slot]
        held = sorted(worker.held)
        lost = worker.ledger.renew(held)
        assert sorted(p for p in held if self.rows[p].holder != worker.worker_id) == sorted(lost)
        for partition in held:
            if partition in lost:
                del worker.held[partition]
                del worker.claims[partition]
            else:
                self.rows[partition].expires = worker.held[partition] = self.now + LEASE

    @rule(slot=SLOTS)
    def crash(self, slot: int) -> None:
        """A worker is killed holding its leases; a new process takes its slot."""
        self.workers[slot] = self.spawn(slot)

    @rule(slot=SLOTS)
    def new_run(self, slot: int) -> None:
        """A worker starts another run (a failed partition is claimable again)."""
        worker = self.workers[slot]
        self.generation += 1
        worker.run_id = f"run-{self.generation}"

    @rule(seconds=st.sampled_from([1.0, LEASE / 3, LEASE, LEASE + 1]))
    def advance(self, seconds: float) -> None:
        """Time passes; leases may expire."""
        self.clock.advance(seconds)

    @rule(partition=st.sampled_from(PARTITIONS))
    def restate(self, partition: Partition) -> None:
        """Upstream changes a partition's data."""
        self.upstream[partition] += 1

    @rule(statuses=st.sets(st.sampled_from(["failed", "exhausted", "succeeded"]), min_size=1))
    def reset(self, statuses: set[str]) -> None:
        """An operator resets partitions in ``statuses`` to pending, attempts 0."""
        got = self.workers[0].ledger.reset("meta", statuses=sorted(statuses))
        expected = [
            p
            for p in sorted(PARTITIONS, key=lambda p: (p.period, p.key))
            if self.rows[p].status in statuses
        ]
        assert expected == [r.partition for r in got]
        for partition in expected:
            row = self.rows[partition]
            row.status, row.attempts, row.holder, row.expires = "pending", 0, None, None

    # ------------------------------------------------------------- invariants
    @invariant()
    def ledger_matches_the_model(self) -> None:
        """Status, attempts (real failures only) and crashes are the model's, value by value."""
        records = {r.partition: r for r in self.workers[0].ledger.records("meta")}
        expected = {p: (r.status, r.attempts, r.crashes, r.holder) for p, r in self.rows.items()}
        actual = {p: (r.status, r.attempts, r.crashes, r.lease_owner) for p, r in records.items()}
        assert expected == actual

    @invariant()
    def every_non_succeeded_partition_is_a_gap(self) -> None:
        """gaps() lists exactly the partitions not succeeded, with their status."""
        gaps = self.workers[0].ledger.gaps("meta", KEYS, periods=DAYS)
        expected = [(p, r.status) for p, r in self.rows.items() if r.status != "succeeded"]
        assert sorted(expected) == sorted((g.partition, g.status) for g in gaps)

    @invariant()
    def succeeded_only_with_its_data(self) -> None:
        """The data table holds exactly the committed version of every partition ever succeeded."""
        with unit_of_work(self.store) as tx:
            stored = {(k, p): v for k, p, v in tx.fetchall("SELECT key, period, version FROM data")}
        expected = {(p.key, p.period): r.data for p, r in self.rows.items() if r.data is not None}
        assert expected == stored
        for partition, row in self.rows.items():
            if row.status == "succeeded":
                assert (partition.key, partition.period) in stored

    @invariant()
    def no_partition_is_held_by_two_live_workers(self) -> None:
        """At most one live worker believes it holds an unexpired lease on a partition."""
        for partition in PARTITIONS:
            holders = [w.worker_id for w in self.workers if w.held.get(partition, -1.0) >= self.now]
            assert len(holders) <= 1, (partition, holders)


LedgerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_ledger_state_machine = LedgerMachine.TestCase
