"""Backfill with a partition contract: a unit is written whole, retried, or quarantined whole."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from resilient_pipeline import Partition, PartitionLedger, RetryPolicy, backfill, unit_of_work
from resilient_pipeline.storage import Store, Transaction
from resilient_pipeline.testing import FakeClock
from resilient_pipeline.validation import (
    CheckedUnit,
    Collection,
    Field,
    JSONLQuarantine,
    PartitionContract,
    Validator,
    unit_of_record,
)
from resilient_pipeline.validation.rules import ge

DAY = dt.date(2026, 11, 28)
CONTRACT = PartitionContract(
    collections={
        "campaigns": Collection(
            validator=Validator(fields={"campaign": Field(int), "spend": Field(float, ge(0))})
        ),
        "conversions": Collection(
            validator=Validator(fields={"campaign": Field(int), "conversions": Field(int, ge(0))})
        ),
    }
)


def make_tables(store: Store) -> None:
    """One table per collection."""
    with unit_of_work(store) as tx:
        for name in ("campaigns", "conversions"):
            columns = "key TEXT, campaign INTEGER, value DOUBLE PRECISION"
            tx.execute(f"CREATE TABLE {tx.table(name)} ({columns})")


def contents(store: Store) -> dict[str, list[tuple[str, int, float]]]:
    """Each table's rows."""
    with unit_of_work(store) as tx:
        return {
            name: sorted(tx.fetchall(f"SELECT key, campaign, value FROM {tx.table(name)}"))
            for name in ("campaigns", "conversions")
        }


class Platform:
    """Answers a unit per key: 'ok' complete, 'late' without conversions, 'bad' a negative spend."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.broken = {"late", "bad"}

    def fetch(self, partition: Partition) -> dict[str, Any]:
        self.calls.append(partition.key)
        campaigns = [{"campaign": 1, "spend": 12.5}]
        conversions = [{"campaign": 1, "conversions": 3}]
        if partition.key in self.broken and partition.key == "late":
            return {"campaigns": campaigns}  # the conversions endpoint gave no answer
        if partition.key in self.broken and partition.key == "bad":
            return {"campaigns": [{"campaign": 1, "spend": -1.0}], "conversions": conversions}
        return {"campaigns": campaigns, "conversions": conversions}


def write(tx: Transaction, partition: Partition, unit: CheckedUnit) -> None:
    """Write every collection of a complete unit in the unit of work."""
    for name, column in (("campaigns", "spend"), ("conversions", "conversions")):
        tx.executemany(
            f"INSERT INTO {tx.table(name)} VALUES ({', '.join([tx.placeholder] * 3)})",
            [(partition.key, row["campaign"], row[column]) for row in unit.rows(name)],
        )


def test_units_are_written_whole_retried_or_quarantined_whole(
    any_store: Store, tmp_path: Path
) -> None:
    """Incomplete: retried, exhausted, quarantined; invalid: quarantined whole, never written."""
    clock = FakeClock()
    ledger = PartitionLedger(any_store, clock=clock, max_attempts=2)
    sink = JSONLQuarantine(tmp_path / "q.jsonl")
    make_tables(any_store)
    platform = Platform()
    options: dict[str, Any] = {
        "source": "ads",
        "keys": ["ok", "late", "bad"],
        "start": DAY,
        "end": DAY,
        "fetch": platform.fetch,
        "write": write,
        "contract": CONTRACT,
        "quarantine": sink,
        "policies": (RetryPolicy(max_attempts=2, jitter=None, clock=clock),),
        "concurrency": 1,
        "progress": False,
    }
    first = backfill(ledger, **options)
    # An incomplete unit is retried by the policy (not permanent); an invalid one is not.
    assert ["bad", "late", "late", "ok"] == sorted(platform.calls)
    assert [(Partition("ads", "ok", DAY), "new")] == list(first.collected)
    assert {
        "campaigns": [("ok", 1, 12.5)],
        "conversions": [("ok", 1, 3.0)],
    } == contents(any_store)
    assert [("bad", "failed", 1), ("late", "failed", 1)] == [
        (f.partition.key, f.status, f.attempts) for f in first.failures
    ]
    [bad_record] = sink.records()
    bad = unit_of_record(bad_record)
    assert bad is not None
    assert ("ads/bad/2026-11-28", "invalid") == (bad.unit_id, bad.verdict)
    assert {
        "campaigns": [{"campaign": 1, "spend": -1.0}],
        "conversions": [{"campaign": 1, "conversions": 3}],
    } == bad.collections
    assert [f.quarantine_id for f in first.failures] == [bad_record.id, None]
    late = {r.key: r for r in ledger.records("ads")}["late"]
    assert late.error_class == "resilient_pipeline.exceptions.IncompletePartitionError"
    assert late.last_error is not None
    assert "conversions" in late.last_error

    second = backfill(ledger, **options)
    assert [("bad", "exhausted"), ("late", "exhausted")] == [
        (f.partition.key, f.status) for f in second.failures
    ]
    records = sink.records()
    units = {u.unit_id: u for u in map(unit_of_record, records) if u is not None}
    assert ["ads/bad/2026-11-28", "ads/late/2026-11-28"] == sorted(units)
    assert 2 == len(records)  # the newest answer replaced the first run's record
    assert "incomplete" == units["ads/late/2026-11-28"].verdict
    assert {"campaigns": [{"campaign": 1, "spend": 12.5}]} == units[
        "ads/late/2026-11-28"
    ].collections
    [alert] = second.alerts()
    assert "--keys bad,late" in alert.action
    assert {"campaigns": [("ok", 1, 12.5)], "conversions": [("ok", 1, 3.0)]} == contents(any_store)

    # The platform is fixed; the explicit retry collects both whole and clears their quarantine.
    platform.broken.clear()
    third = backfill(ledger, include_exhausted=True, **options)
    assert ["bad", "late"] == [p.key for p, outcome in third.collected if outcome == "new"]
    assert [] == sink.records()
    assert {
        "campaigns": [("bad", 1, 12.5), ("late", 1, 12.5), ("ok", 1, 12.5)],
        "conversions": [("bad", 1, 3.0), ("late", 1, 3.0), ("ok", 1, 3.0)],
    } == contents(any_store)
    assert [] == ledger.gaps("ads", ["ok", "late", "bad"], DAY, DAY)
