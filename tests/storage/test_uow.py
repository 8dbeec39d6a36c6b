"""Units of work and ``once`` on a SQLite file: all or nothing, nesting, async, errors."""

from __future__ import annotations

import contextlib
import pickle
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resilient_pipeline import (
    ConfigurationError,
    SQLiteStore,
    StoreError,
    retry_with_backoff,
    unit_of_work,
)
from resilient_pipeline.exceptions import TransientStoreError, UnitOfWorkError
from resilient_pipeline.storage import Store, StoreSession
from resilient_pipeline.testing import set_testing


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A SQLite file store with campaigns and conversions tables."""
    s = SQLiteStore(tmp_path / "kpi.db", timeout=0.2)
    with unit_of_work(s) as tx:
        tx.execute("CREATE TABLE campaigns (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        tx.execute("CREATE TABLE conversions (campaign_id INTEGER, day TEXT, n INTEGER)")
    yield s
    s.close()


def count(store: SQLiteStore, table: str) -> int:
    with unit_of_work(store) as tx:
        row = tx.fetchone(f"SELECT count(*) FROM {tx.table(table)}")
    assert row is not None
    return int(row[0])


def test_store_satisfies_the_protocols(store: SQLiteStore) -> None:
    """SQLiteStore and its sessions implement the public protocols."""
    session = store.connect()
    try:
        assert isinstance(store, Store)
        assert isinstance(session, StoreSession)
    finally:
        session.release()


def test_file_databases_use_wal(store: SQLiteStore) -> None:
    """File databases are switched to WAL mode by default."""
    assert "wal" == store.journal_mode


def test_commit_writes_both_tables(store: SQLiteStore) -> None:
    """A unit of work that ends normally commits every table it wrote."""
    with unit_of_work(store) as tx:
        tx.execute("INSERT INTO campaigns VALUES (?, ?)", (1, "brand"))
        tx.executemany("INSERT INTO conversions VALUES (?, ?, ?)", [(1, "d1", 3), (1, "d2", 4)])
    assert (1, 2) == (count(store, "campaigns"), count(store, "conversions"))


def test_failure_between_two_tables_writes_neither(store: SQLiteStore) -> None:
    """A failure injected after the first table leaves neither table written."""

    def save() -> None:
        with unit_of_work(store, name="save") as tx:
            with tx.step("save campaigns"):
                tx.execute("INSERT INTO campaigns VALUES (?, ?)", (1, "brand"))
            with tx.step("save conversions"):
                raise RuntimeError("injected")

    with pytest.raises(RuntimeError, match="injected"):
        save()
    assert (0, 0) == (count(store, "campaigns"), count(store, "conversions"))


def test_error_note_names_the_failed_step(store: SQLiteStore) -> None:
    """The propagated error is the original one, with a note naming the step."""
    with (
        pytest.raises(KeyError) as info,
        unit_of_work(store, name="save") as tx,
        tx.step("validate"),
    ):
        raise KeyError("campaign")
    assert ["unit of work 'save' rolled back: step 'validate' failed"] == info.value.__notes__


def test_sql_error_is_translated_and_names_the_statement(store: SQLiteStore) -> None:
    """A driver error becomes a StoreError with the driver error as cause and a step."""
    with pytest.raises(StoreError) as info, unit_of_work(store) as tx:
        tx.execute("INSERT INTO campaigns VALUES (?, NULL)", (1,))
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)
    assert not isinstance(info.value, TransientStoreError)
    assert "INSERT INTO campaigns VALUES (?, NULL)" == info.value.step
    assert 0 == count(store, "campaigns")


@pytest.mark.parametrize("method", ["execute", "executemany", "fetchall"])
def test_a_failed_statement_is_named_on_one_line_cut_at_60(store: SQLiteStore, method: str) -> None:
    """A long statement spread over lines is named flattened and cut, whichever call ran it."""
    sql = "SELECT id,\n       name\n  FROM no_such_table\n WHERE id = ? AND name IS NOT NULL"
    params: Any = [(1,)] if method == "executemany" else (1,)
    with pytest.raises(StoreError) as info, unit_of_work(store) as tx:
        getattr(tx, method)(sql, params)
    expected = "SELECT id, name FROM no_such_table WHERE id = ? AND name ..."
    assert (expected, 60) == (info.value.step, len(expected))


def test_nested_unit_of_work_is_a_savepoint(store: SQLiteStore) -> None:
    """An inner unit of work rolls back alone; the outer one still commits."""
    with unit_of_work(store) as outer:
        outer.execute("INSERT INTO campaigns VALUES (1, 'kept')")

        def inner() -> None:
            with unit_of_work(store) as tx:
                assert tx is outer
                tx.execute("INSERT INTO campaigns VALUES (2, 'undone')")
                raise ValueError("inner")

        with pytest.raises(ValueError, match="inner"):
            inner()
    with unit_of_work(store) as tx:
        assert [(1, "kept")] == tx.fetchall("SELECT * FROM campaigns")


def test_nested_failure_propagating_rolls_back_everything(store: SQLiteStore) -> None:
    """If the inner failure escapes the outer block too, nothing is written."""

    def save() -> None:
        with unit_of_work(store) as outer:
            outer.execute("INSERT INTO campaigns VALUES (1, 'a')")
            with unit_of_work(store):
                raise ValueError("inner")

    with pytest.raises(ValueError, match="inner"):
        save()
    assert 0 == count(store, "campaigns")


def test_transaction_is_unusable_after_the_block(store: SQLiteStore) -> None:
    """Using a transaction after its unit of work ended raises UnitOfWorkError."""
    with unit_of_work(store) as tx:
        pass
    with pytest.raises(UnitOfWorkError, match="already ended"):
        tx.execute("SELECT 1")


def test_other_thread_gets_an_independent_transaction(store: SQLiteStore) -> None:
    """A unit of work in another thread is not nested: it waits for the write lock."""
    seen: list[int] = []
    with unit_of_work(store) as tx:
        tx.execute("INSERT INTO campaigns VALUES (1, 'a')")

        def other() -> None:
            try:
                with unit_of_work(store) as tx2:
                    tx2.execute("INSERT INTO campaigns VALUES (2, 'b')")
            except TransientStoreError:
                seen.append(-1)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert [-1] == seen  # the lock was held for the whole unit of work (timeout=0.2 s)
    assert 1 == count(store, "campaigns")


def test_busy_database_is_transient_and_retried(store: SQLiteStore, tmp_path: Path) -> None:
    """SQLITE_BUSY is a TransientStoreError, so retry_with_backoff retries the unit of work."""
    blocker = sqlite3.connect(tmp_path / "kpi.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    attempts: list[int] = []

    @retry_with_backoff(retry_on=TransientStoreError, max_attempts=3, base_delay=1)
    def save() -> None:
        attempts.append(1)
        if len(attempts) == 2:
            blocker.execute("ROLLBACK")
        with unit_of_work(store) as tx:
            tx.execute("INSERT INTO campaigns VALUES (1, 'a')")

    with set_testing():
        save()
    blocker.close()
    assert 2 == len(attempts)
    assert 1 == count(store, "campaigns")


def test_once_claims_a_key_once(store: SQLiteStore) -> None:
    """``once`` is True the first time only, across units of work."""
    with unit_of_work(store) as tx:
        assert [True, False] == [tx.once("alert:2026-11-28"), tx.once("alert:2026-11-28")]
    with unit_of_work(store) as tx:
        assert [False, True] == [tx.once("alert:2026-11-28"), tx.once("alert:2026-11-29")]


def test_once_is_released_by_a_rollback(store: SQLiteStore) -> None:
    """A claim rolled back with its data can be claimed again."""

    def aggregate() -> None:
        with unit_of_work(store) as tx:
            assert tx.once("aggregate:2026-10")
            raise RuntimeError("aggregation failed")

    with pytest.raises(RuntimeError):
        aggregate()
    with unit_of_work(store) as tx:
        assert tx.once("aggregate:2026-10")


@pytest.mark.parametrize("key", ["", None, 3])
def test_once_rejects_bad_keys(store: SQLiteStore, key: object) -> None:
    """``once`` needs a non-empty str key."""
    with pytest.raises(ConfigurationError), unit_of_work(store) as tx:
        tx.once(key)  # type: ignore[arg-type]


def test_closed_store_refuses_new_units_of_work(tmp_path: Path) -> None:
    """A closed store raises UnitOfWorkError."""
    s = SQLiteStore(tmp_path / "x.db")
    s.close()
    with pytest.raises(UnitOfWorkError, match="closed"), unit_of_work(s):
        pass


@pytest.mark.parametrize(
    ("option", "value"),
    [("timeout", -1), ("timeout", "5"), ("max_connections", 0), ("once_table", "a;b\x00")],
)
def test_bad_options_fail_at_construction(tmp_path: Path, option: str, value: object) -> None:
    """Invalid options raise ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError) as info:
        SQLiteStore(tmp_path / "x.db", **{option: value})  # type: ignore[arg-type]
    assert option == info.value.option


def test_unit_of_work_rejects_non_stores() -> None:
    """Only stores make units of work."""
    with pytest.raises(ConfigurationError):
        unit_of_work("sqlite:///x.db")  # type: ignore[arg-type]


def test_store_errors_pickle_with_context() -> None:
    """Store errors keep sqlstate and step across pickling."""
    err = TransientStoreError("busy", sqlstate="SQLITE_BUSY", step="save")
    clone = pickle.loads(pickle.dumps(err))
    assert ("SQLITE_BUSY", "save") == (clone.sqlstate, clone.step)


@pytest.mark.anyio
async def test_async_unit_of_work_commits_and_rolls_back(store: SQLiteStore) -> None:
    """``async with`` works on asyncio and trio: commit, rollback, nesting."""
    async with unit_of_work(store) as tx:
        await tx.execute("INSERT INTO campaigns VALUES (1, 'a')")
        assert await tx.once("k")

        async def inner() -> None:
            async with unit_of_work(store) as nested:
                assert nested is tx
                await nested.execute("INSERT INTO campaigns VALUES (2, 'b')")
                raise ValueError("inner")

        with pytest.raises(ValueError, match="inner"):
            await inner()

    async def failing() -> None:
        async with unit_of_work(store) as tx:
            await tx.execute("INSERT INTO campaigns VALUES (3, 'c')")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await failing()
    async with unit_of_work(store) as tx:
        assert [(1,)] == await tx.fetchall("SELECT id FROM campaigns")
        assert (1,) == await tx.fetchone("SELECT count(*) FROM rp_once")


def test_a_dropped_sqlite_store_closes_its_pooled_connections(tmp_path: Path) -> None:
    """No unclosed-connection ResourceWarning when a store goes without close()."""
    import gc
    import sqlite3
    import warnings
    import weakref

    store = SQLiteStore(str(tmp_path / "dropped.sqlite3"))
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE t (x INTEGER)")
    pooled = list(store._slots._idle)
    assert 1 == len(pooled)
    alive = weakref.ref(store)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        del store, tx
        gc.collect()
    assert alive() is None, "the pool must not keep its store alive"
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        pooled[0].execute("SELECT 1")


def _first_use(path: str, barrier: Any, failures: Any) -> None:
    barrier.wait()
    store = SQLiteStore(path)
    try:
        with unit_of_work(store) as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
            tx.execute("INSERT INTO t VALUES (1)")
    except Exception as exc:
        failures.put(f"{type(exc).__name__}: {exc}")
    finally:
        store.close()


@pytest.mark.slow
def test_processes_opening_one_new_database_at_once_all_get_in(tmp_path: Path) -> None:
    """Switching a new file to WAL is refused at once while another opener holds a lock
    (SQLite skips its busy handler there); the store waits instead of failing the open."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    failures = context.Queue()
    for round_ in range(25):
        path = str(tmp_path / f"new-{round_}.sqlite3")
        barrier = context.Barrier(4)
        workers = [
            context.Process(target=_first_use, args=(path, barrier, failures)) for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [0, 0, 0, 0] == [w.exitcode for w in workers]
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert [(4,)] == conn.execute("SELECT count(*) FROM t").fetchall()
            assert [("wal",)] == conn.execute("PRAGMA journal_mode").fetchall()
    seen = []
    while not failures.empty():
        seen.append(failures.get())
    assert [] == seen
