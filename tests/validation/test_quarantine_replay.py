"""Replays racing each other on one SQL quarantine: each record is replayed exactly once."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilient_pipeline import PostgresStore, SQLiteStore, SQLQuarantine, replay, unit_of_work
from resilient_pipeline.exceptions import TransientStoreError
from resilient_pipeline.storage import Store
from resilient_pipeline.validation import QuarantineRecord
from tests.helpers.quarantine_workers import VALIDATOR, record, replayed_table, spawn

TIMEOUT = 60
ROWS = 5


def said(proc: subprocess.Popen[str], word: str) -> int:
    """The number in the worker's next line, which must start with ``word``."""
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert word == line[0], line
    return int(line[1])


def go_on(proc: subprocess.Popen[str]) -> None:
    """Let a worker paused in its write continue."""
    assert proc.stdin is not None
    proc.stdin.write("\n")
    proc.stdin.flush()


def target_counts(store: Store) -> Counter[int]:
    """How many times each quarantined row reached the target table."""
    with unit_of_work(store) as tx:
        return Counter(n for (n,) in tx.fetchall(f"SELECT n FROM {tx.table('replayed')}"))


@pytest.fixture
def postgres_store(postgres_dsn: str, postgres_schema: str) -> Iterator[PostgresStore]:
    """A PostgreSQL store on a fresh schema."""
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    yield store
    store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_two_replaying_processes_replay_each_record_once(
    postgres_dsn: str, postgres_schema: str, postgres_store: PostgresStore
) -> None:
    """Process B replays while A holds its claim: B skips A's rows; the counts add up."""
    replayed_table(postgres_store)
    sink = SQLQuarantine(postgres_store)
    sink.put([record(f"r{n}", n) for n in range(ROWS)])
    first = spawn("replay", postgres_dsn, postgres_schema)
    assert ROWS == said(first, "claimed")  # A has claimed all, and is paused in its write
    second = spawn("replay", postgres_dsn, postgres_schema)
    claimed = said(second, "claimed")
    if claimed:  # (without claims, B takes the same rows: let it finish to show the damage)
        go_on(second)
    second_count = said(second, "replayed")
    go_on(first)
    first_count = said(first, "replayed")
    for proc in (first, second):
        _, err = proc.communicate(timeout=TIMEOUT)
        assert 0 == proc.returncode, err
    assert (ROWS, 0) == (first_count, second_count)
    assert Counter(range(ROWS)) == target_counts(postgres_store)  # each row written once
    assert [] == sink.records()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """SQLite and PostgreSQL."""
    if request.param == "sqlite":
        store: Store = SQLiteStore(tmp_path / "q.db")
    else:
        store = request.getfixturevalue("postgres_store")
    yield store
    if request.param == "sqlite":
        store.close()


def test_a_replay_holds_sqlite_s_write_lock_from_reading_to_discarding(tmp_path: Path) -> None:
    """While a replay validates what it read, no other writer can start (so none replays too)."""
    store = SQLiteStore(tmp_path / "q.db")
    impatient = SQLiteStore(tmp_path / "q.db", timeout=0)
    sink = SQLQuarantine(store)
    sink.put([record(f"r{n}", n) for n in range(ROWS)])
    refused: list[str] = []

    def fix(row: dict[str, int]) -> dict[str, int]:
        with pytest.raises(TransientStoreError) as info, unit_of_work(impatient):
            pass
        refused.append(type(info.value).__name__)
        return row

    assert ROWS == len(replay(sink, VALIDATOR, lambda rows: None, fix=fix).replayed)
    assert ["TransientStoreError"] * ROWS == refused
    assert [] == sink.records()
    impatient.close()
    store.close()


@pytest.mark.postgres
def test_a_concurrent_replay_on_postgres_skips_claimed_rows(
    postgres_store: PostgresStore,
) -> None:
    """In-process twin of the two-process test: a replay in another thread finds nothing."""
    sink = SQLQuarantine(postgres_store)
    sink.put([record(f"r{n}", n) for n in range(ROWS)])
    inner: list[int] = []

    def write(rows: list[dict[str, int]]) -> None:
        def other() -> None:
            inner.append(len(replay(sink, VALIDATOR, lambda rows: None).replayed))

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(TIMEOUT)

    assert ROWS == len(replay(sink, VALIDATOR, write).replayed)
    assert [0] == inner
    assert [] == sink.records()


def test_claim_returns_what_records_returns(store: Store) -> None:
    """Outside a race, claim() is records(): same records, same order, same filter."""
    sink = SQLQuarantine(store)
    written = [record("a", 1, "x"), record("b", 2, "y"), record("c", 3, "x")]
    sink.put(written)
    with sink.atomic():
        claimed = sink.claim(source="x")
    assert [written[0], written[2]] == claimed == sink.records(source="x")
    assert isinstance(claimed[0], QuarantineRecord)
