"""Test-only jobs for the engines' tests: a tiny fetch and write against PostgreSQL.

A worker builds the job from ``"tests.engines.jobs:numbers_job"`` and JSON
parameters; the DSN comes from the worker's environment (``RP_TEST_POSTGRES_DSN``),
never from the parameters. Each partition's row is a value computed from its key
and day, written with a plain ``INSERT`` under a primary key: writing a
partition twice would fail loudly, not overwrite quietly. Each fetch appends its
span (``key/day``, start, end, pid) to the ``spans`` file, so a test can tell
whether two workers ever fetched one partition at the same time.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import threading
import time
import zlib
from typing import Any

from resilient_pipeline import PartitionLedger, PostgresStore, SQLiteStore, unit_of_work
from resilient_pipeline.engines import Job
from resilient_pipeline.ledger import Partition
from resilient_pipeline.storage import Store, Transaction
from resilient_pipeline.testing import FakeClock

DSN_ENV = "RP_TEST_POSTGRES_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SOURCE = "numbers"

_stores: dict[tuple[int, str], Store] = {}
_lock = threading.Lock()


def value_of(key: str, day: str) -> int:
    """The partition's true value (what the "API" answers)."""
    return zlib.crc32(f"{key}/{day}".encode())


def open_store(schema: str) -> Store:
    """One store per schema per worker process (a job has no hook to close it in)."""
    with _lock:
        store = _stores.get((os.getpid(), schema))
        if store is None:
            store = PostgresStore(os.environ.get(DSN_ENV, DEFAULT_DSN), schema=schema)
            _stores[(os.getpid(), schema)] = store
            atexit.register(store.close)
        return store


def close_stores() -> int:
    """Close this process's stores (a test calls it in every worker before dropping its schema)."""
    with _lock:
        stores = [s for (pid, _), s in _stores.items() if pid == os.getpid()]
        _stores.clear()
    for store in stores:
        store.close()
    return len(stores)


def prepare(store: Store, keys: list[str], start: str, end: str) -> None:
    """The data table and the ledger's plan, made once before the workers start."""
    with unit_of_work(store) as tx:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {tx.table('numbers')} (key TEXT, day TEXT,"
            " value BIGINT NOT NULL, pid INTEGER NOT NULL, PRIMARY KEY (key, day))"
        )
    PartitionLedger(store).plan(SOURCE, keys, dt.date.fromisoformat(start), _day(end))


def _day(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def numbers_job(
    *,
    schema: str,
    keys: list[str],
    start: str,
    end: str,
    lease: float = 30.0,
    pause: float = 0.0,
    fail: list[str] | None = None,
    spans: str | None = None,
    concurrency: int = 1,
) -> Job:
    """``keys`` x [start, end] of the ``numbers`` source into ``schema``.

    ``pause`` seconds per fetch (so a kill lands mid-run); the partitions in
    ``fail`` (``"key/day"``) raise on every attempt.
    """
    store = open_store(schema)
    failing = set(fail or ())

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        began = time.time()
        if pause:
            time.sleep(pause)
        name = f"{partition.key}/{partition.period}"
        if spans is not None:
            line = json.dumps(
                {"partition": name, "start": began, "end": time.time(), "pid": os.getpid()}
            )
            with open(spans, "a") as out:  # one short line per write: appends stay whole
                out.write(line + "\n")
        if name in failing:
            raise RuntimeError(f"{name} is broken upstream")
        return [
            {
                "key": partition.key,
                "day": partition.period,
                "value": value_of(partition.key, partition.period),
            }
        ]

    def write(tx: Transaction, partition: Partition, rows: list[dict[str, Any]]) -> None:
        tx.executemany(
            f"INSERT INTO {tx.table('numbers')} (key, day, value, pid)"
            f" VALUES ({', '.join([tx.placeholder] * 4)})",
            [(r["key"], r["day"], r["value"], os.getpid()) for r in rows],
        )

    return Job(
        ledger=PartitionLedger(store, lease=lease),
        source=SOURCE,
        keys=keys,
        start=_day(start),
        end=_day(end),
        fetch=fetch,
        write=write,
        concurrency=concurrency,
        options={"policies": ()},
    )


CLOCKS: list[FakeClock] = []
"""The clock of every :func:`clocked_job` built in this process, newest last."""


def clocked_job(*, lease: float = 5.0, dead: int = 0) -> Job:
    """One key, two days, an in-memory ledger on a fake clock (appended to :data:`CLOCKS`).

    ``dead``: partitions leased, from now for one lease, by a worker that died before the job
    runs (nobody renews them).
    """
    clock = FakeClock()
    CLOCKS.append(clock)
    ledger = PartitionLedger(SQLiteStore(":memory:"), lease=lease, clock=clock)
    start, end = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    if dead:
        gone = PartitionLedger(ledger.store, lease=lease, clock=clock, worker_id="gone:1:dead")
        gone.plan("clocked", ["1"], start, end)
        gone.claim_many("clocked", start, end, run_id="before", limit=dead)
    return Job(
        ledger=ledger,
        source="clocked",
        keys=["1"],
        start=start,
        end=end,
        fetch=lambda partition: [],
        write=lambda tx, partition, rows: None,
        options={"policies": ()},
    )
