"""idempotent_upsert vs its peers on 100,000 KPI-shaped rows, side by side in one process.

PostgreSQL (the server on this machine, a scratch schema dropped at the end):
ours vs psycopg ``executemany`` upsert vs row-by-row upsert vs a raw ``COPY``
into an UNLOGGED table without indexes (the physical limit). Three passes:
1 = all inserts, 2 = every row changed (all conflicts), 3 = identical rows.
SQLite (a file in WAL mode): ours vs raw ``executemany`` upsert.

Run: .venv/bin/python benchmarks/bench_upsert.py   (RP_BENCH_DSN overrides the DSN)
"""

from __future__ import annotations

import datetime
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from resilient_pipeline import PostgresStore, SQLiteStore, idempotent_upsert, unit_of_work

DSN = os.environ.get("RP_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")
N = 100_000
ROW_BY_ROW_N = 10_000  # row by row is ~50x slower: measured on a slice, reported per row
COLUMNS = ("client_id", "date", "platform", "impressions", "clicks", "spend", "conversions")
KEY = ("client_id", "date", "platform")
PG_DDL = (
    "CREATE {unlogged} TABLE {t} (client_id text NOT NULL, date date NOT NULL,"
    " platform text NOT NULL, impressions bigint, clicks integer, spend double precision,"
    " conversions integer{unique})"
)
SQLITE_DDL = (
    "CREATE TABLE kpi (client_id TEXT NOT NULL, date DATE NOT NULL, platform TEXT NOT NULL,"
    " impressions INTEGER, clicks INTEGER, spend REAL, conversions INTEGER,"
    " UNIQUE (client_id, date, platform))"
)


def kpi_rows(n: int, bump: int) -> list[dict[str, Any]]:
    start = datetime.date(2026, 1, 1)
    platforms = ("meta", "google", "tiktok", "linkedin", "x")
    rows = []
    for i in range(n):
        client, rest = divmod(i, 1000)
        day, platform = divmod(rest, 5)
        rows.append(
            {
                "client_id": f"client-{client:04d}",
                "date": start + datetime.timedelta(days=day),
                "platform": platforms[platform],
                "impressions": 1000 + i + bump,
                "clicks": 10 + i % 97 + bump,
                "spend": round(12.5 + (i % 113) * 0.37 + bump, 2),
                "conversions": i % 7 + bump,
            }
        )
    return rows


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


PASSES = (("1 insert", 0), ("2 all conflicts", 1), ("3 identical", 1))


def bench_postgres() -> dict[str, list[float]]:
    schema = f"rp_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(DSN, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    results: dict[str, list[float]] = {}
    try:
        store = PostgresStore(DSN, schema=schema)

        def make(name: str, *, unlogged: bool = False, unique: bool = True) -> str:
            table = f'"{schema}"."{name}"'
            admin.execute(
                PG_DDL.format(
                    t=table,
                    unlogged="UNLOGGED" if unlogged else "",
                    unique=", UNIQUE (client_id, date, platform)" if unique else "",
                )
            )
            return table

        cols = ", ".join(COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c not in KEY)
        placeholders = ", ".join(f"%({c})s" for c in COLUMNS)

        def upsert_sql(table: str) -> str:
            return (
                f"INSERT INTO {table} ({cols}) VALUES ({placeholders}) "
                f"ON CONFLICT (client_id, date, platform) DO UPDATE SET {updates}"
            )

        make("ours")
        em = make("executemany")
        rbr = make("row_by_row")
        raw = make("raw_copy", unlogged=True, unique=False)
        conn = psycopg.connect(DSN)
        for label, bump in PASSES:
            rows = kpi_rows(N, bump)
            tuples = [tuple(r[c] for c in COLUMNS) for r in rows]

            elapsed, result = timed(lambda rows=rows: idempotent_upsert(store, "ours", rows))
            print(f"  pg ours        pass {label:16} {N / elapsed:>10,.0f} rows/s  {result}")
            results.setdefault("ours", []).append(N / elapsed)

            def executemany(rows: list[dict[str, Any]] = rows) -> None:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(upsert_sql(em), rows)

            elapsed, _ = timed(executemany)
            results.setdefault("executemany", []).append(N / elapsed)

            def row_by_row(rows: list[dict[str, Any]] = rows) -> None:
                with conn.transaction(), conn.cursor() as cur:
                    for row in rows[:ROW_BY_ROW_N]:
                        cur.execute(upsert_sql(rbr), row)

            elapsed, _ = timed(row_by_row)
            results.setdefault("row_by_row", []).append(ROW_BY_ROW_N / elapsed)

            def raw_copy(tuples: list[tuple[Any, ...]] = tuples) -> None:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(f"TRUNCATE {raw}")
                    with cur.copy(f"COPY {raw} ({cols}) FROM STDIN") as copy:
                        for t in tuples:
                            copy.write_row(t)

            elapsed, _ = timed(raw_copy)
            results.setdefault("raw_copy", []).append(N / elapsed)
        conn.close()
        store.close()
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
    return results


def bench_sqlite() -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "ours.db")
        with unit_of_work(store) as tx:
            tx.execute(SQLITE_DDL)
        raw = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute(SQLITE_DDL)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in KEY)
        sql = (
            f"INSERT INTO kpi ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
            f" ON CONFLICT (client_id, date, platform) DO UPDATE SET {updates}"
        )
        for label, bump in PASSES:
            rows = kpi_rows(N, bump)
            elapsed, result = timed(lambda rows=rows: idempotent_upsert(store, "kpi", rows))
            print(f"  sqlite ours    pass {label:16} {N / elapsed:>10,.0f} rows/s  {result}")
            results.setdefault("ours", []).append(N / elapsed)

            def executemany(rows: list[dict[str, Any]] = rows) -> None:
                raw.execute("BEGIN IMMEDIATE")
                raw.executemany(sql, rows)  # sqlite3's own date adapter
                raw.execute("COMMIT")

            elapsed, _ = timed(executemany)
            results.setdefault("executemany", []).append(N / elapsed)
        raw.close()
        store.close()
    return results


def table(title: str, results: dict[str, list[float]], reference: str) -> None:
    print(f"\n{title} (rows/s; ratio = ours / peer)")
    print(f"  {'peer':<14}" + "".join(f"{label:>18}" for label, _ in PASSES) + f"{'median':>12}")
    for name, values in results.items():
        median = statistics.median(values)
        cells = "".join(f"{v:>18,.0f}" for v in values)
        ratio = statistics.median(results["ours"]) / median
        print(f"  {name:<14}{cells}{median:>12,.0f}   ours/peer {ratio:5.2f}x")
    del reference


def main() -> None:
    print(f"{N:,} KPI rows per pass; row-by-row measured on {ROW_BY_ROW_N:,}")
    pg = bench_postgres()
    lite = bench_sqlite()
    table("PostgreSQL", pg, "executemany")
    table("SQLite", lite, "executemany")
    ours = statistics.median(pg["ours"])
    print(
        f"\nGoals: PG ours/executemany {ours / statistics.median(pg['executemany']):.2f}x (>= 2),"
        f" ours/raw COPY {ours / statistics.median(pg['raw_copy']):.0%} (>= 30%),"
        f" SQLite ours/executemany "
        f"{statistics.median(lite['ours']) / statistics.median(lite['executemany']):.2f}x (>= 0.8)"
    )


if __name__ == "__main__":
    main()
