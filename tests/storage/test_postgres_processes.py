"""Eight OS processes upsert overlapping keys on PostgreSQL: no deadlock, exact counts and table."""

from __future__ import annotations

import multiprocessing
import queue
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from resilient_pipeline import PostgresStore, unit_of_work
from tests.helpers.upsert_worker import PHASES, TABLE_DDL, work

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WORKERS = 8
KEYS = 120


@pytest.fixture
def store(postgres_dsn: str, postgres_schema: str) -> Iterator[PostgresStore]:
    """A DSN store on a fresh schema, with the workers' table."""
    s = PostgresStore(postgres_dsn, schema=postgres_schema)
    with unit_of_work(s) as tx:
        tx.execute(f"CREATE TABLE {tx.table('t')} {TABLE_DDL}")
    yield s
    s.close()


def run_workers(
    dsn: str,
    schema: str,
    shares: list[list[int]],
    phases: tuple[str, ...] = PHASES,
    *,
    merge: bool = False,
) -> list[tuple[Any, ...]]:
    """Run one spawned process per share; every report they put, after all have exited."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(shares))
    results = context.Queue()
    processes = [
        context.Process(
            target=work,
            args=(dsn, schema, worker, share, 1000 + worker, 8, barrier, results, phases, merge),
        )
        for worker, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    reports: list[tuple[Any, ...]] = []
    try:
        while len(reports) < len(shares) * len(phases):
            report = results.get(timeout=120)
            assert "error" != report[1], f"worker {report[0]} failed: {report[2]}"
            reports.append(report)
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():  # pragma: no cover - only when a worker hangs
                process.kill()
                process.join()
    assert [0] * len(shares) == [p.exitcode for p in processes]
    try:
        extra = results.get_nowait()
    except queue.Empty:
        extra = None
    assert extra is None
    return reports


def totals(reports: list[tuple[Any, ...]], phase: str) -> Counter[str]:
    """The counts of ``phase`` summed over the workers."""
    summed: Counter[str] = Counter()
    for _, name, counts, _, _ in reports:
        if name == phase:
            summed.update(counts)
    return summed


def random_shares(seed: int) -> tuple[list[list[int]], set[int], int]:
    """Each worker's keys (two thirds of them, overlapping), every key covered, rows in all."""
    rng = random.Random(seed)
    shares = [sorted(rng.sample(range(KEYS), k=KEYS * 2 // 3)) for _ in range(WORKERS)]
    return shares, set().union(*shares), sum(len(share) for share in shares)


def only(**counts: int) -> Counter[str]:
    """Counts of an upsert result: these, every other one zero."""
    expected = Counter({"inserted": 0, "updated": 0, "unchanged": 0, "stale": 0})
    expected.update(counts)
    return expected


def test_eight_processes_upsert_overlapping_keys(store: PostgresStore, postgres_dsn: str) -> None:
    """Shuffled overlapping batches from 8 processes: no deadlock, counts add up, exact table."""
    assert store.schema is not None
    shares, covered, rows = random_shares(11)
    reports = run_workers(postgres_dsn, store.schema, shares)

    # Every key inserted exactly once, by one worker; the rest found it identical.
    inserted = [k for _, phase, _, keys, _ in reports if phase == "insert" for k in keys]
    assert sorted(covered) == sorted(inserted)
    assert only(inserted=len(covered), unchanged=rows - len(covered)) == totals(reports, "insert")
    # Writing identical rows again changes (and locks) nothing.
    assert only(unchanged=rows) == totals(reports, "same")
    # Each worker's own value differs from whatever is stored: every row is an update.
    assert only(updated=rows) == totals(reports, "overwrite")
    # Versioned: each row is an update or stale (never "unchanged": no row is identical),
    # and the newest version of each key was written by its writer.
    versioned = totals(reports, "versioned")
    assert only(updated=versioned["updated"], stale=rows - versioned["updated"]) == versioned
    newest = {k: max(w for w, share in enumerate(shares) if k in share) for k in covered}
    updated_by = {
        (report[0], k) for report in reports if report[1] == "versioned" for k in report[4]
    }
    assert set() == {(w, k) for k, w in newest.items()} - updated_by
    with unit_of_work(store) as tx:
        table = tx.fetchall(f"SELECT id, val, version FROM {tx.table('t')} ORDER BY id")
    assert [(k, f"w{w}", w + 1) for k, w in sorted(newest.items())] == table


def test_eight_processes_merge_overlapping_keys(store: PostgresStore, postgres_dsn: str) -> None:
    """The same without version= or returning=True (MERGE first, on PostgreSQL 15+): exact."""
    assert store.schema is not None
    shares, covered, rows = random_shares(12)
    phases = ("insert", "same", "overwrite")
    reports = run_workers(postgres_dsn, store.schema, shares, phases, merge=True)

    # Every key inserted exactly once; the rest found it identical.
    assert only(inserted=len(covered), unchanged=rows - len(covered)) == totals(reports, "insert")
    assert only(unchanged=rows) == totals(reports, "same")
    # Each worker's own value differs from whatever is stored: every row is an update.
    assert only(updated=rows) == totals(reports, "overwrite")
    with unit_of_work(store) as tx:
        table = tx.fetchall(f"SELECT id, val, version FROM {tx.table('t')} ORDER BY id")
    assert sorted(covered) == [k for k, _, _ in table]
    # The last writer of each key wins: one of the workers that wrote it, version untouched.
    writers = {k: {f"o{w}" for w, share in enumerate(shares) if k in share} for k in covered}
    assert [] == [(k, v, version) for k, v, version in table if v not in writers[k] or version]
