"""A ledger whose tables another session is creating at the same moment still plans.

PostgreSQL's ``CREATE TABLE IF NOT EXISTS`` checks for the table, then waits on
the other session's uncommitted one, and when that commits fails instead of
skipping: a unique violation on the catalog (23505), "already exists" (42P07) or,
for the table's row type, "type already exists" (42710). Each means "it exists
now". Here the other session is held mid-creation, so the race happens every time
(our CREATE waits on its catalog row and gets 23505 when it commits); 42710 comes
from a narrower window (the other commits between our checks of the table and of
its row type) that a test cannot hold open: a Dask test met it once.
"""

from __future__ import annotations

import threading
import time

import pytest

from resilient_pipeline import PartitionLedger, PostgresStore
from resilient_pipeline.ledger._sql import ddl

pytestmark = pytest.mark.postgres


def waiting_on_a_lock(dsn: str, pid_of: list[int]) -> bool:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = ANY(%s)", (pid_of,)
        ).fetchone()
    return bool(row and row[0])


@pytest.mark.parametrize("table", ["partitions", "restatements"])
def test_plan_succeeds_when_another_session_creates_the_table_first(
    postgres_dsn: str, postgres_schema: str, table: str
) -> None:
    import psycopg

    partitions = f'"{postgres_schema}"."rp_partitions"'
    restatements = f'"{postgres_schema}"."rp_partitions_restatements"'
    create_partitions, _, create_restatements = ddl(
        partitions, restatements, '"rp_partitions_status"', "postgres"
    )
    other = psycopg.connect(postgres_dsn)  # a transaction, held open below
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    try:
        if table == "restatements":  # the first table exists; the race is on the second
            with psycopg.connect(postgres_dsn, autocommit=True) as conn:
                conn.execute(create_partitions)
        other.execute(create_partitions if table == "partitions" else create_restatements)
        ledger = PartitionLedger(store)
        store.connect().release()  # our connection, opened before the race
        errors: list[BaseException] = []

        def plan() -> None:
            try:
                ledger.plan("meta", [1, 2], periods=["2026-11-01"])
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=plan)
        thread.start()
        pids = [
            int(row[0])
            for row in other.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchall()
        ]
        deadline = time.monotonic() + 30
        while not waiting_on_a_lock(postgres_dsn, pids):  # polls a real server, with a deadline
            assert time.monotonic() < deadline, "our CREATE never waited on the other session"
            assert thread.is_alive(), f"plan() ended before the race: {errors}"
            time.sleep(0.01)
        other.commit()  # the other session's table appears; ours fails as "it exists"
        thread.join(timeout=30)
        assert [] == [f"{type(e).__name__}: {e}" for e in errors]
        assert [("1", "2026-11-01"), ("2", "2026-11-01")] == sorted(
            (r.key, r.period) for r in ledger.records("meta")
        )
    finally:
        other.close()
        store.close()
