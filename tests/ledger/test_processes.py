"""Crash and multi-process tests of the ledger: SIGKILL at random points, several OS processes."""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resilient_pipeline import Partition, PartitionLedger, unit_of_work
from resilient_pipeline.storage import Store
from resilient_pipeline.testing import FakeClock
from tests.helpers.ledger_worker import START, open_store, prepare, run

WORKER = str(Path(__file__).parents[1] / "helpers" / "ledger_worker.py")
KEYS, DAYS = 4, 10


def spawn(target: str, *extra: str) -> subprocess.Popen[bytes]:
    """Start a worker process."""
    return subprocess.Popen(
        [sys.executable, WORKER, target, "--keys", str(KEYS), "--days", str(DAYS), *extra],
        stdout=subprocess.PIPE,
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
        proc = spawn(target, "--pause", "0.03", "--announce")
        assert proc.stdout is not None
        # Killed after a random number of fetches started (not after a guessed time,
        # which a slow machine can outlast). 3 x (6 fetched + 6 leased) < 40 partitions.
        for _ in range(rng.randint(1, 6)):
            assert proc.stdout.readline().startswith(b"fetching"), "the worker ended early"
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
def test_a_sigkilled_run_strands_only_its_in_flight_partitions(tmp_path: Path) -> None:
    """SIGKILL mid-run strands at most `concurrency` partitions; one lease later all are collected.

    The killed worker claimed one partition per worker slot (never a batch
    ahead), so at most 3 rows stay ``running``. A re-run right away collects
    everything else and leaves those to their live-looking leases; a re-run
    one lease period later (a fake wall clock 30 s ahead, not ten minutes)
    takes them over as crashes, not attempts: every partition exactly once.
    """
    target = str(tmp_path / "kill.db")
    proc = spawn(target, "--pause", "0.05", "--announce", "--lease", "30", "--concurrency", "3")
    assert proc.stdout is not None
    for _ in range(7):  # killed after 7 fetches started, whatever the machine's speed
        assert proc.stdout.readline().startswith(b"fetching"), "the worker ended early"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    store = open_store(target, None)
    prepare(store)
    ledger = PartitionLedger(store)
    stranded = sorted(r.partition for r in ledger.records("meta") if r.status == "running")
    assert 1 <= len(stranded) <= 3
    now = FakeClock(wall_start=time.time())
    right_away = run(store, keys=KEYS, days=DAYS, lease=30, pause=0, clock=now)
    assert ([], ()) == (list(right_away.failed), right_away.recovered)
    end = START + dt.timedelta(days=DAYS - 1)
    assert stranded == sorted(g.partition for g in ledger.gaps("meta", range(KEYS), START, end))
    one_lease_later = FakeClock(wall_start=time.time() + 30)
    report = run(store, keys=KEYS, days=DAYS, lease=30, pause=0, clock=one_lease_later)
    assert stranded == sorted(report.recovered)
    assert stranded == sorted(p for p, outcome in report.collected if outcome == "new")
    assert_exactly_once(store)
    records = {r.partition: r for r in ledger.records("meta")}
    assert {(1, 0)} == {(records[p].crashes, records[p].attempts) for p in stranded}
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


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_creating_the_schema_at_once_all_succeed(
    postgres_dsn: str, postgres_schema: str
) -> None:
    """Four processes whose first ledger call races another session's CREATE TABLE all succeed.

    This session creates the ledger's tables in a transaction it keeps open, so
    every worker's ``CREATE TABLE IF NOT EXISTS`` waits on it; when it commits,
    each worker finds the tables made under its feet (a unique violation on
    ``pg_type``), which must count as "already there", not as a failure.
    """
    app = f"rp-schema-race-{postgres_schema}"
    dsn = f"{postgres_dsn}{'&' if '?' in postgres_dsn else '?'}application_name={app}"
    store = open_store(postgres_dsn, postgres_schema)
    ledger = PartitionLedger(store)
    first = Partition("meta", 0, START)
    with unit_of_work(store) as tx:
        assert "new" == ledger.succeed(tx, first, rows=[{"n": 1}])  # creates the tables
        procs = [spawn(dsn, "--schema", postgres_schema, "--plan") for _ in range(4)]
        wait_until_blocked(postgres_dsn, app, len(procs), procs)
    added = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert 0 == proc.returncode, err.decode()
        added.append(int(out))
    # Every partition was planned once, by exactly one worker; the committed one was kept.
    assert KEYS * DAYS - 1 == sum(added)
    end = START + dt.timedelta(days=DAYS - 1)
    expected = {
        (str(k), (START + dt.timedelta(days=d)).isoformat()): "pending"
        for k in range(KEYS)
        for d in range(DAYS)
    }
    expected[(first.key, first.period)] = "succeeded"
    assert expected == {
        (r.partition.key, r.partition.period): r.status for r in ledger.records("meta", START, end)
    }
    with unit_of_work(store) as tx:
        tables = tx.fetchall(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
            " ORDER BY table_name",
            (postgres_schema,),
        )
        indexes = tx.fetchall(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
            (postgres_schema, "rp_partitions_status"),
        )
    assert [("rp_partitions",), ("rp_partitions_restatements",)] == tables
    assert [("rp_partitions_status",)] == indexes
    store.close()


OLD_PARTITIONS = (
    'CREATE TABLE {t} (source TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL,'
    " period TEXT COLLATE \"C\" NOT NULL, status TEXT NOT NULL DEFAULT 'pending',"
    " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, row_count BIGINT, fingerprint TEXT,"
    " duration DOUBLE PRECISION, run_id TEXT, lease_owner TEXT, lease_expires DOUBLE PRECISION,"
    " updated_at DOUBLE PRECISION NOT NULL DEFAULT 0, restatements INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (source, period, key))"
)
OLD_RESTATEMENTS = (
    "CREATE TABLE {r} (source TEXT NOT NULL, key TEXT NOT NULL, period TEXT NOT NULL,"
    " run_id TEXT, restated_at DOUBLE PRECISION NOT NULL, before_rows BIGINT, after_rows BIGINT,"
    " before_fingerprint TEXT, after_fingerprint TEXT)"
)


@pytest.mark.slow
@pytest.mark.postgres
def test_workers_upgrading_an_old_ledger_at_once_all_succeed(
    postgres_dsn: str, postgres_schema: str
) -> None:
    """Four processes meeting a ledger of the previous version add its columns without failing.

    This session adds the new columns in a transaction it keeps open; every
    worker saw them missing and waits on its own ``ADD COLUMN IF NOT EXISTS``;
    when this session commits, each finds them there and carries on.
    """
    app = f"rp-migrate-{postgres_schema}"
    dsn = f"{postgres_dsn}{'&' if '?' in postgres_dsn else '?'}application_name={app}"
    store = open_store(postgres_dsn, postgres_schema)
    with unit_of_work(store) as tx:
        tx.execute(OLD_PARTITIONS.format(t=tx.table("rp_partitions")))
        tx.execute(OLD_RESTATEMENTS.format(r=tx.table("rp_partitions_restatements")))
        tx.execute(
            f"CREATE INDEX {tx.quote('rp_partitions_status')} ON {tx.table('rp_partitions')}"
            " (source, status, period, key)"
        )
        tx.execute(
            f"INSERT INTO {tx.table('rp_partitions')} (source, key, period, status, attempts)"
            " VALUES ('meta', '0', %s, 'quarantined', 5)",
            (START.isoformat(),),
        )
    ledger = PartitionLedger(store)
    with unit_of_work(store) as tx:
        ledger._ensure_schema(tx)  # the upgrade, held open
        procs = [spawn(dsn, "--schema", postgres_schema, "--plan") for _ in range(4)]
        wait_until_blocked(postgres_dsn, app, len(procs), procs)
    added = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert 0 == proc.returncode, err.decode()
        added.append(int(out))
    assert KEYS * DAYS - 1 == sum(added)
    statuses = {
        (r.key, r.period): (r.status, r.attempts, r.crashes) for r in ledger.records("meta")
    }
    assert ("exhausted", 5, 0) == statuses.pop(("0", START.isoformat()))
    assert {("pending", 0, 0)} == set(statuses.values())
    store.close()


def wait_until_blocked(
    dsn: str, app: str, count: int, procs: list[subprocess.Popen[bytes]]
) -> None:
    """Wait (20 s at most) until ``count`` sessions named ``app`` wait on a lock."""
    import psycopg

    deadline = time.monotonic() + 20
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = %s AND wait_event_type = 'Lock'",
                (app,),
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            exited = [p.args for p in procs if p.poll() is not None]
            assert not exited, f"a worker exited before blocking: {exited}"
            assert time.monotonic() < deadline, f"only {row} of {count} workers blocked"
            conn.execute("SELECT pg_sleep(0.02)")  # poll the server, not a fixed wait
