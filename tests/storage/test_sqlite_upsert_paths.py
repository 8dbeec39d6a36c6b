"""SQLite's fast upsert paths against the plain ones, value by value.

The fast paths: multi-row ``INSERT`` statements (``ROWS_PER_STATEMENT`` rows
bound at once, the rest one row at a time), exact dates left as ``date``
objects until they are bound (``SQLiteValues.comparable`` / ``bind_flat``),
and whole-column checks (``_clean``) ahead of the per-value ones (``_problem``).
Each must give what the plain path gives: the same table, the same counts,
the same rejections.
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from itertools import chain
from typing import Any
from unittest import mock

import attrs
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from resilient_pipeline import SQLiteStore, idempotent_upsert, unit_of_work
from resilient_pipeline.exceptions import DuplicateKeyError, InvalidBatchError, StoreError
from resilient_pipeline.storage import UpsertResult, _sqlite_upsert
from resilient_pipeline.storage._batch import TableInfo
from resilient_pipeline.storage._sqlite_values import (
    SQLiteValues,
    _bind_as_is,
    _bind_numeric,
    _clean,
    _problem,
    _size,
    accepted_types,
    affinity,
)
from tests.storage.test_sqlite_hostile import DECLARED, LIMIT, STRICT, texts, values

AFFINITIES = ("INTEGER", "TEXT", "BLOB", "REAL", "NUMERIC")
DAYS = [datetime.date(2026, 1, 1) + datetime.timedelta(days=d) for d in range(3)]


class _Day(datetime.date):
    """A date subclass that formats itself its own way."""

    def isoformat(self) -> str:
        return f"day {self.day}"


dates = st.one_of(
    st.sampled_from(DAYS),
    st.sampled_from([d.isoformat() for d in DAYS]),  # one key with the date above
    st.builds(_Day, st.just(2026), st.just(1), st.integers(1, 3)),
    st.datetimes(),
    st.none(),
)
keys = st.one_of(
    st.sampled_from([*DAYS, DAYS[0].isoformat(), 1, 1.0, True, "a", "A", Decimal("1.0")]), values
)


def accepts(declared: str, strict: bool, value: object) -> bool:
    """Whether the type check of ``idempotent_upsert`` lets ``value`` into the column."""
    allowed = accepted_types(declared, strict=strict)
    if value is None or allowed is None:
        return True
    if isinstance(value, bool) and bool not in allowed:
        return False
    return isinstance(value, allowed)


def same(a: object, b: object) -> bool:
    """Equal values of the same type (NaN included)."""
    return type(a) is type(b) and (a == b or repr(a) == repr(b))


# ------------------------------------------------------------- column checks


@settings(max_examples=500)
@given(
    kind=st.sampled_from(AFFINITIES),
    column=st.lists(values, max_size=8) | st.lists(texts | st.none(), max_size=8),
)
def test_a_column_the_fast_check_passes_has_no_value_the_slow_check_refuses(
    kind: Any, column: list[Any]
) -> None:
    """_clean's whole-column proof never hides a value _problem refuses, and bounds every size."""
    present = [v for v in column if v is not None]
    bound = _clean({type(v) for v in present}, present, kind, LIMIT)
    if bound is not None:
        assert [] == [v for v in column if _problem(v, kind, LIMIT) is not None]
        assert all(_size(v, kind) <= bound for v in present)


def test_a_long_clean_text_column_is_measured_value_by_value() -> None:
    """Texts within the limit each, but over it together, still pass the whole-column check."""
    column = ["a" * (LIMIT // 2)] * 4
    assert LIMIT // 2 == _clean({str}, column, "TEXT", LIMIT)
    assert _clean({str}, ["\ud800", "a"], "TEXT", LIMIT) is None  # a lone surrogate


# ---------------------------------------------------------------- binding

declared_types = st.one_of(
    st.tuples(st.sampled_from(sorted(DECLARED)), st.just(False)),
    st.tuples(st.sampled_from(sorted(STRICT)), st.just(True)),
)


@st.composite
def typed_rows(draw: st.DrawFn) -> tuple[SQLiteValues, tuple[str, ...], list[tuple[Any, ...]]]:
    """Columns of random declared types and rows whose values pass the type check."""
    declared = draw(st.lists(declared_types, min_size=1, max_size=4))
    columns = tuple(f"c{i}" for i in range(len(declared)))
    cells = [
        st.one_of(values, dates).filter(lambda v, d=d, s=s: accepts(d, s, v)) for d, s in declared
    ]
    rows = draw(st.lists(st.tuples(*cells), max_size=12))
    kinds = {c: affinity(d, strict=s) for c, (d, s) in zip(columns, declared, strict=True)}
    return SQLiteValues(kinds), columns, rows


def bound_one_by_one(checker: SQLiteValues, columns: tuple[str, ...], row: tuple[Any, ...]) -> Any:
    """The reference: every value bound on its own, by its column's affinity."""
    kinds = [checker.affinities[c] for c in columns]
    return tuple(
        _bind_numeric(v) if kind == "NUMERIC" else _bind_as_is(v)
        for v, kind in zip(row, kinds, strict=True)
    )


@settings(max_examples=300)
@given(typed=typed_rows())
def test_binding_rows_flat_or_after_comparing_gives_the_values_bound_one_by_one(
    typed: tuple[SQLiteValues, tuple[str, ...], list[tuple[Any, ...]]],
) -> None:
    """bind, bind_flat and comparable-then-bind all give each value's own binding."""
    checker, columns, rows = typed
    expected = [bound_one_by_one(checker, columns, row) for row in rows]
    flat = checker.bind_flat(columns, list(chain.from_iterable(rows)))
    for bound in (
        checker.bind(columns, rows),
        checker.bind(columns, checker.comparable(columns, rows)),
        [tuple(flat[i : i + len(columns)]) for i in range(0, len(flat), len(columns))],
    ):
        assert len(expected) == len(bound)
        for want, got in zip(expected, bound, strict=True):
            assert all(map(same, want, got)), (want, got)


@settings(max_examples=300)
@given(typed=typed_rows())
def test_comparable_rows_are_equal_exactly_when_their_bound_values_are(
    typed: tuple[SQLiteValues, tuple[str, ...], list[tuple[Any, ...]]],
) -> None:
    """Deduplicating on comparable() finds the duplicates bind() would (dates left as dates)."""
    checker, columns, rows = typed
    # A Decimal NaN is refused before deduplication (and sNaN raises when compared).
    rows = [r for r in rows if not any(isinstance(v, Decimal) and v.is_nan() for v in r)]
    compared = checker.comparable(columns, rows)
    bound = checker.bind(columns, rows)
    for i in range(len(rows)):
        for j in range(len(rows)):
            assert (compared[i] == compared[j]) == (bound[i] == bound[j])


# --------------------------------------------------- whole upserts, both paths


@contextmanager
def plain_path(store: SQLiteStore, table: str) -> Iterator[None]:
    """One row per statement, every value bound before deduplication: the path before."""
    with unit_of_work(store) as tx:
        info: TableInfo = tx.session.describe_table(table)  # type: ignore[attr-defined]
    values_of: SQLiteValues = info.extra["values"]
    store.cache[f"table:{table}"] = attrs.evolve(info, convert_values=values_of.bind)
    with mock.patch.object(_sqlite_upsert, "ROWS_PER_STATEMENT", 1):
        yield


def outcome(store: SQLiteStore, rows: list[dict[str, Any]], **options: Any) -> Any:
    """What an upsert reports: its result, or its error with every problem named."""
    try:
        return idempotent_upsert(store, "t", rows, key=("k", "j"), **options)
    except DuplicateKeyError as exc:
        return ("duplicate", exc.key, [str(p) for p in exc.problems])
    except InvalidBatchError as exc:
        return ("invalid", [(p.index, p.column, p.message) for p in exc.problems])
    except StoreError as exc:  # a STRICT column refusing what its affinity would not keep
        return ("store", exc.sqlstate)


def table_contents(store: SQLiteStore) -> list[tuple[Any, ...]]:
    with unit_of_work(store) as tx:
        return tx.fetchall(
            "SELECT k, typeof(k), j, c, typeof(c), d, typeof(d) FROM t ORDER BY 1, 3"
        )


# Values each type check lets through, most of them kept exactly: batches that get written.
FRIENDLY: list[tuple[object, st.SearchStrategy[Any]]] = [
    (0, st.integers(-3, 3)),
    (0.5, st.floats(-1e6, 1e6, allow_nan=False)),
    ("a", st.sampled_from(["a", "A", "b", "é"])),
    (DAYS[0], st.sampled_from(DAYS)),
    ("2026-01-01", st.sampled_from([d.isoformat() for d in DAYS])),
    (Decimal("1.5"), st.decimals(-100, 100, places=2)),
    (True, st.booleans()),
    (b"x", st.binary(max_size=3)),
    (datetime.datetime(2026, 1, 1), st.datetimes()),
]


def friendly(declared: str, strict: bool, *, nulls: bool = True) -> st.SearchStrategy[Any]:
    """Values of the types the column accepts (and NULL)."""
    fitting = [s for sample, s in FRIENDLY if accepts(declared, strict, sample)]
    return st.one_of(*fitting, *([st.none()] if nulls else []))


@pytest.mark.skipif(
    not hasattr(sqlite3.Connection, "setlimit"), reason="Connection.setlimit is Python 3.11+"
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    column=declared_types,
    layout=st.sampled_from(["", "", " WITHOUT ROWID"]),  # the row-by-row path
    hostile=st.sampled_from([False, False, True]),
    per=st.integers(2, 5),
    on_duplicate=st.sampled_from(["error", "first", "last"]),
    returning=st.booleans(),
    data=st.data(),
)
def test_multi_row_statements_write_and_report_what_one_row_statements_do(
    column: tuple[str, bool],
    layout: str,
    hostile: bool,
    per: int,
    on_duplicate: str,
    returning: bool,
    data: st.DataObject,
) -> None:
    """Same table, counts, keys and rejections, whatever the batch holds (hostile values too)."""
    declared, strict = column
    d_type = "ANY" if strict else "DATE"
    rows = st.fixed_dictionaries(
        {
            "k": keys if hostile else friendly(declared, strict, nulls=False),
            "j": st.integers(0, 9),
            "c": values | dates if hostile else friendly(declared, strict),
            "d": dates if hostile else friendly(d_type, strict),
        }
    )
    before = data.draw(st.lists(rows, max_size=12), label="before")
    size = data.draw(st.integers(0, 40), label="size")  # long batches as often as short ones
    batch = data.draw(st.lists(rows, min_size=size, max_size=size), label="batch")
    options = ", STRICT" if layout and strict else " STRICT" if strict else ""
    ddl = (
        f"CREATE TABLE t (k {declared} NOT NULL, j INTEGER NOT NULL, c {declared},"
        f" d {d_type}, PRIMARY KEY (k, j)){layout}{options}"
    )
    seen = []
    for fast in (True, False):
        store = SQLiteStore(":memory:")
        session = store.connect()
        session.connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, LIMIT)  # type: ignore[attr-defined,unused-ignore]
        session.release()
        with unit_of_work(store) as tx:
            tx.execute(ddl)
        path = (
            mock.patch.object(_sqlite_upsert, "ROWS_PER_STATEMENT", per)
            if fast
            else plain_path(store, "t")
        )
        with path:
            first = outcome(store, before, on_duplicate="last")
            second = outcome(store, batch, on_duplicate=on_duplicate, returning=returning)
        seen.append((first, second, table_contents(store)))
        store.close()
    event(f"batch {seen[0][1][0] if isinstance(seen[0][1], tuple) else 'written'}")
    if isinstance(seen[0][1], UpsertResult) and seen[0][1].changed >= per and not layout:
        event("a multi-row statement wrote")
    assert seen[1] == seen[0]


def test_a_large_batch_goes_through_full_statements_and_a_tail_alike() -> None:
    """1,000 rows (256-row statements and a tail), twice, then changed: same as one by one."""
    rows = [
        {"k": f"client-{i // 2 % 450}", "j": i % 2, "c": i * 7, "d": DAYS[i % 3]}
        for i in range(1000)
    ]  # 900 keys; the last 100 rows repeat the first 100 keys
    changed = [{**r, "c": r["c"] + r["j"]} for r in rows]
    seen = []
    for fast in (True, False):
        store = SQLiteStore(":memory:")
        with unit_of_work(store) as tx:
            tx.execute("CREATE TABLE t (k TEXT, j INTEGER, c INTEGER, d DATE, UNIQUE (k, j))")
        with plain_path(store, "t") if not fast else contextlib.nullcontext():
            results = [outcome(store, rows, on_duplicate="first") for _ in range(2)]
            results.append(outcome(store, changed, on_duplicate="last"))
        seen.append((results, table_contents(store)))
        store.close()
    assert seen[1] == seen[0]
    first, again, third = seen[0][0]
    assert (900, 0, 0, 100) == (first.inserted, first.updated, first.unchanged, first.duplicates)
    assert (0, 0, 900, 100) == (again.inserted, again.updated, again.unchanged, again.duplicates)
    assert 1000 == third.total
    assert 450 <= third.updated


def test_plain_dicts_of_one_size_with_other_columns_are_named_row_by_row() -> None:
    """The size check proves nothing alone: a dict swapping a column for another is named."""
    store = SQLiteStore(":memory:")
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY, a INTEGER, b INTEGER)")
    rows = [{"k": "x", "a": 1}, {"k": "y", "a": 2}, {"k": "z", "b": 3}]
    with pytest.raises(InvalidBatchError) as info:
        idempotent_upsert(store, "t", rows, key="k")
    expected = {(2, "a", "missing"), (2, "b", "not in the other rows")}
    assert expected == {(p.index, p.column, p.message) for p in info.value.problems}
    with unit_of_work(store) as tx:
        assert [] == tx.fetchall("SELECT * FROM t")
    store.close()


@pytest.mark.skipif(
    not hasattr(sqlite3.Connection, "setlimit"), reason="Connection.setlimit is Python 3.11+"
)
@pytest.mark.parametrize(
    ("limit", "value"),
    # By name: Python 3.10's sqlite3 has neither the constants nor setlimit.
    [("SQLITE_LIMIT_VARIABLE_NUMBER", 10), ("SQLITE_LIMIT_SQL_LENGTH", 600)],
)
def test_statements_stay_within_sqlites_limits(limit: str, value: int) -> None:
    """A lowered variable or SQL length limit means fewer rows a statement, not an error."""
    store = SQLiteStore(":memory:")
    session = store.connect()
    session.connection.setlimit(getattr(sqlite3, limit), value)  # type: ignore[attr-defined,unused-ignore]
    session.release()
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY, a INTEGER, b REAL, d DATE)")
    rows = [{"k": str(i), "a": i, "b": i / 2, "d": DAYS[i % 3]} for i in range(300)]
    assert 300 == idempotent_upsert(store, "t", rows, key="k").inserted
    assert 300 == idempotent_upsert(store, "t", rows, key="k").unchanged
    with unit_of_work(store) as tx:
        assert (300, "2026-01-03") == tx.fetchone("SELECT count(*), max(d) FROM t")
    store.close()


@settings(max_examples=200)
@given(typed=typed_rows())
def test_the_value_check_given_the_type_checks_kinds_finds_what_it_finds_alone(
    typed: tuple[SQLiteValues, tuple[str, ...], list[tuple[Any, ...]]],
) -> None:
    """Each column's types handed over by the type check change nothing in the report."""
    checker, columns, rows = typed
    kinds = [{type(row[i]) for row in rows} for i in range(len(columns))]
    assert checker(columns, rows) == checker(columns, rows, kinds)
