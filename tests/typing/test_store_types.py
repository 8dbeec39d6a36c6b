"""Checked by ``mypy --strict``: stores, upserts, the ledger and checks keep precise types."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from typing_extensions import assert_type

from resilient_pipeline import (
    CheckReport,
    Partition,
    PartitionLedger,
    PostgresStore,
    SQLiteStore,
    backfill,
    checks,
    idempotent_upsert,
    monitor,
    unit_of_work,
)
from resilient_pipeline.ledger import BackfillReport, PartitionRecord
from resilient_pipeline.storage import UpsertResult
from resilient_pipeline.testing import MemoryNotifier


def check_stores() -> None:
    store = SQLiteStore("kpi.sqlite3")
    rows = [{"client_id": "01", "date": "2026-11-28", "platform": "meta", "clicks": 3}]
    assert_type(idempotent_upsert(store, "kpi", rows), UpsertResult)
    with unit_of_work(store) as tx:
        assert_type(tx.upsert("kpi", rows, key=("client_id", "date", "platform")), UpsertResult)
        assert_type(idempotent_upsert(tx, "kpi", rows), UpsertResult)
        assert_type(tx.once("alert sent for 2026-11-28"), bool)
        assert_type(tx.execute("DELETE FROM kpi WHERE date < ?", ("2026-01-01",)), int)

    @idempotent_upsert(store, table="kpi")
    def collect(day: str) -> list[dict[str, object]]:
        return [{"date": day}]

    assert_type(collect("2026-11-28"), UpsertResult)
    assert_type(PostgresStore("postgresql://etl@db/kpi", schema="analytics").schema, str | None)


def check_ledger() -> None:
    ledger = PartitionLedger(SQLiteStore(":memory:"))
    day = dt.date(2026, 11, 28)
    assert_type(ledger.gaps("meta_ads", ["01"], day, day), list[PartitionRecord])

    def fetch(partition: Partition) -> list[dict[str, object]]:
        return []

    def write(tx: object, partition: Partition, rows: Sequence[Mapping[str, object]]) -> None:
        pass

    report = backfill(
        ledger, source="meta_ads", keys=["01"], start=day, end=day, fetch=fetch, write=write
    )
    assert_type(report, BackfillReport)
    checked = monitor([checks.completeness(expected=["01"])], alerter=MemoryNotifier())
    assert_type(checked, CheckReport)
