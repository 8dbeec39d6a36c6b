"""PostgreSQL specifics: targets, transient errors, hostile names, secrets, concurrency."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from resilient_pipeline import (
    ConfigurationError,
    PostgresStore,
    StoreError,
    idempotent_upsert,
    retry_with_backoff,
    unit_of_work,
)
from resilient_pipeline.exceptions import TransientStoreError
from resilient_pipeline.storage import UpsertResult
from resilient_pipeline.testing import set_testing

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(postgres_dsn: str, postgres_schema: str) -> Iterator[PostgresStore]:
    """A DSN store on a fresh schema."""
    s = PostgresStore(postgres_dsn, schema=postgres_schema)
    yield s
    s.close()


def test_raised_serialization_failure_is_transient(store: PostgresStore) -> None:
    """SQLSTATE 40001 becomes TransientStoreError with the driver error as cause."""
    with pytest.raises(TransientStoreError) as info, unit_of_work(store) as tx:
        tx.execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
    assert "40001" == info.value.sqlstate
    assert isinstance(info.value.__cause__, psycopg.errors.SerializationFailure)


def test_deadlock_and_syntax_errors_are_classified(store: PostgresStore) -> None:
    """40P01 is transient; a syntax error is a plain, non-retryable StoreError."""
    with pytest.raises(TransientStoreError), unit_of_work(store) as tx:
        tx.execute("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$")
    with pytest.raises(StoreError) as info, unit_of_work(store) as tx:
        tx.execute("SELEC 1")
    assert not isinstance(info.value, TransientStoreError)


def test_lost_connection_is_transient_and_the_retry_reconnects(store: PostgresStore) -> None:
    """A connection killed mid-transaction is retried on a new connection."""
    attempts: list[int] = []
    with unit_of_work(store) as tx:
        tx.execute(f"CREATE TABLE {tx.table('t')} (id INTEGER PRIMARY KEY)")

    @retry_with_backoff(retry_on=TransientStoreError, max_attempts=3)
    def save() -> UpsertResult:
        with unit_of_work(store) as tx:
            attempts.append(1)
            result = tx.upsert("t", [{"id": 1}], key="id")
            if len(attempts) == 1:
                tx.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            return result

    with set_testing():
        assert UpsertResult(1, 0, 0) == save()
    assert 2 == len(attempts)


def test_dsn_password_never_shows(postgres_schema: str) -> None:
    """The password is masked in the repr and in connection errors."""
    s = PostgresStore("postgresql://app:hunter2@127.0.0.1:1/x", schema=postgres_schema, timeout=1)
    assert "hunter2" not in repr(s)
    with pytest.raises(TransientStoreError) as info, unit_of_work(s):
        pass
    assert "hunter2" not in str(info.value)


def test_connection_and_pool_targets(postgres_dsn: str, postgres_schema: str) -> None:
    """A caller's connection or ConnectionPool works and is left open for the caller."""
    with psycopg.connect(postgres_dsn) as conn:
        s = PostgresStore(conn, schema=postgres_schema)
        with unit_of_work(s) as tx:
            tx.execute(f"CREATE TABLE {tx.table('t')} (id INTEGER PRIMARY KEY, v TEXT)")
        assert UpsertResult(1, 0, 0) == idempotent_upsert(s, "t", [{"id": 1, "v": "a"}], key="id")
        s.close()
        assert not conn.closed
        assert not conn.autocommit
    with ConnectionPool(postgres_dsn, min_size=1, max_size=2, open=True) as pool:
        s = PostgresStore(pool, schema=postgres_schema)
        assert UpsertResult(0, 1, 0) == idempotent_upsert(s, "t", [{"id": 1, "v": "b"}], key="id")
        with pool.connection() as conn:
            assert not conn.autocommit  # restored for other pool users


def test_bad_target_is_rejected() -> None:
    """Only DSNs, connections and pools are targets."""
    with pytest.raises(ConfigurationError) as info:
        PostgresStore(42)
    assert "target" == info.value.option


HOSTILE = ['x"; DROP TABLE victim; --', "Robert'); DROP TABLE victim;--", "a b.c", "日付"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_identifiers_are_quoted_safely(store: PostgresStore, name: str) -> None:
    """Hostile table and column names round-trip; no other table is touched."""
    with unit_of_work(store) as tx:
        tx.execute(f"CREATE TABLE {tx.table('victim')} (id INTEGER)")
        columns = f"{tx.quote(name)} TEXT PRIMARY KEY, {tx.quote(name + '2')} INTEGER"
        tx.execute(f"CREATE TABLE {tx.table(name)} ({columns})")
    rows = [{name: "k", name + "2": 1}]
    assert UpsertResult(1, 0, 0) == idempotent_upsert(store, name, rows, key=name)
    assert UpsertResult(0, 0, 1) == idempotent_upsert(store, name, rows, key=name)
    with unit_of_work(store) as tx:
        assert [(0,)] == tx.fetchall(f"SELECT count(*) FROM {tx.table('victim')}")
        assert [("k", 1)] == tx.fetchall(f"SELECT * FROM {tx.table(name)}")


def test_identical_rows_are_not_rewritten(store: PostgresStore) -> None:
    """An unchanged row keeps its physical version (no write amplification)."""
    with unit_of_work(store) as tx:
        tx.execute(f"CREATE TABLE {tx.table('t')} (id INTEGER PRIMARY KEY, v TEXT)")
    rows = [{"id": i, "v": "x"} for i in range(5)]
    idempotent_upsert(store, "t", rows, key="id")

    def versions() -> list[tuple[Any, ...]]:
        with unit_of_work(store) as tx:
            return tx.fetchall(f"SELECT id, xmin::text FROM {tx.table('t')} ORDER BY id")

    before = versions()
    rows[0]["v"] = "y"
    assert UpsertResult(0, 1, 4) == idempotent_upsert(store, "t", rows, key="id")
    after = versions()
    assert before[1:] == after[1:]
    assert before[0] != after[0]


def test_once_across_connections(store: PostgresStore) -> None:
    """A key claimed and committed by one unit of work is refused to the next."""
    with unit_of_work(store) as tx:
        assert tx.once("alert:2026-11-28")
    with unit_of_work(store) as tx:
        assert not tx.once("alert:2026-11-28")


WORKER = textwrap.dedent(
    """
    import sys
    from resilient_pipeline import PostgresStore, idempotent_upsert, retry_with_backoff
    from resilient_pipeline.exceptions import TransientStoreError
    dsn, schema, worker = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = PostgresStore(dsn, schema=schema)
    upsert = retry_with_backoff(retry_on=TransientStoreError, max_attempts=10, base_delay=0.05)(
        idempotent_upsert)
    for version in range(1, 31):
        # Overlapping keys; each process writes both orders to provoke lock waits.
        keys = range(40) if (version + worker) % 2 else reversed(range(40))
        rows = [{"id": k, "version": version, "writer": worker} for k in keys]
        upsert(store, "t", rows, key="id", version="version")
    store.close()
    """
)


@pytest.mark.slow
def test_two_processes_converge_without_duplicates(store: PostgresStore, postgres_dsn: str) -> None:
    """Two processes upserting overlapping keys end with one row per key at the latest version."""
    assert store.schema is not None
    with unit_of_work(store) as tx:
        columns = "id INTEGER PRIMARY KEY, version INTEGER, writer INTEGER"
        tx.execute(f"CREATE TABLE {tx.table('t')} ({columns})")
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, postgres_dsn, store.schema, str(w)])
        for w in (0, 1)
    ]
    for proc in procs:
        assert 0 == proc.wait(timeout=60)
    with unit_of_work(store) as tx:
        rows = tx.fetchall(f"SELECT id, version FROM {tx.table('t')} ORDER BY id")
    assert [(k, 30) for k in range(40)] == rows
