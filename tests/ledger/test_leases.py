"""Leases that follow the work: a heartbeat renews them, a claim takes only what starts now."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest

from resilient_pipeline import (
    ConfigurationError,
    Partition,
    PartitionLedger,
    SQLiteStore,
    abackfill,
    backfill,
)
from resilient_pipeline.testing import FakeClock

DAY = dt.date(2026, 11, 28)


class SignallingLedger(PartitionLedger):
    """A ledger that tells the test each time the heartbeat renewed its leases."""

    renewed: anyio.Event

    def renew(self, partitions: Any) -> list[Partition]:
        lost = super().renew(partitions)
        anyio.from_thread.run_sync(self.renewed.set)
        return lost


@pytest.mark.anyio
async def test_the_heartbeat_keeps_a_long_fetch_leased(tmp_path: Path) -> None:
    """A fetch lasting twice the lease keeps its partition; another worker cannot take it."""
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "h.db")
    ledger = SignallingLedger(store, lease=30, clock=clock, worker_id="A")
    other = PartitionLedger(store, lease=30, clock=clock, worker_id="B")

    async def fetch(partition: Partition) -> list[dict[str, Any]]:
        for _ in range(3):  # 60 s of fake time: twice the lease
            clock.advance(20)
            ledger.renewed = anyio.Event()
            with anyio.fail_after(10):
                await ledger.renewed.wait()
            taken = await anyio.to_thread.run_sync(lambda: other.claim("meta", run_id="B"))
            assert taken is None
        return [{"n": 1}]

    ledger.renewed = anyio.Event()
    report = await abackfill(
        ledger,
        source="meta",
        keys=["1"],
        start=DAY,
        end=DAY,
        fetch=fetch,
        write=lambda tx, partition, rows: None,
        heartbeat=0.01,
        policies=(),
        progress=False,
    )
    assert [(Partition("meta", "1", DAY), "new")] == list(report.collected)
    assert ((), ()) == (report.lost, report.failures)
    store.close()


def test_each_worker_slot_claims_only_what_it_starts(tmp_path: Path) -> None:
    """With 2 workers, never more than 2 partitions are leased: a crash strands at most 2."""
    store = SQLiteStore(tmp_path / "c.db")
    ledger = PartitionLedger(store)
    leased: list[int] = []

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        leased.append(sum(r.status == "running" for r in ledger.records("meta")))
        return [{"n": 1}]

    report = backfill(
        ledger,
        source="meta",
        keys=range(8),
        start=DAY,
        end=DAY,
        fetch=fetch,
        write=lambda tx, partition, rows: None,
        concurrency=2,
        policies=(),
        progress=False,
    )
    assert 8 == report.count("new")
    assert 8 == len(leased)
    assert 1 <= max(leased) <= 2
    store.close()


@pytest.mark.parametrize(("heartbeat", "lease"), [(0, 30), (30, 30), (-1, 30)])
def test_a_heartbeat_slower_than_the_lease_is_refused(
    tmp_path: Path, heartbeat: float, lease: float
) -> None:
    """A heartbeat that cannot keep the lease alive names the option."""
    store = SQLiteStore(tmp_path / "x.db")
    with pytest.raises(ConfigurationError) as info:
        anyio.run(
            lambda: abackfill(
                PartitionLedger(store, lease=lease),
                source="s",
                keys=["1"],
                start=DAY,
                end=DAY,
                fetch=lambda p: [],
                write=lambda tx, p, rows: None,
                heartbeat=heartbeat,
                progress=False,
            )
        )
    assert "heartbeat" == info.value.option
    store.close()
