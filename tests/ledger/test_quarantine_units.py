"""Concurrent backfills never leave a stale quarantine record for a unit collected whole."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from resilient_pipeline import Partition, PartitionLedger, backfill
from resilient_pipeline.ledger import BackfillReport
from resilient_pipeline.storage import Store, Transaction
from resilient_pipeline.validation import (
    CheckedUnit,
    Collection,
    Field,
    PartitionContract,
    QuarantineRecord,
    SQLQuarantine,
    Validator,
    unit_of_record,
)
from resilient_pipeline.validation.rules import ge

DAY = dt.date(2026, 11, 28)
CONTRACT = PartitionContract(
    collections={
        "campaigns": Collection(validator=Validator(fields={"spend": Field(float, ge(0))})),
        "conversions": Collection(validator=Validator(fields={"conversions": Field(int)})),
    }
)
WHOLE = {"campaigns": [{"spend": 2.5}], "conversions": [{"conversions": 1}]}
INVALID = {"campaigns": [{"spend": -1.0}], "conversions": [{"conversions": 1}]}
INCOMPLETE = {"campaigns": [{"spend": 2.5}]}  # the conversions never came
WAIT = 20.0  # seconds: a bound on waiting for the other worker, never a sleep


def run_in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    """Start ``fn`` in a thread; its result (or exception) lands in the list."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # surfaced by the test
            out.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def units(sink: SQLQuarantine) -> list[tuple[str, str]]:
    """(unit id, verdict) of every quarantine record."""
    found = []
    for record in sink.records(source="ads"):
        unit = unit_of_record(record)
        assert unit is not None
        found.append((unit.unit_id, unit.verdict))
    return sorted(found)


@pytest.mark.parametrize(
    ("answer", "max_attempts", "status"),
    [(INVALID, 3, "failed"), (INCOMPLETE, 1, "exhausted")],
    ids=["invalid", "incomplete-exhausted"],
)
def test_a_unit_quarantined_by_another_worker_after_this_run_started_is_discarded(
    any_store: Store, answer: dict[str, Any], max_attempts: int, status: str
) -> None:
    """Worker B starts (its quarantine read at start is empty); worker A then sets unit 2
    aside; B collects unit 2 whole: A's record goes, in B's commit, not left stale."""
    sink = SQLQuarantine(any_store)
    written: list[tuple[str, str]] = []
    b_fetching, a_done = threading.Event(), threading.Event()

    def write(tx: Transaction, partition: Partition, unit: CheckedUnit) -> None:
        written.append((partition.key, partition.period))

    def fetch_b(partition: Partition) -> dict[str, Any]:
        if partition.key == "1":
            b_fetching.set()
            assert a_done.wait(WAIT), "worker A did not finish"
        return WHOLE

    def fetch_a(partition: Partition) -> dict[str, Any]:
        return answer

    options: dict[str, Any] = {
        "source": "ads",
        "start": DAY,
        "end": DAY,
        "write": write,
        "contract": CONTRACT,
        "quarantine": sink,
        "policies": (),
        "progress": False,
        "concurrency": 1,
    }
    ledger_a = PartitionLedger(any_store, max_attempts=max_attempts, worker_id="A")
    ledger_b = PartitionLedger(any_store, max_attempts=max_attempts, worker_id="B")
    ledger_a.plan("ads", [1, 2], DAY, DAY)
    thread, out = run_in_thread(
        lambda: backfill(
            ledger_b,
            keys=[1, 2],
            fetch=fetch_b,
            include_exhausted=status == "exhausted",
            **options,
        )
    )
    assert b_fetching.wait(WAIT), "worker B never fetched unit 1"
    try:
        report_a = backfill(ledger_a, keys=[2], fetch=fetch_a, **options)
    finally:
        a_done.set()
    thread.join(WAIT)
    assert not thread.is_alive()
    [report_b] = out
    assert isinstance(report_b, BackfillReport)
    # A set unit 2 aside ...
    assert [("2", status, True)] == [
        (f.partition.key, f.status, f.quarantine_id is not None) for f in report_a.failures
    ]
    # ... B collected both whole afterwards, so nothing waits in quarantine.
    assert [("1", "new"), ("2", "new")] == [(p.key, o) for p, o in report_b.collected]
    assert [("1", "2026-11-28"), ("2", "2026-11-28")] == sorted(written)
    assert [] == units(sink)
    assert {("1", "succeeded"), ("2", "succeeded")} == {
        (r.key, r.status) for r in ledger_b.records("ads")
    }


class WatchingSink(SQLQuarantine):
    """A SQL quarantine that notes the ledger's status of each unit when it is put."""

    statuses: list[tuple[str, str]]
    ledger: PartitionLedger | None = None

    def put(self, records: Sequence[QuarantineRecord]) -> None:
        assert self.ledger is not None
        for record in records:
            unit = unit_of_record(record)
            assert unit is not None
            [row] = [r for r in self.ledger.records("ads") if str(r.partition) == unit.unit_id]
            self.statuses.append((unit.unit_id, row.status))
        super().put(records)


def test_an_exhausted_unit_is_set_aside_before_the_ledger_releases_it(any_store: Store) -> None:
    """The record exists before the partition reads 'exhausted' (claimable by another worker)."""
    ledger = PartitionLedger(any_store, max_attempts=2)
    sink = WatchingSink(any_store)
    sink.statuses = []
    sink.ledger = ledger
    options: dict[str, Any] = {
        "source": "ads",
        "keys": [7],
        "start": DAY,
        "end": DAY,
        "fetch": lambda p: INCOMPLETE,
        "write": lambda tx, p, unit: None,
        "contract": CONTRACT,
        "quarantine": sink,
        "policies": (),
        "progress": False,
    }
    first = backfill(ledger, **options)
    second = backfill(ledger, **options)
    assert [("failed", None)] == [(f.status, f.quarantine_id) for f in first.failures]
    [failure] = second.failures
    assert "exhausted" == failure.status
    assert failure.quarantine_id is not None
    # Put while the worker still held the lease: the row was not yet exhausted.
    assert [("ads/7/2026-11-28", "running")] == sink.statuses
    assert [("ads/7/2026-11-28", "incomplete")] == units(sink)


def test_a_look_back_recheck_discards_a_record_left_by_a_failed_recheck(any_store: Store) -> None:
    """A succeeded unit whose re-check was set aside (error kept) loses the record when a
    later re-check, started before the record was written, collects it whole."""
    sink = SQLQuarantine(any_store)
    ledger = PartitionLedger(any_store)
    b_fetching, a_done = threading.Event(), threading.Event()
    options: dict[str, Any] = {
        "source": "ads",
        "start": DAY,
        "end": DAY,
        "write": lambda tx, p, unit: None,
        "contract": CONTRACT,
        "quarantine": sink,
        "policies": (),
        "progress": False,
        "concurrency": 1,
        "lookback": 1,
    }
    backfill(ledger, keys=[1, 2], fetch=lambda p: WHOLE, **options)  # both succeeded

    def fetch_b(partition: Partition) -> dict[str, Any]:
        if partition.key == "1":
            b_fetching.set()
            assert a_done.wait(WAIT), "worker A did not finish"
        return WHOLE

    def fetch_a(partition: Partition) -> dict[str, Any]:
        return INVALID if partition.key == "2" else WHOLE

    ledger_b = PartitionLedger(any_store, worker_id="B")
    thread, out = run_in_thread(lambda: backfill(ledger_b, keys=[1, 2], fetch=fetch_b, **options))
    assert b_fetching.wait(WAIT), "worker B never fetched unit 1"
    try:
        report_a = backfill(
            PartitionLedger(any_store, worker_id="A"), keys=[2], fetch=fetch_a, **options
        )
    finally:
        a_done.set()
    thread.join(WAIT)
    assert not thread.is_alive()
    [report_b] = out
    assert isinstance(report_b, BackfillReport)
    assert [("2", "succeeded")] == [(f.partition.key, f.status) for f in report_a.failures]
    assert [("1", "unchanged"), ("2", "unchanged")] == [(p.key, o) for p, o in report_b.collected]
    assert [] == units(sink)
    assert [None, None] == [r.last_error for r in ledger.records("ads")]
