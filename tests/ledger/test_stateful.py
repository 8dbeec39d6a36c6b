"""Hypothesis state machine: under run/fail/crash/resume, gaps() is exactly what never committed."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from resilient_pipeline import Partition, PartitionLedger, SQLiteStore, backfill, unit_of_work
from resilient_pipeline.testing import FakeClock

KEYS = ["1", "2", "3"]
DAYS = [dt.date(2026, 11, 27), dt.date(2026, 11, 28)]
PARTITIONS = [Partition("meta", k, d) for d in DAYS for k in KEYS]


class Crash(Exception):
    """A simulated crash inside a unit of work."""


class LedgerMachine(RuleBasedStateMachine):
    """The ledger against a set model of committed partitions."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.clock = FakeClock()
        self.store = SQLiteStore(Path(self.dir.name) / "l.db")
        self.ledger = PartitionLedger(self.store, lease=60, clock=self.clock, max_attempts=100)
        self.committed: set[Partition] = set()

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    @rule(partition=st.sampled_from(PARTITIONS))
    def run(self, partition: Partition) -> None:
        """Collect one partition successfully."""
        self.ledger.start(partition)
        with unit_of_work(self.store) as tx:
            self.ledger.succeed(tx, partition, rows=[{"k": partition.key}])
        self.committed.add(partition)

    @rule(partition=st.sampled_from(PARTITIONS))
    def fail(self, partition: Partition) -> None:
        """A collection that fails is recorded as failed (unless it had succeeded before)."""
        if partition in self.committed:
            return
        self.ledger.start(partition)
        self.ledger.fail(partition, "OSError")

    @rule(partition=st.sampled_from(PARTITIONS))
    def crash(self, partition: Partition) -> None:
        """A process dies inside the unit of work: nothing of it commits."""
        if partition in self.committed:
            return
        self.ledger.start(partition)
        try:
            with unit_of_work(self.store) as tx:
                self.ledger.succeed(tx, partition, rows=[{"k": partition.key}])
                raise Crash
        except Crash:
            pass

    @rule()
    def resume(self) -> None:
        """Once leases expired, a backfill collects every remaining gap."""
        self.clock.advance(61)
        report = backfill(
            self.ledger,
            source="meta",
            keys=KEYS,
            start=DAYS[0],
            end=DAYS[-1],
            fetch=lambda p: [{"k": p.key}],
            write=lambda tx, p, rows: None,
            progress=False,
        )
        assert [] == list(report.failed)
        self.committed.update(PARTITIONS)

    @invariant()
    def gaps_are_exactly_the_uncommitted(self) -> None:
        """gaps() == expected partitions minus committed ones."""
        gaps = self.ledger.gaps("meta", KEYS, DAYS[0], DAYS[-1])
        assert sorted(set(PARTITIONS) - self.committed) == sorted(gaps)


LedgerMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
test_ledger_state_machine = LedgerMachine.TestCase
