"""Hypothesis properties of idempotent_upsert (SQLite file, PostgreSQL) and a state machine."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilient_pipeline import SQLiteStore, idempotent_upsert, unit_of_work
from resilient_pipeline.storage import Store
from tests.strategies import UPSERT_DDL, UPSERT_KEY, upsert_rows


def fresh_table(store: Store) -> str:
    name = f"t_{uuid.uuid4().hex[:8]}"
    with unit_of_work(store) as tx:
        tx.execute(UPSERT_DDL.format(t=tx.table(name)))
    return name


def snapshot(store: Store, table: str) -> list[tuple[Any, ...]]:
    with unit_of_work(store) as tx:
        return sorted(tx.fetchall(f"SELECT k, p, v, n FROM {tx.table(table)}"))


PROPERTY = settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(rows=upsert_rows)
def test_applying_twice_equals_applying_once(any_store: Store, rows: list[dict[str, Any]]) -> None:
    """The second application changes nothing and reports every row unchanged."""
    table = fresh_table(any_store)
    first = idempotent_upsert(any_store, table, rows, key=UPSERT_KEY)
    once = snapshot(any_store, table)
    second = idempotent_upsert(any_store, table, rows, key=UPSERT_KEY)
    assert once == snapshot(any_store, table)
    assert (len(rows), 0, 0) == (first.inserted, first.updated, first.unchanged)
    assert (0, 0, len(rows)) == (second.inserted, second.updated, second.unchanged)


@PROPERTY
@given(batches=st.lists(upsert_rows, min_size=1, max_size=4), data=st.data())
def test_any_order_converges_to_the_latest_version(
    any_store: Store, batches: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    """With a version guard, any permutation of batches ends with the newest row of each key."""
    # Each (key, version) has one value, so "the newest row" is well defined.
    for batch in batches:
        for row in batch:
            row["n"] = row["v"] * 10 + row["k"]
    table = fresh_table(any_store)
    for batch in data.draw(st.permutations(batches)):
        result = idempotent_upsert(any_store, table, batch, key=UPSERT_KEY, version="v")
        assert len(batch) == result.total
    latest: dict[tuple[int, str], tuple[Any, ...]] = {}
    for batch in batches:
        for r in batch:
            key = (r["k"], r["p"])
            if key not in latest or r["v"] > latest[key][2]:
                latest[key] = (r["k"], r["p"], r["v"], r["n"])
    assert sorted(latest.values()) == snapshot(any_store, table)


@PROPERTY
@given(before=upsert_rows, batch=upsert_rows)
def test_counts_match_a_model_and_sum_to_the_batch(
    any_store: Store, before: list[dict[str, Any]], batch: list[dict[str, Any]]
) -> None:
    """inserted/updated/unchanged agree with a dict model and add up to the batch size."""
    table = fresh_table(any_store)
    idempotent_upsert(any_store, table, before, key=UPSERT_KEY)
    model = {(r["k"], r["p"]): r for r in before}
    inserted = sum((r["k"], r["p"]) not in model for r in batch)
    unchanged = sum(model.get((r["k"], r["p"])) == r for r in batch)
    result = idempotent_upsert(any_store, table, batch, key=UPSERT_KEY)
    assert (inserted, len(batch) - inserted - unchanged, unchanged) == (
        result.inserted,
        result.updated,
        result.unchanged,
    )
    assert len(batch) == result.total


class SQLiteUpsertMachine(RuleBasedStateMachine):
    """The SQLite table always equals a dict model, across upserts and rolled-back units of work."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.store = SQLiteStore(Path(self.dir.name) / "m.db")
        self.table = fresh_table(self.store)
        self.model: dict[tuple[int, str], dict[str, Any]] = {}

    @rule(rows=upsert_rows)
    def upsert(self, rows: list[dict[str, Any]]) -> None:
        result = idempotent_upsert(self.store, self.table, rows, key=UPSERT_KEY)
        expected_new = sum((r["k"], r["p"]) not in self.model for r in rows)
        assert expected_new == result.inserted
        self.model.update({(r["k"], r["p"]): r for r in rows})

    @rule(rows=upsert_rows)
    def upsert_then_fail(self, rows: list[dict[str, Any]]) -> None:
        try:
            with unit_of_work(self.store) as tx:
                tx.upsert(self.table, rows, key=UPSERT_KEY)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass

    @precondition(lambda self: bool(self.model))
    @rule()
    def reapply_everything(self) -> None:
        result = idempotent_upsert(
            self.store, self.table, list(self.model.values()), key=UPSERT_KEY
        )
        assert len(self.model) == result.unchanged

    @invariant()
    def table_equals_model(self) -> None:
        expected = sorted((r["k"], r["p"], r["v"], r["n"]) for r in self.model.values())
        assert expected == snapshot(self.store, self.table)

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()


TestSQLiteUpsertMachine = SQLiteUpsertMachine.TestCase
TestSQLiteUpsertMachine.settings = settings(max_examples=25, stateful_step_count=10)
