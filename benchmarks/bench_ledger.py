"""Ledger benchmarks: gap detection over 1,000 keys x 365 days, and backfill bookkeeping overhead.

Run: .venv/bin/python benchmarks/bench_ledger.py   (PostgreSQL at RP_BENCH_POSTGRES_DSN or
postgresql://postgres@127.0.0.1:5432/test, in a throw-away schema).

1. gaps(): 365,000 expected partitions, 1% of them missing. Ours (one range query +
   set arithmetic in Python) vs the same answer computed in SQL (an anti-join
   against a generated calendar x keys). Goal: < 1 s on either backend.
2. Bookkeeping: backfill() of N partitions that each write 50 rows, vs the same
   fetch + write loop with no ledger (one unit of work per partition). Goal: < 10 %.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resilient_pipeline import (
    Partition,
    PartitionLedger,
    PostgresStore,
    SQLiteStore,
    backfill,
    unit_of_work,
)
from resilient_pipeline.storage import Store, Transaction

DSN = os.environ.get("RP_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
KEYS, DAYS = 1_000, 365
START = dt.date(2025, 1, 1)
END = START + dt.timedelta(days=DAYS - 1)
PARTITIONS, ROWS = 300, 50


def best_of(fn: Callable[[], object], runs: int = 3) -> float:
    """Median seconds of ``runs`` calls."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fill_ledger(store: Store, ledger: PartitionLedger) -> int:
    """365k succeeded partitions, minus every 100th: returns the number of gaps."""
    ledger.ensure_schema()
    days = [(START + dt.timedelta(days=d)).isoformat() for d in range(DAYS)]
    rows = [
        ("meta", str(k), day, 50, "fp", 0.0)
        for i, (day, k) in enumerate((day, k) for day in days for k in range(KEYS))
        if i % 100
    ]
    with unit_of_work(store) as tx:
        p = tx.placeholder
        tx.executemany(
            f"INSERT INTO {tx.table(ledger.table)} (source, key, period, status, row_count,"
            f" fingerprint, updated_at) VALUES ({p}, {p}, {p}, 'succeeded', {p}, {p}, {p})",
            rows,
        )
    return KEYS * DAYS - len(rows)


def sql_gaps(store: Store, ledger: PartitionLedger) -> int:
    """The peer: the same gaps computed in SQL (calendar x keys anti-join)."""
    with unit_of_work(store) as tx:
        t = tx.table(ledger.table)
        p = tx.placeholder
        if tx.dialect == "postgres":
            query = (
                "SELECT count(*) FROM generate_series(%s::date, %s::date, '1 day') AS d(day)"
                " CROSS JOIN generate_series(0, %s) AS k(key)"
                f" WHERE NOT EXISTS (SELECT 1 FROM {t} l WHERE l.source = 'meta'"
                " AND l.period = to_char(d.day, 'YYYY-MM-DD') AND l.key = k.key::text"
                " AND l.status = 'succeeded')"
            )
            params: tuple[Any, ...] = (START, END, KEYS - 1)
        else:
            query = (
                f"WITH RECURSIVE d(day) AS (SELECT {p} UNION ALL SELECT date(day, '+1 day')"
                f" FROM d WHERE day < {p}), k(key) AS (SELECT 0 UNION ALL SELECT key + 1 FROM k"
                f" WHERE key < {p}) SELECT count(*) FROM d CROSS JOIN k WHERE NOT EXISTS"
                f" (SELECT 1 FROM {t} l WHERE l.source = 'meta' AND l.period = d.day"
                " AND l.key = CAST(k.key AS TEXT) AND l.status = 'succeeded')"
            )
            params = (START.isoformat(), END.isoformat(), KEYS - 1)
        row = tx.fetchone(query, params)
    assert row is not None
    return int(row[0])


def bench_gaps(name: str, store: Store) -> None:
    """Gap detection on one backend."""
    ledger = PartitionLedger(store, table=f"bench_{uuid.uuid4().hex[:8]}")
    missing = fill_ledger(store, ledger)
    keys = range(KEYS)
    found = len(ledger.gaps("meta", keys, START, END))
    assert found == missing == sql_gaps(store, ledger), (found, missing)
    ours = best_of(lambda: ledger.gaps("meta", keys, START, END))
    peer = best_of(lambda: sql_gaps(store, ledger))
    verdict = "met" if ours < 1.0 else "NOT met"
    print(
        f"{name:<10} gaps() over {KEYS * DAYS:,} partitions ({missing:,} gaps): "
        f"ours {ours * 1000:7.1f} ms | SQL anti-join {peer * 1000:7.1f} ms | "
        f"ratio {peer / ours:4.2f}x | goal < 1 s {verdict}"
    )


def bench_bookkeeping(name: str, store: Store) -> None:
    """Backfill with the ledger vs the same work without it."""
    with unit_of_work(store) as tx:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {tx.table('bench_kpi')} "
            "(source TEXT, key TEXT, period TEXT, n INTEGER, spend DOUBLE PRECISION)"
        )
    payload = [{"n": n, "spend": n * 1.5} for n in range(ROWS)]

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        return payload

    def write(tx: Transaction, partition: Partition, rows: list[dict[str, Any]]) -> None:
        p = tx.placeholder
        tx.executemany(
            f"INSERT INTO {tx.table('bench_kpi')} VALUES ({p}, {p}, {p}, {p}, {p})",
            [(*partition.as_tuple(), r["n"], r["spend"]) for r in rows],
        )

    keys = [str(k) for k in range(PARTITIONS // 10)]
    days = [START + dt.timedelta(days=d) for d in range(10)]

    def plain() -> None:
        for day in days:
            for key in keys:
                partition = Partition("plain", key, day)
                rows = fetch(partition)
                with unit_of_work(store) as tx:
                    write(tx, partition, rows)

    def ours() -> None:
        ledger = PartitionLedger(store, table=f"bench_{uuid.uuid4().hex[:8]}")
        backfill(
            ledger,
            source="ours",
            keys=keys,
            start=days[0],
            end=days[-1],
            fetch=fetch,
            write=write,
            concurrency=1,
            progress=False,
            policies=(),
        )

    # Interleaved, medians: commits (fsync) dominate and the machine is shared.
    plain_times, ours_times = [], []
    for _ in range(5):
        plain_times.append(best_of(plain, runs=1))
        ours_times.append(best_of(ours, runs=1))
    base, with_ledger = statistics.median(plain_times), statistics.median(ours_times)
    overhead = with_ledger / base - 1
    verdict = "met" if overhead < 0.10 else "NOT met"
    print(
        f"{name:<10} backfill {PARTITIONS} partitions x {ROWS} rows: "
        f"no ledger {base / PARTITIONS * 1e6:7.0f} us/partition | "
        f"with ledger {with_ledger / PARTITIONS * 1e6:7.0f} us/partition | "
        f"overhead {overhead:+.1%} | goal < 10 % {verdict}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteStore(Path(tmp) / "bench.db")
        bench_gaps("SQLite", sqlite)
        bench_bookkeeping("SQLite", sqlite)
        sqlite.close()
    try:
        import psycopg

        schema = f"rp_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:
        print(f"PostgreSQL skipped: {exc}")
        return
    pg = PostgresStore(DSN, schema=schema)
    try:
        bench_gaps("PostgreSQL", pg)
        bench_bookkeeping("PostgreSQL", pg)
    finally:
        pg.close()
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
