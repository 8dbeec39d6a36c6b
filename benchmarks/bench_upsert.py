"""idempotent_upsert vs its peers on 100,000 KPI-shaped rows, side by side in one process.

PostgreSQL (the server on this machine, a scratch schema dropped at the end):
ours vs psycopg ``executemany`` upsert vs row-by-row upsert vs a raw ``COPY``
into an UNLOGGED table without indexes (the physical limit). Three passes:
1 = all inserts, 2 = every row changed (all conflicts), 3 = identical rows.
SQLite (a file in WAL mode): ours vs raw ``executemany`` upsert.

Interleaved rounds: each round runs every contender through the three passes
(from an empty table), the contenders' order rotating from round to round, so a
load spike on the shared machine hits them alike. Every figure is a median over
the rounds, with the spread (smallest and largest round).

Issue 15's goals (``goals(quick)``, collected by ``run_all.py``):

* PostgreSQL, ours vs psycopg ``executemany``: >= 2x on every pass, all-conflicts included;
* PostgreSQL, ours vs raw COPY into an unlogged table: >= 30% of its throughput
  (median over the rounds and the three passes);
* SQLite, ours vs raw ``executemany``: >= 1.0x (median over rounds and passes).

Run: .venv/bin/python benchmarks/bench_upsert.py [--quick]   (RP_BENCH_DSN overrides the DSN)
"""

from __future__ import annotations

import datetime
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import psycopg
from _harness import Goal, ratio_goal, verdicts

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
# samples[contender][pass label] = seconds per row, one per round
Samples = dict[str, dict[str, list[float]]]


def _rotate(names: list[str], round_: int) -> list[str]:
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def bench_postgres(n: int, rounds: int) -> Samples:
    schema = f"rp_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(DSN, autocommit=True)
    admin.execute(f'CREATE SCHEMA "{schema}"')
    samples: Samples = {}
    rows_of = {label: kpi_rows(n, bump) for label, bump in PASSES}
    tuples_of = {
        label: [tuple(r[c] for c in COLUMNS) for r in rows] for label, rows in rows_of.items()
    }
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

        tables = {
            "ours": make("ours"),
            "executemany": make("executemany"),
            "row_by_row": make("row_by_row"),
            "raw_copy": make("raw_copy", unlogged=True, unique=False),
        }
        conn = psycopg.connect(DSN)
        slice_n = min(n, ROW_BY_ROW_N)

        def ours(label: str) -> float:
            elapsed, result = timed(lambda: idempotent_upsert(store, "ours", rows_of[label]))
            expected = {"1 insert": "inserted", "2 all conflicts": "updated"}.get(
                label, "unchanged"
            )
            assert getattr(result, expected) == n, result
            return elapsed / n

        def executemany(label: str) -> float:
            def run() -> None:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(upsert_sql(tables["executemany"]), rows_of[label])

            return timed(run)[0] / n

        def row_by_row(label: str) -> float:
            def run() -> None:
                with conn.transaction(), conn.cursor() as cur:
                    for row in rows_of[label][:slice_n]:
                        cur.execute(upsert_sql(tables["row_by_row"]), row)

            return timed(run)[0] / slice_n

        def raw_copy(label: str) -> float:
            def run() -> None:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(f"TRUNCATE {tables['raw_copy']}")
                    with cur.copy(f"COPY {tables['raw_copy']} ({cols}) FROM STDIN") as copy:
                        for t in tuples_of[label]:
                            copy.write_row(t)

            return timed(run)[0] / n

        contenders = {"ours": ours, "executemany": executemany, "row_by_row": row_by_row,
                      "raw_copy": raw_copy}  # fmt: skip
        for round_ in range(rounds):
            for name in _rotate(list(contenders), round_):
                admin.execute(f"TRUNCATE {tables[name]}")
                for label, _ in PASSES:
                    cost = contenders[name](label)
                    samples.setdefault(name, {}).setdefault(label, []).append(cost)
            print(f"  PostgreSQL round {round_ + 1}/{rounds} done", file=sys.stderr)
        conn.close()
        store.close()
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
    return samples


def bench_sqlite(n: int, rounds: int) -> Samples:
    samples: Samples = {}
    rows_of = {label: kpi_rows(n, bump) for label, bump in PASSES}
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

        def ours(label: str) -> float:
            return timed(lambda: idempotent_upsert(store, "kpi", rows_of[label]))[0] / n

        def executemany(label: str) -> float:
            def run() -> None:
                raw.execute("BEGIN IMMEDIATE")
                raw.executemany(sql, rows_of[label])  # sqlite3's own date adapter
                raw.execute("COMMIT")

            return timed(run)[0] / n

        def empty(name: str) -> None:
            if name == "ours":
                with unit_of_work(store) as tx:
                    tx.execute("DELETE FROM kpi")
            else:
                raw.execute("DELETE FROM kpi")

        contenders = {"ours": ours, "executemany": executemany}
        for round_ in range(rounds):
            for name in _rotate(list(contenders), round_):
                empty(name)
                for label, _ in PASSES:
                    cost = contenders[name](label)
                    samples.setdefault(name, {}).setdefault(label, []).append(cost)
        raw.close()
        store.close()
    return samples


def table(title: str, samples: Samples) -> str:
    """Rows/s per contender and pass (median of rounds, spread), ratio ours / peer."""
    lines = [f"{title} (rows/s, median of rounds [slowest-fastest]; ratio = ours / peer)"]
    lines.append(f"  {'peer':<12}" + "".join(f"{label:>30}" for label, _ in PASSES))
    for name, by_pass in samples.items():
        cells = ""
        for label, _ in PASSES:
            costs = by_pass[label]
            ratio = statistics.median(
                p / o for o, p in zip(samples["ours"][label], costs, strict=True)
            )
            cell = (
                f"{1 / statistics.median(costs):,.0f} [{1 / max(costs):,.0f}-{1 / min(costs):,.0f}]"
            )
            cells += f"{cell + (f' {ratio:.2f}x' if name != 'ours' else ''):>30}"
        lines.append(f"  {name:<12}{cells}")
    return "\n".join(lines)


def _flat(samples: Samples, name: str) -> list[float]:
    return [cost for label, _ in PASSES for cost in samples[name][label]]


def goals_from(pg: Samples | None, lite: Samples, n: int = N) -> list[Goal]:
    goals: list[Goal] = []
    if pg is None:
        note = "PostgreSQL unreachable"
        goals.append(Goal("PostgreSQL upsert vs executemany", ">= 2x on every pass", None, None,
                          None, 2.0, True, 0, note))  # fmt: skip
    else:
        for label, _ in PASSES:
            goals.append(
                ratio_goal(
                    f"PostgreSQL upsert, {n:,} rows, pass {label}",
                    ">= 2x psycopg executemany (every pass)",
                    {"ours": pg["ours"][label], "peer": pg["executemany"][label]},
                    ours="ours",
                    peer="peer",
                    limit=2.0,
                    higher_is_better=True,
                    note=f"ours {1 / statistics.median(pg['ours'][label]):,.0f} rows/s, "
                    f"executemany {1 / statistics.median(pg['executemany'][label]):,.0f} rows/s",
                )
            )
        goals.append(
            ratio_goal(
                "PostgreSQL upsert vs raw COPY into an unlogged table",
                ">= 30% of its throughput (median over rounds and passes)",
                {"ours": _flat(pg, "ours"), "peer": _flat(pg, "raw_copy")},
                ours="ours",
                peer="peer",
                limit=0.30,
                higher_is_better=True,
            )
        )
    goals.append(
        ratio_goal(
            "SQLite upsert vs raw executemany",
            ">= 1.0x (median over rounds and passes)",
            {"ours": _flat(lite, "ours"), "peer": _flat(lite, "executemany")},
            ours="ours",
            peer="peer",
            limit=1.0,
            higher_is_better=True,
            note=", ".join(
                f"pass {label}: ours {1 / statistics.median(lite['ours'][label]):,.0f} vs "
                f"{1 / statistics.median(lite['executemany'][label]):,.0f} rows/s"
                for label, _ in PASSES
            ),
        )
    )
    return goals


def measure(quick: bool) -> tuple[Samples | None, Samples]:
    n, rounds = (20_000, 3) if quick else (N, 5)
    try:
        pg: Samples | None = bench_postgres(n, rounds)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        pg = None
    return pg, bench_sqlite(n, rounds)


def goals(quick: bool) -> list[Goal]:
    """Issue 15's upsert goals (see the module docstring)."""
    return goals_from(*measure(quick), n=20_000 if quick else N)


def main() -> None:
    quick = "--quick" in sys.argv
    pg, lite = measure(quick)
    print(f"{20_000 if quick else N:,} KPI rows per pass; row-by-row measured on "
          f"{ROW_BY_ROW_N:,} and reported per row")  # fmt: skip
    if pg is not None:
        print(table("PostgreSQL", pg))
    print(table("SQLite", lite))
    print(verdicts(goals_from(pg, lite, n=20_000 if quick else N)))


if __name__ == "__main__":
    main()
