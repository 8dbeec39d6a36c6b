"""SQLiteStore(read_only=True): a reader that can never create or change the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from resilient_pipeline.exceptions import StoreError
from resilient_pipeline.storage import SQLiteStore, unit_of_work


def test_missing_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    """A mistyped path raises instead of creating an empty database."""
    path = tmp_path / "kpi.sqlite3"
    store = SQLiteStore(path, read_only=True)
    with pytest.raises(StoreError), unit_of_work(store) as tx:
        tx.fetchall("SELECT 1")
    store.close()
    assert [] == list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["odd?name#1.db", "with space%20.db"])
def test_reads_and_refuses_writes(tmp_path: Path, name: str) -> None:
    """Reads work (even with URI characters in the name); DDL and writes fail."""
    path = tmp_path / name
    writer = SQLiteStore(path)
    with unit_of_work(writer) as tx:
        tx.execute("CREATE TABLE t (x INTEGER)")
        tx.execute("INSERT INTO t VALUES (1)")
    writer.close()
    reader = SQLiteStore(path, read_only=True)
    with unit_of_work(reader) as tx:
        assert [(1,)] == tx.fetchall("SELECT x FROM t")
    for statement in ("CREATE TABLE u (x INTEGER)", "INSERT INTO t VALUES (2)"):
        with pytest.raises(StoreError, match="readonly"), unit_of_work(reader) as tx:
            tx.execute(statement)
    reader.close()
    check = SQLiteStore(path)
    with unit_of_work(check) as tx:
        assert [("t",)] == tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert [(1,)] == tx.fetchall("SELECT x FROM t")
    check.close()


def test_journal_mode_left_alone(tmp_path: Path) -> None:
    """A rollback-journal database stays one when a reader opens it."""
    path = tmp_path / "plain.db"
    writer = SQLiteStore(path, wal=False)
    with unit_of_work(writer) as tx:
        tx.execute("CREATE TABLE t (x INTEGER)")
    writer.close()
    reader = SQLiteStore(path, read_only=True)
    assert "delete" == reader.journal_mode
    reader.close()
