"""Transaction.fetchall_and_commit: a unit of work's last query and its commit, together."""

from __future__ import annotations

import pytest

from resilient_pipeline import unit_of_work
from resilient_pipeline.exceptions import StoreError, UnitOfWorkError
from resilient_pipeline.storage import Store, Transaction


def make_table(store: Store) -> str:
    with unit_of_work(store) as tx:
        table = tx.table("t")
        tx.execute(f"CREATE TABLE {table} (x INTEGER)")
    return table


def values(store: Store, table: str) -> list[int]:
    with unit_of_work(store) as tx:
        return [row[0] for row in tx.fetchall(f"SELECT x FROM {table} ORDER BY x")]


def test_the_query_and_everything_before_it_commit(any_store: Store) -> None:
    """The rows come back, the unit of work is committed, and stays so when it ends."""
    table = make_table(any_store)
    ran: list[str] = []
    with unit_of_work(any_store) as tx:
        tx.execute(f"INSERT INTO {table} VALUES (1)")
        tx.after_commit(lambda: ran.append("after commit"))
        rows = tx.fetchall_and_commit(f"INSERT INTO {table} VALUES (2) RETURNING x")
        assert ([(2,)], True, []) == (rows, tx.committed, ran)
    assert ([1, 2], ["after commit"]) == (values(any_store, table), ran)


def failing_unit(store: Store, table: str) -> None:
    """Insert a row, then a last query that fails in the database."""
    with unit_of_work(store) as tx:
        tx.execute(f"INSERT INTO {table} VALUES (1)")
        if store.dialect == "postgres":  # as the ledger's lost lease fails: a cast
            tx.fetchall_and_commit(f"SELECT CAST('lost ' || x AS INTEGER) FROM {table}")
        else:  # SQLite casts what it cannot read to 0
            tx.fetchall_and_commit(f"SELECT x FROM {tx.table('no_such_table')}")


def test_a_failing_query_commits_nothing(any_store: Store) -> None:
    """The query fails in the server: the COMMIT sent with it is skipped, all rolls back."""
    table = make_table(any_store)
    with pytest.raises(StoreError) as caught:
        failing_unit(any_store, table)
    assert (any_store.dialect == "postgres") == ("22P02" == caught.value.sqlstate)
    assert [] == values(any_store, table)


def statement_after_commit(store: Store, table: str) -> None:
    """Commit with a last query, then try one more statement."""
    with unit_of_work(store, name="w") as tx:
        tx.fetchall_and_commit(f"INSERT INTO {table} VALUES (1) RETURNING x")
        tx.execute(f"INSERT INTO {table} VALUES (2)")


def test_nothing_runs_after_it(any_store: Store) -> None:
    """A statement after the commit is refused; what committed stays committed."""
    table = make_table(any_store)
    with pytest.raises(UnitOfWorkError) as caught:
        statement_after_commit(any_store, table)
    assert "unit of work 'w' had committed before this error" in getattr(
        caught.value, "__notes__", []
    )
    assert [1] == values(any_store, table)


def nested_then_failing(store: Store, table: str) -> None:
    """fetchall_and_commit in a nested unit of work; then the outer one fails."""
    with unit_of_work(store) as outer:
        with unit_of_work(store) as inner:
            assert [(1,)] == inner.fetchall_and_commit(
                f"INSERT INTO {table} VALUES (1) RETURNING x"
            )
            assert not inner.committed
        assert isinstance(outer, Transaction)
        raise RuntimeError("the outer unit of work fails")


def test_inside_a_savepoint_the_outer_unit_of_work_commits(any_store: Store) -> None:
    """Nested: only the query runs; the outer unit of work's rollback still undoes it."""
    table = make_table(any_store)
    with pytest.raises(RuntimeError):
        nested_then_failing(any_store, table)
    assert [] == values(any_store, table)
