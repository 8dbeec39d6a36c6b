"""Test-only jobs for the Dask engine's tests, built in the workers from a reference.

* ``"tests.engines.dask_jobs:squares_job"``: a tiny source on PostgreSQL whose
  partition ``key/day`` holds one number; written with a plain ``INSERT`` under a
  primary key, so a partition written twice fails loudly instead of being
  overwritten quietly. Every write is also logged.
* ``"tests.engines.dask_jobs:spied_collector_job"``: the reference collector's
  job (:func:`examples.kpi_collector.jobs.collector_job`) with its fetch timed.

Both append one JSON line per fetch (partition, start, end, pid) to
``<spans>/<pid>.jsonl``, so a test can tell which process fetched what and
whether two ever fetched one partition at the same time. The DSN comes from
the workers' environment (``RP_TEST_POSTGRES_DSN``), never from the params;
the stores are :mod:`tests.engines.jobs`' (one per schema per process).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from examples.kpi_collector.jobs import collector_job
from resilient_pipeline import PartitionLedger, unit_of_work
from resilient_pipeline.engines import Job
from resilient_pipeline.ledger import Partition
from resilient_pipeline.storage import Store, Transaction
from tests.engines.jobs import open_store

SOURCE = "squares"


def value_of(key: str, day: str) -> int:
    """The partition's true value: what the "API" answers."""
    return int(key) ** 2 + dt.date.fromisoformat(day).toordinal()


def prepare(store: Store) -> None:
    """The data table: one row per partition, a second write of one is a primary-key error."""
    with unit_of_work(store) as tx:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {tx.table('squares')} (key TEXT, day TEXT,"
            " value BIGINT NOT NULL, pid INTEGER NOT NULL, PRIMARY KEY (key, day))"
        )
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {tx.table('square_writes')} (key TEXT, day TEXT,"
            " pid INTEGER NOT NULL)"
        )


@contextmanager
def span(spans: str | None, partition: Partition) -> Iterator[None]:
    """Log the fetch's wall-clock span (one file per process: no interleaved lines)."""
    start = time.time()
    try:
        yield
    finally:
        if spans is not None:
            line = {"partition": str(partition), "start": start, "end": time.time()}
            line["pid"] = os.getpid()
            with (Path(spans) / f"{os.getpid()}.jsonl").open("a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")


def read_spans(spans: Path) -> list[dict[str, Any]]:
    """Every fetch span every process logged."""
    return [
        json.loads(line)
        for path in sorted(spans.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def squares_job(
    *,
    schema: str,
    keys: list[str],
    start: str,
    end: str,
    lease: float = 30.0,
    pause: float = 0.0,
    spans: str | None = None,
    lookback: int | None = None,
) -> Job:
    """``keys`` x [start, end] of the ``squares`` source into ``schema``.

    ``pause``: seconds each fetch takes (so a kill lands mid-run).
    """
    store = open_store(schema)
    ledger = PartitionLedger(store, lease=lease)

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        with span(spans, partition):
            if pause:
                time.sleep(pause)
            return [{"value": value_of(partition.key, partition.period)}]

    def write(tx: Transaction, partition: Partition, rows: list[dict[str, Any]]) -> None:
        pid, p = os.getpid(), tx.placeholder
        tx.execute(
            f"INSERT INTO {tx.table('squares')} (key, day, value, pid) VALUES ({p}, {p}, {p}, {p})",
            (partition.key, partition.period, rows[0]["value"], pid),
        )
        tx.execute(
            f"INSERT INTO {tx.table('square_writes')} (key, day, pid) VALUES ({p}, {p}, {p})",
            (partition.key, partition.period, pid),
        )

    return Job(
        ledger=ledger,
        source=SOURCE,
        keys=keys,
        start=dt.date.fromisoformat(start),
        end=dt.date.fromisoformat(end),
        fetch=fetch,
        write=write,
        options={"lookback": lookback, "policies": ()},
    )


def spied_collector_job(*, spans: str, **params: Any) -> Job:
    """The reference collector's job, each fetch's span logged to ``spans``."""
    job = collector_job(**params)
    fetch: Callable[[Partition], Any] = job.fetch

    async def timed(partition: Partition) -> Any:
        with span(spans, partition):
            return await fetch(partition)

    return attrs.evolve(job, fetch=timed)
