"""Crash and multi-process tests of backfill: SIGKILL at random points, several OS processes."""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resilient_pipeline import PartitionLedger, unit_of_work
from resilient_pipeline.storage import Store
from resilient_pipeline.testing import FakeClock
from tests.helpers.ledger_worker import START, open_store, prepare, run

WORKER = str(Path(__file__).parents[1] / "helpers" / "ledger_worker.py")
KEYS, DAYS = 4, 10


def spawn(target: str, *extra: str) -> subprocess.Popen[bytes]:
    """Start a worker process."""
    return subprocess.Popen(
        [sys.executable, WORKER, target, "--keys", str(KEYS), "--days", str(DAYS), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def assert_exactly_once(store: Store) -> None:
    """Every partition succeeded, and each has exactly its 5 rows: no loss, no duplicates."""
    ledger = PartitionLedger(store)
    end = START + dt.timedelta(days=DAYS - 1)
    assert [] == ledger.gaps("meta", range(KEYS), START, end)
    with unit_of_work(store) as tx:
        counts = tx.fetchall(
            f"SELECT source, key, period, count(*) FROM {tx.table('kpi')} "
            "GROUP BY source, key, period"
        )
    assert len(counts) == KEYS * DAYS
    assert {5} == {row[3] for row in counts}


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    """Kill a backfill three times mid-run; the re-run ends with every partition exactly once."""
    target = str(tmp_path / "crash.db")
    rng = random.Random(7)
    for _ in range(3):
        proc = spawn(target, "--pause", "0.03")
        time.sleep(rng.uniform(0.3, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    store = open_store(target, None)
    prepare(store)
    # The dead workers' leases have expired by "tomorrow": a fake wall clock a day ahead.
    tomorrow = FakeClock(wall_start=time.time() + 86_400)
    report = run(store, keys=KEYS, days=DAYS, lease=600, pause=0, clock=tomorrow)
    assert [] == list(report.failed)
    assert_exactly_once(store)
    store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_several_processes_share_one_backfill(postgres_dsn: str, postgres_schema: str) -> None:
    """Three OS processes backfill one range on PostgreSQL; each partition is done once."""
    store = open_store(postgres_dsn, postgres_schema)
    prepare(store)
    PartitionLedger(store).ensure_schema()
    # They start together (after every interpreter has imported), so the work overlaps.
    start_at = str(time.time() + 3)
    procs = [
        spawn(postgres_dsn, "--schema", postgres_schema, "--pause", "0.02", "--start-at", start_at)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert 0 == proc.returncode, err.decode()
    assert_exactly_once(store)
    with unit_of_work(store) as tx:
        workers = tx.fetchall(f"SELECT count(DISTINCT worker) FROM {tx.table('kpi')}")
    assert workers[0][0] >= 2  # the work was shared, not done by one process
    store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_dead_workers_partitions_are_reclaimed(postgres_dsn: str, postgres_schema: str) -> None:
    """A SIGKILLed worker's leased partitions are re-claimed once its 1 s lease expires."""
    store = open_store(postgres_dsn, postgres_schema)
    prepare(store)
    PartitionLedger(store).ensure_schema()
    victim = spawn(postgres_dsn, "--schema", postgres_schema, "--lease", "1", "--pause", "0.05")
    time.sleep(0.8)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    time.sleep(1.1)  # the lease runs out (real time: the other worker is a real process)
    survivor = spawn(postgres_dsn, "--schema", postgres_schema, "--lease", "1", "--pause", "0")
    _, err = survivor.communicate(timeout=60)
    assert 0 == survivor.returncode, err.decode()
    assert_exactly_once(store)
    store.close()
