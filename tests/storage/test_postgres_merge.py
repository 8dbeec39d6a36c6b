"""PostgreSQL's MERGE first try: its count checks, and the server behaviour it relies on."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from resilient_pipeline.storage import _postgres_fast

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(
    ("written", "inserted", "updated", "kept"),
    [(3, 1, 2, True), (0, 0, 0, True), (3, 1, 1, False), (3, -1, 4, False), (9, 4, 5, False)],
)
def test_merge_counts_are_kept_only_when_they_add_up(
    written: int, inserted: int, updated: int, kept: bool
) -> None:
    """Counters that disagree with MERGE's row count, go backwards or exceed the batch: None."""

    batch = SimpleNamespace(rows=[(1,), (2,), (3,), (4,)], key=("k",))
    rows = _postgres_fast._merged(batch, written, inserted, updated)  # type: ignore[arg-type]
    assert kept == (rows is not None)
    if rows is not None:
        assert [("c", None, inserted, updated, 0, None, None)] == rows


@pytest.mark.parametrize(
    ("meanwhile", "counters", "stored"),
    [
        # Deleted: inserted again, as INSERT ... ON CONFLICT finds no conflict and inserts.
        ("DELETE FROM {t} WHERE k = 1", (1, 1), [(1, 5), (2, 5)]),
        # Made identical: left alone and counted unchanged, as ON CONFLICT ... WHERE skips it.
        ("UPDATE {t} SET v = 5 WHERE k = 1", (0, 1), [(1, 5), (2, 5)]),
        # Changed otherwise: compared again, still different, updated (ours after theirs).
        ("UPDATE {t} SET v = 7 WHERE k = 1", (0, 2), [(1, 5), (2, 5)]),
        # Its key moved away: the key is free again, so it is inserted.
        ("UPDATE {t} SET k = 10 WHERE k = 1", (1, 1), [(1, 5), (2, 5), (10, 1)]),
    ],
)
def test_merge_redoes_a_row_another_writer_commits_meanwhile_as_on_conflict_would(
    postgres_dsn: str,
    postgres_schema: str,
    meanwhile: str,
    counters: tuple[int, int],
    stored: list[tuple[int, int]],
) -> None:
    """The PostgreSQL behaviour the MERGE first try relies on (it waits here, the fast path
    would give up after 1 ms): a row changed under it is redone, and counted, as the one
    statement would; the counters add up to MERGE's row count."""
    table = f'"{postgres_schema}".t'
    admin = psycopg.connect(postgres_dsn, autocommit=True)
    other = psycopg.connect(postgres_dsn)
    merging = psycopg.connect(postgres_dsn)
    seen: list[Any] = []
    try:
        if admin.info.server_version < 150_000:
            pytest.skip("MERGE needs PostgreSQL 15")
        admin.execute(f"CREATE TABLE {table} (k integer PRIMARY KEY, v integer)")
        admin.execute(f"INSERT INTO {table} VALUES (1, 1), (2, 1)")
        other.execute(meanwhile.format(t=table))  # still open: holds row k=1

        def merge() -> None:
            merging.execute("CREATE TEMP TABLE s ON COMMIT DROP AS VALUES (1, 5), (2, 5)")
            written = merging.execute(
                f"MERGE INTO {table} AS t USING s ON t.k = s.column1 "
                "WHEN MATCHED AND t.v IS DISTINCT FROM s.column2 THEN UPDATE SET v = s.column2 "
                "WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.column1, s.column2)"
            ).rowcount
            moved = merging.execute(
                f"SELECT pg_stat_get_xact_tuples_inserted('{table}'::regclass),"
                f" pg_stat_get_xact_tuples_updated('{table}'::regclass)"
            ).fetchone()
            merging.commit()
            seen.extend([written, moved])

        worker = threading.Thread(target=merge)
        worker.start()
        for _ in range(100_000):  # until this MERGE waits for row k=1 (without sleeping)
            waiting = admin.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = %s",
                (merging.info.backend_pid,),
            ).fetchone()
            if (waiting is not None and waiting[0] > 0) or not worker.is_alive():
                break
        other.commit()
        worker.join(timeout=60)
        rows = admin.execute(f"SELECT k, v FROM {table} ORDER BY k").fetchall()
    finally:
        for connection in (other, merging, admin):
            connection.close()
    assert [sum(counters), counters] == seen
    assert stored == rows
