"""SQLite against hostile values: each is written exactly, or refused by row and column."""

from __future__ import annotations

import datetime
import math
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilient_pipeline import SQLiteStore, StoreError, idempotent_upsert, unit_of_work
from resilient_pipeline.exceptions import DuplicateKeyError, InvalidBatchError
from resilient_pipeline.storage import Store

LIMIT = 300
"""SQLITE_LIMIT_LENGTH, lowered so that over-long values are cheap to make."""

# Declared type -> SQLite's affinity, from https://sqlite.org/datatype3.html (3.1):
# the ground truth the read-back is compared with.
DECLARED = {
    "INTEGER": "INTEGER",
    "FLOATING POINT": "INTEGER",  # "INT" wins: SQLite's own example
    "REAL": "REAL",
    "DOUBLE PRECISION": "REAL",
    "TEXT": "TEXT",
    "VARCHAR(10)": "TEXT",
    "BLOB": "BLOB",
    "": "BLOB",
    "NUMERIC": "NUMERIC",
    "DECIMAL(12, 2)": "NUMERIC",
    "DATE": "NUMERIC",
    "DATETIME": "NUMERIC",
    "BOOLEAN": "NUMERIC",
    "MONEY": "NUMERIC",
}
STRICT = {"INT": "INTEGER", "REAL": "REAL", "TEXT": "TEXT", "BLOB": "BLOB", "ANY": "BLOB"}

INT_EDGES = (0, -1, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1)
FLOAT_EDGES = (math.nan, -math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308)
DECIMAL_EDGES = tuple(
    map(
        Decimal,
        (
            "1234567890.123456789",
            "1.50",
            "0.1",
            "-0",
            "NaN",
            "sNaN",
            "-Infinity",
            "1E+400",
            "1E-400",
            "9223372036854775807",
            "9223372036854775808",
            "9007199254740993",
            "0.30000000000000004",
        ),
    )
)
UTC_PLUS_2 = datetime.timezone(datetime.timedelta(hours=2))
any_char = st.characters(codec=None, exclude_categories=())  # lone surrogates included


def _long(char: str, count: int) -> str:
    return char * count


texts = st.one_of(
    st.text(any_char, max_size=6),
    st.sampled_from(["a\x00b", "\U0001f600", "\ud800", "x\udfff", "2026", " 12 ", "1e5", "0x10"]),
    st.text(st.sampled_from("0123456789+-.eE \t\nx\u0661"), max_size=6),  # numeric look-alikes
    st.builds(
        _long, st.sampled_from("a\u00e9\u20ac\U0001f600"), st.integers(LIMIT // 4 - 8, LIMIT + 8)
    ),
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers() | st.sampled_from(INT_EDGES),
    st.floats() | st.sampled_from(FLOAT_EDGES),
    st.decimals() | st.sampled_from(DECIMAL_EDGES),
    texts,
    st.binary(max_size=4) | st.builds(bytes, st.integers(LIMIT - 40, LIMIT + 8)),
    st.builds(bytearray, st.binary(max_size=4)),
    st.dates(),
    st.datetimes() | st.datetimes(timezones=st.just(UTC_PLUS_2)),
    st.sampled_from([[1], {"a": 1}, (1,), {1}, uuid.UUID(int=1), datetime.time(1), 1j, object()]),
)


def stored_exactly(read: Any, value: object, affinity: str) -> bool:
    """Whether ``read`` is ``value`` as SQLite promises to keep it in a column of ``affinity``."""
    if value is None:
        return read is None
    if isinstance(value, bool):
        return type(read) is int and read == value  # SQLite has no booleans
    if isinstance(value, datetime.datetime):
        return read == value.isoformat(" ")
    if isinstance(value, datetime.date):
        return read == value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return type(read) is bytes and read == value
    if isinstance(value, str):
        return type(read) is str and read == value
    if isinstance(value, Decimal):
        if affinity == "NUMERIC":  # the same number (the scale, trailing zeros, is not kept)
            return type(read) in (int, float) and Decimal(repr(read)) == value
        return read == str(value)
    if isinstance(value, float):
        kinds = (int, float) if affinity == "NUMERIC" else (float,)
        return type(read) in kinds and read == value
    if isinstance(value, int):
        return type(read) is (float if affinity == "REAL" else int) and read == value
    return False  # nothing else can be stored


@contextmanager
def limited_store() -> Iterator[SQLiteStore]:
    """An in-memory store (one connection) whose length limit is ``LIMIT``."""
    store = SQLiteStore(":memory:")
    session = store.connect()
    session.connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, LIMIT)  # type: ignore[attr-defined,unused-ignore]
    session.release()
    try:
        yield store
    finally:
        store.close()


class _Undo(Exception):
    pass


def writes_alone(store: Store, row: dict[str, Any], key: str) -> bool:
    """Whether ``row`` on its own is accepted (the write is rolled back)."""
    try:
        with unit_of_work(store) as tx:
            tx.upsert("t", [row], key=key)
            raise _Undo
    except _Undo:
        return True
    except InvalidBatchError:
        return False


def contents(store: Store) -> list[tuple[Any, ...]]:
    with unit_of_work(store) as tx:
        return tx.fetchall("SELECT id, c, typeof(c) FROM t ORDER BY id")


column_types = st.one_of(
    st.tuples(st.sampled_from(sorted(DECLARED)), st.just(False)),
    st.tuples(st.sampled_from(sorted(STRICT)), st.just(True)),
)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Connection.setlimit is Python 3.11+")
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    column=column_types,
    as_key=st.booleans(),
    rowid_alias=st.booleans(),
    returning=st.booleans(),
    batch=st.lists(values, min_size=1, max_size=6, unique_by=str),
)
def test_every_value_is_written_exactly_or_refused_by_row_and_column(
    column: tuple[str, bool], as_key: bool, rowid_alias: bool, returning: bool, batch: list[Any]
) -> None:
    """Each value reads back exactly, or the error names just the bad rows; no half-writes."""
    declared, strict = column
    affinity = (STRICT if strict else DECLARED)[declared]
    key = "c" if as_key else "id"
    ident = "INTEGER PRIMARY KEY" if rowid_alias and not as_key else "INTEGER NOT NULL UNIQUE"
    c = f"{declared} NOT NULL UNIQUE" if as_key else declared
    ddl = f"CREATE TABLE t (id {ident}, c {c}){' STRICT' if strict else ''}"
    rows = [{"id": i, "c": value} for i, value in enumerate(batch)]
    with limited_store() as store:
        with unit_of_work(store) as tx:
            tx.execute(ddl)
            if not as_key:  # rows the batch would update: a failed batch must leave them
                tx.executemany("INSERT INTO t (id) VALUES (?)", [(r["id"],) for r in rows])
        before = contents(store)
        alone = [writes_alone(store, row, key) for row in rows]

        error: InvalidBatchError | None = None
        with unit_of_work(store) as tx:  # the caller catches the error and commits
            try:
                result = tx.upsert("t", rows, key=key, returning=returning)
            except InvalidBatchError as exc:
                error = exc

        if error is None:
            assert all(alone)
            assert len(rows) == result.total
            stored = {i: (read, kind) for i, read, kind in contents(store)}
            for i, value in enumerate(batch):
                assert stored_exactly(stored[i][0], value, affinity), (value, stored[i])
            again = idempotent_upsert(store, "t", rows, key=key)
            assert (0, len(rows)) == (again.changed, again.unchanged)
        else:
            assert before == contents(store)
            if isinstance(error, DuplicateKeyError):  # two equal keys (1 and 1.0, ...)
                assert as_key
                assert 2 <= sum(value == error.key[0] for value in batch)
            else:
                assert {"c"} == {p.column for p in error.problems}
                bad = {i for i, ok in enumerate(alone) if not ok}
                assert bad == {p.index for p in error.problems}


# --------------------------------------------------------------- one case each


def test_a_nan_key_is_refused_instead_of_adding_a_row_every_run(tmp_path: Path) -> None:
    """SQLite binds NaN as NULL, and NULLs never conflict: the upsert refuses it by row/column."""
    store = SQLiteStore(tmp_path / "db")
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE t (k REAL PRIMARY KEY, v REAL)")
    rows = [{"k": 1.0, "v": 2.0}, {"k": math.nan, "v": 1.0}, {"k": 2.0, "v": math.nan}]
    for _ in range(2):
        with pytest.raises(InvalidBatchError) as info:
            idempotent_upsert(store, "t", rows, key="k")
        assert [(1, "k"), (2, "v")] == [(p.index, p.column) for p in info.value.problems]
    with unit_of_work(store) as tx:
        assert [] == tx.fetchall("SELECT * FROM t")
    store.close()


def test_a_decimal_is_kept_exactly_or_refused(tmp_path: Path) -> None:
    """NUMERIC keeps a Decimal's number when a 64-bit int or a double holds it; else refused."""
    store = SQLiteStore(tmp_path / "db")
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, n NUMERIC(12, 2), raw)")
    kept = [Decimal("1.50"), Decimal("0.1"), Decimal("12345678901234567"), Decimal("-0")]
    rows = [{"k": i, "n": d, "raw": d} for i, d in enumerate(kept)]
    idempotent_upsert(store, "t", rows, key="k")
    with unit_of_work(store) as tx:
        stored = tx.fetchall("SELECT n, raw FROM t ORDER BY k")
    assert kept == [Decimal(repr(n)) for n, _ in stored]
    assert [str(d) for d in kept] == [raw for _, raw in stored]  # no affinity: the exact text
    too_precise = {"k": 9, "n": Decimal("1234567890.123456789"), "raw": None}
    with pytest.raises(InvalidBatchError) as info:
        idempotent_upsert(store, "t", [too_precise], key="k")
    assert [(0, "n")] == [(p.index, p.column) for p in info.value.problems]
    assert idempotent_upsert(store, "t", rows, key="k").unchanged == len(rows)
    store.close()


def test_text_sqlite_would_turn_into_a_number_is_refused(tmp_path: Path) -> None:
    """A DATE column has NUMERIC affinity: "2026" would come back as the integer 2026."""
    store = SQLiteStore(tmp_path / "db")
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, d DATE)")
    rows = [
        {"k": 1, "d": "2026-11-28"},
        {"k": 2, "d": "2026"},
        {"k": 3, "d": datetime.date(2026, 1, 2)},
    ]
    with pytest.raises(InvalidBatchError) as info:
        idempotent_upsert(store, "t", rows, key="k")
    assert [(1, "d")] == [(p.index, p.column) for p in info.value.problems]
    store.close()


@pytest.mark.parametrize(
    ("value", "error"),
    [(2**70, "OverflowError"), ("a\ud800", "UnicodeEncodeError")],
)
def test_your_own_sql_with_an_unbindable_parameter_raises_a_store_error(
    tmp_path: Path, value: object, error: str
) -> None:
    """tx.execute: what sqlite3 cannot bind is a StoreError (the driver's error is the cause)."""
    store = SQLiteStore(tmp_path / "db")
    with pytest.raises(StoreError) as info, unit_of_work(store) as tx:
        tx.execute("SELECT ?", (value,))
    assert error == type(info.value.__cause__).__name__
    store.close()


def test_a_batch_failing_half_way_leaves_none_of_its_rows(tmp_path: Path) -> None:
    """A CHECK constraint fails on row 3: rows 0-2 are undone even if the caller commits."""
    store = SQLiteStore(tmp_path / "db")
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE t (k INTEGER UNIQUE, x INTEGER CHECK (x < 10))")
        tx.execute("INSERT INTO t VALUES (0, 0)")
    rows = [{"k": k, "x": 50 if k == 3 else 1} for k in range(5)]
    for returning in (False, True):  # the executemany path and the row-by-row path
        with unit_of_work(store) as tx:
            with pytest.raises(StoreError):
                tx.upsert("t", rows, key="k", returning=returning)
            tx.execute("INSERT INTO t VALUES (?, ?)", (10 + returning, 2))
        with unit_of_work(store) as tx:
            assert [(0, 0), (10, 2)] == tx.fetchall("SELECT * FROM t ORDER BY k")[:2]
            assert 2 + returning == tx.fetchone("SELECT count(*) FROM t")[0]  # type: ignore[index]
    store.close()


def test_a_column_named_rowid_does_not_confuse_the_counts(tmp_path: Path) -> None:
    """The counts come from the real rowid, not from a column that shadows its name."""
    store = SQLiteStore(tmp_path / "db")
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY, RowID INTEGER, x INTEGER)")
    first = idempotent_upsert(store, "t", [{"k": "a", "RowID": 100, "x": 1}], key="k")
    rows = [{"k": "a", "RowID": 100, "x": 2}, {"k": "b", "RowID": 1, "x": 1}]
    second = idempotent_upsert(store, "t", rows, key="k")
    assert (1, 0, 0) == (first.inserted, first.updated, first.unchanged)
    assert (1, 1, 0) == (second.inserted, second.updated, second.unchanged)
    store.close()


def test_a_date_and_its_iso_text_are_one_key(tmp_path: Path) -> None:
    """Both are stored as the same text, so one batch holding both has a duplicate key."""
    store = SQLiteStore(tmp_path / "db")
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE t (day DATE PRIMARY KEY, x INTEGER)")
    rows = [{"day": datetime.date(2026, 11, 28), "x": 1}, {"day": "2026-11-28", "x": 2}]
    with pytest.raises(DuplicateKeyError):
        idempotent_upsert(store, "t", rows, key="day")
    result = idempotent_upsert(store, "t", rows, key="day", on_duplicate="last")
    assert (1, 1) == (result.inserted, result.duplicates)
    with unit_of_work(store) as tx:
        assert [("2026-11-28", 2)] == tx.fetchall("SELECT * FROM t")
    store.close()


# ------------------------------------------------------------------ every store


def test_a_row_without_a_version_is_refused_by_row(any_store: Store) -> None:
    """version=: a NULL version is an error naming the row; a stored NULL is older than any."""
    with unit_of_work(any_store) as tx:
        tx.execute(f"CREATE TABLE {tx.table('v')} (k INTEGER PRIMARY KEY, ver INTEGER, x INTEGER)")
        tx.execute(f"INSERT INTO {tx.table('v')} VALUES (1, 2, 1), (3, NULL, 1)")
    batch = [
        {"k": 2, "ver": 1, "x": 1},
        {"k": 1, "ver": None, "x": 5},
        {"k": 4, "ver": None, "x": 5},
    ]
    with pytest.raises(InvalidBatchError) as info:
        idempotent_upsert(any_store, "v", batch, key="k", version="ver")
    assert [(1, "ver"), (2, "ver")] == [(p.index, p.column) for p in info.value.problems]
    result = idempotent_upsert(any_store, "v", [{"k": 3, "ver": 1, "x": 2}], key="k", version="ver")
    assert 1 == result.updated
    with unit_of_work(any_store) as tx:
        assert [(1, 2, 1), (3, 1, 2)] == tx.fetchall(f"SELECT * FROM {tx.table('v')} ORDER BY k")


def test_a_table_whose_index_name_is_long_can_be_upserted(any_store: Store) -> None:
    """A 63-byte table name: the database names its UNIQUE index, never checked by us."""
    name = "t" * 63
    with unit_of_work(any_store) as tx:
        tx.execute(f"CREATE TABLE {tx.table(name)} (k TEXT, x INTEGER, UNIQUE (k))")
    rows = [{"k": "a", "x": 1}, {"k": "b", "x": 2}]
    assert 2 == idempotent_upsert(any_store, name, rows, key="k").inserted
    assert 2 == idempotent_upsert(any_store, name, rows, key="k").unchanged


def test_an_unhashable_key_value_is_compared_by_value(any_store: Store) -> None:
    """bytearray keys: duplicates are found (no TypeError), distinct ones are written."""
    blob = "BLOB" if any_store.dialect == "sqlite" else "BYTEA"
    with unit_of_work(any_store) as tx:
        tx.execute(f"CREATE TABLE {tx.table('b')} (k {blob} PRIMARY KEY, x INTEGER)")
    rows = [{"k": bytearray(b"a"), "x": 1}, {"k": bytearray(b"b"), "x": 2}]
    assert 2 == idempotent_upsert(any_store, "b", rows, key="k").inserted
    with pytest.raises(DuplicateKeyError):
        idempotent_upsert(any_store, "b", [*rows, {"k": b"a", "x": 3}], key="k")
