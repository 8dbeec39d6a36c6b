"""An async backfill's partitions carry the run's and the partition's context fields.

The sync path is tests/observability/test_context.py; the run's fields are
bound once per worker, the partition's per partition, on both paths.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from resilient_pipeline import Partition, PartitionLedger, SQLiteStore, backfill
from resilient_pipeline.observability import bound_context
from resilient_pipeline.testing import capture_events


def test_an_async_fetch_and_its_events_see_the_run_and_the_partition(tmp_path: Path) -> None:
    """Fetches in the event loop, a collected and a failed partition's events: all five fields."""
    seen: dict[str, dict[str, object]] = {}

    async def fetch(partition: Partition) -> list[dict[str, Any]]:
        seen[partition.key] = bound_context()
        if partition.key == "2":
            raise ConnectionError("upstream down")
        return [{"n": 1}]

    store = SQLiteStore(tmp_path / "context.db")
    try:
        with capture_events() as events:
            backfill(
                PartitionLedger(store),
                source="ads",
                keys=[1, 2],
                start=dt.date(2026, 11, 1),
                end=dt.date(2026, 11, 1),
                fetch=fetch,
                write=lambda tx, p, r: None,
                run_id="r1",
                progress=False,
                policies=(),
            )
    finally:
        store.close()
    fields = {
        key: {"run_id": "r1", "source": "ads", "partition_key": key, "period": "2026-11-01"}
        for key in ("1", "2")
    }
    assert {key: {**f, "attempt": 1} for key, f in fields.items()} == seen
    ended = {
        type(e).__name__: dict(e.context)
        for e in events
        if type(e).__name__ in ("PartitionCollected", "PartitionFailed")
    }
    assert {"PartitionCollected": "1", "PartitionFailed": "2"} == {
        name: context["partition_key"] for name, context in ended.items()
    }
    for context in ended.values():
        assert {**fields[str(context["partition_key"])], "attempt": 1} == context
    assert {} == bound_context()
