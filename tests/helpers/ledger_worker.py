"""A ledger worker process for the crash and multi-process tests (run as a script).

By default it backfills; with ``--plan`` it only plans the partitions (which
creates the ledger's schema on a fresh database) and prints how many it added.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import threading
import time
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

START = dt.date(2026, 11, 1)
_announcing = threading.Lock()


def open_store(target: str, schema: str | None) -> Store:
    """SQLite for a path, PostgreSQL for a DSN."""
    if target.startswith("postgresql://"):
        return PostgresStore(target, schema=schema)
    return SQLiteStore(target)


def prepare(store: Store) -> None:
    """The data table: deliberately without a unique key."""
    with unit_of_work(store) as tx:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {tx.table('kpi')} "
            "(source TEXT, key TEXT, period TEXT, n INTEGER, worker TEXT)"
        )


def run(
    store: Store,
    *,
    keys: int,
    days: int,
    lease: float,
    pause: float,
    clock: Any = None,
    concurrency: int = 2,
    announce: bool = False,
) -> Any:
    """Backfill keys x days; each fetch pauses for real so a kill lands mid-run.

    ``announce`` prints a line as each fetch starts, so a test can kill the
    worker after a chosen number of fetches instead of after a guessed time.
    """
    ledger = PartitionLedger(store, lease=lease, clock=clock)

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        if announce:
            with _announcing:  # one whole line per fetch, whichever thread runs it
                sys.stdout.write(" ".join(("fetching", *partition.as_tuple())) + "\n")
                sys.stdout.flush()
        if pause:
            time.sleep(pause)
        return [{"n": n} for n in range(5)]

    def write(tx: Transaction, partition: Partition, rows: list[dict[str, Any]]) -> None:
        tx.executemany(
            f"INSERT INTO {tx.table('kpi')} VALUES ({', '.join([tx.placeholder] * 5)})",
            [(*partition.as_tuple(), r["n"], ledger.worker_id) for r in rows],
        )

    return backfill(
        ledger,
        source="meta",
        keys=range(keys),
        start=START,
        end=START + dt.timedelta(days=days - 1),
        fetch=fetch,
        write=write,
        concurrency=concurrency,
        progress=False,
        policies=(),
    )


def plan(store: Store, *, keys: int, days: int) -> int:
    """Plan keys x days on a fresh ledger: the first ledger call, so it creates the schema."""
    ledger = PartitionLedger(store)
    return ledger.plan("meta", range(keys), START, START + dt.timedelta(days=days - 1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--schema")
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--lease", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.005)
    parser.add_argument("--start-at", type=float, default=0.0, help="epoch: start together")
    parser.add_argument("--announce", action="store_true", help="a line as each fetch starts")
    parser.add_argument("--plan", action="store_true", help="only plan, print the count added")
    args = parser.parse_args()
    store = open_store(args.target, args.schema)
    if args.plan:
        print(plan(store, keys=args.keys, days=args.days), flush=True)
        store.close()
        raise SystemExit(0)
    prepare(store)
    time.sleep(max(0.0, args.start_at - time.time()))
    run(
        store,
        keys=args.keys,
        days=args.days,
        lease=args.lease,
        pause=args.pause,
        announce=args.announce,
        concurrency=args.concurrency,
    )
    store.close()
