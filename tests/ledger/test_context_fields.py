"""Every partition's work carries the run's and the partition's context fields."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from resilient_pipeline import Partition, PartitionLedger, SQLiteStore, backfill
from resilient_pipeline.observability import bound_context

D1 = dt.date(2026, 11, 1)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_partitions_fetch_sees_the_run_and_the_partition(tmp_path: Path, kind: str) -> None:
    """run_id and source (bound per worker) and the partition's own fields, for every partition."""
    seen: list[dict[str, object]] = []

    def rows(partition: Partition) -> list[dict[str, Any]]:
        seen.append(bound_context())
        return [{"n": 1}]

    async def afetch(partition: Partition) -> list[dict[str, Any]]:
        return rows(partition)

    store = SQLiteStore(tmp_path / "context.db")
    try:
        backfill(
            PartitionLedger(store),
            source="ads",
            keys=[1, 2],
            start=D1,
            end=D1,
            fetch=rows if kind == "sync" else afetch,
            write=lambda tx, p, r: None,
            run_id="r1",
            concurrency=2,
            progress=False,
            policies=(),
        )
    finally:
        store.close()
    expected = [
        {
            "run_id": "r1",
            "source": "ads",
            "partition_key": key,
            "period": "2026-11-01",
            "attempt": 1,
        }
        for key in ("1", "2")
    ]
    assert expected == sorted(seen, key=lambda fields: str(fields["partition_key"]))
    assert bound_context() == {}
