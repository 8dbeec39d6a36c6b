"""Hypothesis properties of idempotent_upsert (SQLite file, PostgreSQL) and a state machine."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilient_pipeline import PostgresStore, SQLiteStore, idempotent_upsert, unit_of_work
from resilient_pipeline.storage import Store

DDL = (
    "CREATE TABLE {t} (k INTEGER NOT NULL, p TEXT NOT NULL, v INTEGER, n INTEGER"
    ", PRIMARY KEY (k, p))"
)
KEY = ("k", "p")

rows_st = st.lists(
    st.fixed_dictionaries(
        {
            "k": st.integers(0, 6),
            "p": st.sampled_from(["meta", "google"]),
            "v": st.integers(0, 3),
            "n": st.none() | st.integers(-2, 2),
        }
    ),
    max_size=12,
).map(lambda rows: list({(r["k"], r["p"]): r for r in rows}.values()))  # unique keys


def fresh_table(store: Store) -> str:
    name = f"t_{uuid.uuid4().hex[:8]}"
    with unit_of_work(store) as tx:
        tx.execute(DDL.format(t=tx.table(name)))
    return name


def snapshot(store: Store, table: str) -> list[tuple[Any, ...]]:
    with unit_of_work(store) as tx:
        return sorted(tx.fetchall(f"SELECT k, p, v, n FROM {tx.table(table)}"))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A SQLite file store, or a PostgreSQL store on a fresh schema (COPY path from 4 rows)."""
    s: Store
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "p.db")
    else:
        s = PostgresStore(
            request.getfixturevalue("postgres_dsn"),
            schema=request.getfixturevalue("postgres_schema"),
            copy_threshold=4,
        )
    yield s
    s.close()


PROPERTY = settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(rows=rows_st)
def test_applying_twice_equals_applying_once(store: Store, rows: list[dict[str, Any]]) -> None:
    """The second application changes nothing and reports every row unchanged."""
    table = fresh_table(store)
    first = idempotent_upsert(store, table, rows, key=KEY)
    once = snapshot(store, table)
    second = idempotent_upsert(store, table, rows, key=KEY)
    assert once == snapshot(store, table)
    assert (len(rows), 0, 0) == (first.inserted, first.updated, first.unchanged)
    assert (0, 0, len(rows)) == (second.inserted, second.updated, second.unchanged)


@PROPERTY
@given(batches=st.lists(rows_st, min_size=1, max_size=4), data=st.data())
def test_any_order_converges_to_the_latest_version(
    store: Store, batches: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    """With a version guard, any permutation of batches ends with the newest row of each key."""
    # Each (key, version) has one value, so "the newest row" is well defined.
    for batch in batches:
        for row in batch:
            row["n"] = row["v"] * 10 + row["k"]
    table = fresh_table(store)
    for batch in data.draw(st.permutations(batches)):
        result = idempotent_upsert(store, table, batch, key=KEY, version="v")
        assert len(batch) == result.total
    latest: dict[tuple[int, str], tuple[Any, ...]] = {}
    for batch in batches:
        for r in batch:
            key = (r["k"], r["p"])
            if key not in latest or r["v"] > latest[key][2]:
                latest[key] = (r["k"], r["p"], r["v"], r["n"])
    assert sorted(latest.values()) == snapshot(store, table)


@PROPERTY
@given(before=rows_st, batch=rows_st)
def test_counts_match_a_model_and_sum_to_the_batch(
    store: Store, before: list[dict[str, Any]], batch: list[dict[str, Any]]
) -> None:
    """inserted/updated/unchanged agree with a dict model and add up to the batch size."""
    table = fresh_table(store)
    idempotent_upsert(store, table, before, key=KEY)
    model = {(r["k"], r["p"]): r for r in before}
    inserted = sum((r["k"], r["p"]) not in model for r in batch)
    unchanged = sum(model.get((r["k"], r["p"])) == r for r in batch)
    result = idempotent_upsert(store, table, batch, key=KEY)
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

    @rule(rows=rows_st)
    def upsert(self, rows: list[dict[str, Any]]) -> None:
        result = idempotent_upsert(self.store, self.table, rows, key=KEY)
        expected_new = sum((r["k"], r["p"]) not in self.model for r in rows)
        assert expected_new == result.inserted
        self.model.update({(r["k"], r["p"]): r for r in rows})

    @rule(rows=rows_st)
    def upsert_then_fail(self, rows: list[dict[str, Any]]) -> None:
        try:
            with unit_of_work(self.store) as tx:
                tx.upsert(self.table, rows, key=KEY)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass

    @precondition(lambda self: bool(self.model))
    @rule()
    def reapply_everything(self) -> None:
        result = idempotent_upsert(self.store, self.table, list(self.model.values()), key=KEY)
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
