"""The Store contract: every backend (SQLite file, PostgreSQL) behaves the same, test for test.

Each test runs once per backend through conftest's ``any_store`` fixture; a
behaviour that differs between backends fails here, whichever backend is wrong.
"""

from __future__ import annotations

from typing import Any

import pytest

from resilient_pipeline.exceptions import (
    ConfigurationError,
    DuplicateKeyError,
    InvalidBatchError,
)
from resilient_pipeline.storage import (
    Store,
    UpsertResult,
    idempotent_upsert,
    quote_identifier,
    unit_of_work,
)
from tests.strategies import UPSERT_DDL, UPSERT_KEY

Row = tuple[Any, ...]

BATCH: list[dict[str, Any]] = [
    {"k": 1, "p": "meta", "v": 10, "n": None},
    {"k": 1, "p": "google", "v": 20, "n": -2},
    {"k": 2, "p": "meta", "v": 30, "n": 7},
]
BATCH_ROWS: list[Row] = [(1, "google", 20, -2), (1, "meta", 10, None), (2, "meta", 30, 7)]

# Names the one identifier helper refuses: empty, a NUL, padding, a look-alike
# ligature, and one byte over PostgreSQL's 63-byte limit.
BAD_NAMES = ["", "kpi\x00", " kpi", "\ufb01le", "x" * 64]
# Names that are hostile but printable: quoted, each is exactly one identifier.
HOSTILE_NAMES = ['kpi"; DROP TABLE kpi; --', "Robert'); DROP TABLE students;--", "日付 table"]


@pytest.fixture
def store(any_store: Store) -> Store:
    """Every backend, with an empty ``kpi`` table keyed by ``(k, p)``."""
    with unit_of_work(any_store) as tx:
        tx.execute(UPSERT_DDL.format(t=tx.table("kpi")))
    return any_store


def contents(store: Store, table: str = "kpi") -> list[Row]:
    """Every row of ``table``, value by value, in key order."""
    with unit_of_work(store) as tx:
        return [
            tuple(r) for r in tx.fetchall(f"SELECT k, p, v, n FROM {tx.table(table)} ORDER BY k, p")
        ]


def insert(store: Store, *rows: Row) -> None:
    """Plain INSERTs inside the unit of work already open on ``store`` (or a new one)."""
    with unit_of_work(store) as tx:
        marks = ", ".join([tx.placeholder] * 4)
        tx.executemany(f"INSERT INTO {tx.table('kpi')} VALUES ({marks})", list(rows))


# ------------------------------------------------------------------ unit of work
def test_commit_makes_every_write_visible(store: Store) -> None:
    """A unit of work that ends normally commits all its writes, seen by the next one."""
    with unit_of_work(store) as tx:
        marks = ", ".join([tx.placeholder] * 4)
        tx.execute(f"INSERT INTO {tx.table('kpi')} VALUES ({marks})", (1, "meta", 10, None))
        tx.executemany(
            f"INSERT INTO {tx.table('kpi')} VALUES ({marks})",
            [(1, "google", 20, -2), (2, "meta", 30, 7)],
        )
    assert BATCH_ROWS == contents(store)


def test_an_error_rolls_back_every_write_and_propagates(store: Store) -> None:
    """An exception inside the unit of work undoes all its writes and escapes unchanged."""
    boom = RuntimeError("injected after the writes")

    def save() -> None:
        with unit_of_work(store):
            insert(store, (1, "meta", 10, None), (2, "meta", 30, 7))
            raise boom

    with pytest.raises(RuntimeError) as info:
        save()
    assert boom is info.value
    assert [] == contents(store)


def test_nested_unit_of_work_is_a_savepoint(store: Store) -> None:
    """An inner unit of work joins the outer one and, failing, undoes only its own writes."""
    joined = []

    def inner() -> None:
        with unit_of_work(store) as tx:
            joined.append(tx)
            insert(store, (2, "meta", 30, 7))
            raise ValueError("inner")

    with unit_of_work(store) as outer:
        insert(store, (1, "meta", 10, None))
        with pytest.raises(ValueError, match="inner"):
            inner()
        insert(store, (1, "google", 20, -2))
    assert [outer] == joined
    assert [(1, "google", 20, -2), (1, "meta", 10, None)] == contents(store)


def test_nested_failure_escaping_the_outer_block_writes_nothing(store: Store) -> None:
    """If the inner failure also escapes the outer unit of work, nothing is written."""

    def save() -> None:
        with unit_of_work(store):
            insert(store, (1, "meta", 10, None))
            with unit_of_work(store):
                insert(store, (2, "meta", 30, 7))
                raise ValueError("inner")

    with pytest.raises(ValueError, match="inner"):
        save()
    assert [] == contents(store)


def test_upsert_inside_a_failed_unit_of_work_is_rolled_back(store: Store) -> None:
    """An upsert joins the open unit of work: its rows go when that unit of work fails."""
    results = []

    def save() -> None:
        with unit_of_work(store) as tx:
            results.append(idempotent_upsert(tx, "kpi", BATCH, key=UPSERT_KEY))
            raise RuntimeError("later")

    with pytest.raises(RuntimeError, match="later"):
        save()
    assert [UpsertResult(3, 0, 0)] == results
    assert [] == contents(store)


# ----------------------------------------------------------- idempotent upsert
def test_upsert_counts_inserts_updates_and_unchanged_rows(store: Store) -> None:
    """Insert, identical re-run, then one change and one new key: exact counts and contents."""
    assert UpsertResult(3, 0, 0) == idempotent_upsert(store, "kpi", BATCH, key=UPSERT_KEY)
    assert BATCH_ROWS == contents(store)

    assert UpsertResult(0, 0, 3) == idempotent_upsert(store, "kpi", BATCH, key=UPSERT_KEY)
    assert BATCH_ROWS == contents(store)

    changed = [dict(row) for row in BATCH]
    changed[1]["v"] = 21
    changed[2]["n"] = None  # a value becoming NULL is a change too
    changed.append({"k": 3, "p": "tiktok", "v": 0, "n": 0})
    assert UpsertResult(1, 2, 1) == idempotent_upsert(store, "kpi", changed, key=UPSERT_KEY)
    expected = [
        (1, "google", 21, -2),
        (1, "meta", 10, None),
        (2, "meta", 30, None),
        (3, "tiktok", 0, 0),
    ]
    assert expected == contents(store)


def test_rerunning_a_batch_changes_nothing(store: Store) -> None:
    """Applying a batch again (any number of times) reports it unchanged and leaves the table."""
    idempotent_upsert(store, "kpi", BATCH, key=UPSERT_KEY)
    once = contents(store)
    results = [idempotent_upsert(store, "kpi", BATCH, key=UPSERT_KEY) for _ in range(3)]
    assert [UpsertResult(0, 0, 3)] * 3 == results
    assert once == contents(store)


def test_a_duplicate_key_names_both_rows_and_writes_nothing(store: Store) -> None:
    """The same key twice in one batch raises DuplicateKeyError naming the rows and the key."""
    batch = [*BATCH, {"k": 1, "p": "meta", "v": 99, "n": 1}]
    with pytest.raises(DuplicateKeyError) as info:
        idempotent_upsert(store, "kpi", batch, key=UPSERT_KEY)
    assert (1, "meta") == info.value.key
    assert UPSERT_KEY == info.value.key_columns
    assert [3] == [problem.index for problem in info.value.problems]
    assert "row 3: duplicate key k=1, p='meta' (first seen in row 0)" in str(info.value)
    assert isinstance(info.value, InvalidBatchError)
    assert [] == contents(store)


# ------------------------------------------------------------------ identifiers
@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_rejected_before_any_sql(store: Store, name: str) -> None:
    """The one identifier helper refuses a bad table or key name, naming the option."""
    with pytest.raises(ConfigurationError) as direct:
        quote_identifier(name, option="table")
    with pytest.raises(ConfigurationError) as via_tx, unit_of_work(store) as tx:
        tx.table(name)
    with pytest.raises(ConfigurationError) as via_table:
        idempotent_upsert(store, name, BATCH, key=UPSERT_KEY)
    with pytest.raises(ConfigurationError) as via_key:
        idempotent_upsert(store, "kpi", BATCH, key=("k", name))
    assert [("table", name)] * 3 == [
        (e.value.option, e.value.value) for e in (direct, via_tx, via_table)
    ]
    assert ("key", name) == (via_key.value.option, via_key.value.value)
    assert [] == contents(store)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_column_names_in_rows_are_an_invalid_batch(store: Store, name: str) -> None:
    """Rows with an unsafe column name are an invalid batch naming that column; none written."""
    batch = [{**row, name: 1} for row in BATCH]
    with pytest.raises(InvalidBatchError) as info:
        idempotent_upsert(store, "kpi", batch, key=UPSERT_KEY)
    assert [0] == [problem.index for problem in info.value.problems]
    assert f"column={name!r} is invalid: not a safe SQL identifier" in str(info.value)
    assert [] == contents(store)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_one_quoted_table(store: Store, name: str) -> None:
    """A hostile but printable table name is created, upserted into and read back as itself."""
    with unit_of_work(store) as tx:
        tx.execute(UPSERT_DDL.format(t=tx.table(name)))
    assert UpsertResult(3, 0, 0) == idempotent_upsert(store, name, BATCH, key=UPSERT_KEY)
    assert BATCH_ROWS == contents(store, name)
    assert [] == contents(store)  # the table the name tries to drop is untouched
