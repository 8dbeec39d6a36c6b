"""``limit=``: a backfill run claims at most that many partitions and leaves the rest as gaps."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from resilient_pipeline import ConfigurationError, PartitionLedger, SQLiteStore, abackfill, backfill
from resilient_pipeline.ledger import Partition

START, END = dt.date(2026, 11, 1), dt.date(2026, 11, 5)
KEYS = [1, 2]  # 2 keys x 5 days = 10 partitions


def rows(p: Partition) -> list[dict[str, Any]]:
    return [{"key": p.key, "day": p.period, "spend": float(p.key)}]


def test_each_run_claims_at_most_its_limit_and_the_rest_stay_gaps() -> None:
    ledger = PartitionLedger(SQLiteStore(":memory:"))
    written: list[tuple[str, str]] = []

    def run(limit: int | None) -> list[tuple[str, str]]:
        report = backfill(
            ledger,
            source="meta",
            keys=KEYS,
            start=START,
            end=END,
            fetch=rows,
            write=lambda tx, p, r: written.append((p.key, p.period)),
            concurrency=3,
            limit=limit,
            progress=False,
        )
        return [(p.key, p.period) for p, _ in report.collected]

    first, second = run(4), run(4)
    assert 4 == len(first) == len(set(first))
    assert 4 == len(second)
    assert not set(first) & set(second)
    assert 2 == len(ledger.gaps("meta", KEYS, START, END))
    third = run(None)
    assert 2 == len(third)
    days = [(START + dt.timedelta(days=d)).isoformat() for d in range(5)]
    expected = {(str(k), day) for k in KEYS for day in days}
    assert expected == set(first) | set(second) | set(third) == set(written)
    assert [] == ledger.gaps("meta", KEYS, START, END)


@pytest.mark.anyio
async def test_async_backfill_honours_the_limit_across_concurrent_workers() -> None:
    ledger = PartitionLedger(SQLiteStore(":memory:"))

    async def fetch(p: Partition) -> list[dict[str, Any]]:
        return rows(p)

    report = await abackfill(
        ledger,
        source="meta",
        keys=KEYS,
        start=START,
        end=END,
        fetch=fetch,
        write=lambda tx, p, r: None,
        concurrency=8,
        limit=3,
        progress=False,
    )
    assert 3 == report.count("new")
    assert 7 == len(ledger.gaps("meta", KEYS, START, END))


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3"])
def test_a_bad_limit_is_refused_by_name(bad: object) -> None:
    ledger = PartitionLedger(SQLiteStore(":memory:"))
    with pytest.raises(ConfigurationError, match="limit"):
        backfill(
            ledger,
            source="meta",
            keys=KEYS,
            start=START,
            end=END,
            fetch=rows,
            write=lambda tx, p, r: None,
            limit=bad,  # type: ignore[arg-type]
            progress=False,
        )
