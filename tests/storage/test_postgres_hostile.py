"""Hostile values on PostgreSQL: the VALUES and COPY paths store the same rows or refuse alike.

Each supported column type gets values that probe its edges (range limits,
NaN, infinities, over-long and padded text, NUL, lone surrogates, non-BMP
characters, timezone-aware and naive datetimes, ...). A plain oracle written
here says what PostgreSQL must end up storing, or that the value must be
refused; the stored rows are read back and compared value by value.
"""

from __future__ import annotations

import datetime
import decimal
import math
import struct
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_pipeline import PostgresStore, idempotent_upsert, unit_of_work
from resilient_pipeline.exceptions import (
    DuplicateKeyError,
    InvalidBatchError,
    ResilientPipelineError,
)
from resilient_pipeline.storage import UpsertResult

pytestmark = pytest.mark.postgres

D = decimal.Decimal


class Refused:
    """The oracle's answer for a value the column cannot keep exactly."""

    def __repr__(self) -> str:
        return "REFUSED"


REFUSED = Refused()
UTC = datetime.timezone.utc


def same(stored: Any, expected: Any) -> bool:
    """Equal, NaN equal to NaN (float or Decimal), and the same type family."""
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(stored, float) and math.isnan(stored)
    if isinstance(expected, D) and expected.is_nan():
        return isinstance(stored, D) and stored.is_nan()
    if isinstance(expected, datetime.datetime) and expected.tzinfo is not None:
        # Aware values in a DST gap or fold never equal another zone's (PEP 495): as UTC.
        return isinstance(stored, datetime.datetime) and (
            stored.astimezone(UTC) == expected.astimezone(UTC)
        )
    return bool(type(stored) is type(expected) and stored == expected)


# ------------------------------------------------------------------ oracles
def int_oracle(low: int, high: int) -> Callable[[Any], Any]:
    return lambda v: v if low <= v <= high else REFUSED


def to_double(v: Any) -> Any:
    """What a double precision column must store for ``v``."""
    if isinstance(v, D):
        if v.is_nan():
            return math.nan
        f = float(v)
        if (math.isinf(f) and v.is_finite()) or (f == 0 and v != 0):
            return REFUSED
        return f
    if isinstance(v, float):
        return v
    try:
        f = float(v)
    except OverflowError:
        return REFUSED
    return f if f == v else REFUSED  # an int a double cannot hold exactly


def to_real(v: Any) -> Any:
    """What a real column must store for ``v``: the double, rounded to single precision."""
    double = to_double(v)
    if double is REFUSED:
        return REFUSED
    try:
        (single,) = struct.unpack("f", struct.pack("f", double))
    except OverflowError:
        return REFUSED
    if (single == 0 and double != 0) or (isinstance(v, int) and single != v):
        return REFUSED
    return single


def to_numeric(v: Any, precision: int | None = None, scale: int = 0) -> Any:
    """What a numeric (or numeric(p, s)) column must store for ``v``."""
    if isinstance(v, float):
        v = D("NaN") if math.isnan(v) else D(repr(v))
    number = D(v)
    if number.is_nan():
        return D("NaN")
    if number.is_infinite():
        return REFUSED if precision is not None else number
    if precision is None:
        exponent = int(number.as_tuple().exponent)
        before = 0 if number.is_zero() else number.adjusted() + 1
        return number if before <= 131072 and -exponent <= 16383 else REFUSED
    with decimal.localcontext(decimal.Context(prec=200_000)):
        if abs(number) >= 10 ** (precision - scale):
            return REFUSED
        rounded = number.quantize(D(1).scaleb(-scale), rounding=decimal.ROUND_HALF_UP)
        return rounded if abs(rounded) < 10 ** (precision - scale) else REFUSED


def bad_text(v: str) -> bool:
    return "\x00" in v or any(0xD800 <= ord(c) <= 0xDFFF for c in v)


def text_oracle(limit: int | None = None, *, padded: int | None = None) -> Callable[[Any], Any]:
    def oracle(v: str) -> Any:
        if bad_text(v):
            return REFUSED
        if padded is not None:
            v = v.rstrip(" ")
            return REFUSED if len(v) > padded else v.ljust(padded)
        return REFUSED if limit is not None and len(v) > limit else v

    return oracle


def name_oracle(v: str) -> Any:
    return REFUSED if bad_text(v) or len(v.encode("utf-8")) > 63 else v


def date_oracle(v: datetime.date) -> Any:
    return REFUSED if isinstance(v, datetime.datetime) else v


def naive_oracle(v: datetime.datetime | datetime.time) -> Any:
    return REFUSED if v.tzinfo is not None else v


def timestamptz_oracle(v: datetime.datetime) -> Any:
    # The server's TimeZone is UTC here (checked by the test): a naive value is UTC.
    if v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    return REFUSED if v.utcoffset() is None else v


def uuid_oracle(v: Any) -> Any:
    if isinstance(v, uuid.UUID):
        return v
    try:
        return uuid.UUID(v)
    except ValueError:
        return REFUSED


# --------------------------------------------------------------- strategies
def ints(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [low - 1, low, high, high + 1, 0, 2**32 + 7, 3_000_000_000, 70_000, -(2**70)]
    return st.sampled_from(edges) | st.integers(2 * low, 2 * high)


floats = st.floats() | st.sampled_from(
    [math.nan, -math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e-50, 3.5e38, 1.7976931348623157e308]
)
decimals = st.decimals(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [D("sNaN"), D("1E+131071"), D("1E+131072"), D("1E-16383"), D("1E-16384"), D("0E+9"), D("-0")]
)
numbers = floats | decimals | st.integers(-(2**1030), 2**1030) | st.sampled_from([2**53 + 1])
characters = st.characters() | st.sampled_from(["\x00", "\ud800", "\udfff", "😀", " ", "é"])
texts = st.text(characters, max_size=12)
aware = st.datetimes(
    min_value=datetime.datetime(2, 1, 1),
    max_value=datetime.datetime(9998, 12, 31),
    timezones=st.timezones(),
)
# Years 2..9998: an aware value near the ends would be stored fine but read
# back outside datetime's range, which psycopg cannot load.
naive = st.datetimes(
    min_value=datetime.datetime(2, 1, 1), max_value=datetime.datetime(9998, 12, 31)
)


def as_view(data: bytes) -> memoryview:
    """``data`` as a memoryview (also a bytes-like value)."""
    return memoryview(data)


@attrs.frozen
class Kind:
    """A column type, values to write into it, and what it must store for each."""

    sql: str
    values: st.SearchStrategy[Any]
    oracle: Callable[[Any], Any]


KINDS = {
    "int2": Kind("smallint", ints(-(2**15), 2**15 - 1), int_oracle(-(2**15), 2**15 - 1)),
    "int4": Kind("integer", ints(-(2**31), 2**31 - 1), int_oracle(-(2**31), 2**31 - 1)),
    "int8": Kind("bigint", ints(-(2**63), 2**63 - 1), int_oracle(-(2**63), 2**63 - 1)),
    "float4": Kind("real", numbers, to_real),
    "float8": Kind("double precision", numbers, to_double),
    "numeric": Kind("numeric", numbers, to_numeric),
    "numeric62": Kind("numeric(6, 2)", numbers, lambda v: to_numeric(v, 6, 2)),
    "text": Kind("text", texts, text_oracle()),
    "varchar8": Kind("varchar(8)", texts, text_oracle(8)),
    "char4": Kind("char(4)", texts, text_oracle(padded=4)),
    "name": Kind("name", st.text(characters, max_size=70), name_oracle),
    "bool": Kind("boolean", st.booleans(), lambda v: v),
    "date": Kind("date", st.dates() | naive, date_oracle),
    "timestamp": Kind("timestamp", naive | aware, naive_oracle),
    "timestamptz": Kind("timestamptz", naive | aware, timestamptz_oracle),
    "time": Kind(
        "time",
        st.times() | st.times(timezones=st.timezones()) | st.times(timezones=st.just(UTC)),
        naive_oracle,
    ),
    "interval": Kind(
        "interval",
        st.timedeltas() | st.sampled_from([datetime.timedelta.max, datetime.timedelta.min]),
        lambda v: v,
    ),
    "uuid": Kind(
        "uuid",
        st.uuids()
        | st.uuids().map(str)
        | st.uuids().map(lambda u: "{" + str(u).upper() + "}")
        | st.uuids().map(lambda u: u.hex)
        | texts,
        uuid_oracle,
    ),
    "bytea": Kind(
        "bytea",
        st.binary() | st.binary().map(bytearray) | st.binary().map(as_view),
        bytes,
    ),
}


@pytest.fixture
def stores(
    postgres_dsn: str, postgres_schema: str
) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    """One store that writes every batch with VALUES, one that writes every batch with COPY."""
    values = PostgresStore(postgres_dsn, schema=postgres_schema, copy_threshold=10**9)
    copy = PostgresStore(postgres_dsn, schema=postgres_schema, copy_threshold=1)
    yield values, copy
    values.close()
    copy.close()


def attempt(store: PostgresStore, table: str, rows: list[dict[str, Any]], **options: Any) -> Any:
    """The upsert's result, or the library error it raised."""
    try:
        return idempotent_upsert(store, table, rows, key="id", **options)
    except ResilientPipelineError as exc:
        return exc


def problems(outcome: Any) -> list[tuple[int, str | None, str]]:
    """An error's problems, comparable between the two paths."""
    assert isinstance(outcome, InvalidBatchError), outcome
    return [(p.index, p.column, p.message) for p in outcome.problems]


def read(store: PostgresStore, table: str, column: str = "v") -> list[Any]:
    """The stored values, by id."""
    with unit_of_work(store) as tx:
        return [v for (v,) in tx.fetchall(f"SELECT {column} FROM {tx.table(table)} ORDER BY id")]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_both_paths_store_the_same_or_refuse_alike(
    stores: tuple[PostgresStore, PostgresStore], kind: str
) -> None:
    """VALUES and COPY store exactly what the oracle says, or refuse the same values alike."""
    values_store, copy_store = stores
    spec = KINDS[kind]
    with unit_of_work(values_store) as tx:
        assert "UTC" in str(tx.fetchone("SHOW TimeZone"))  # timestamptz_oracle relies on it
        for table in ("a", "b"):
            tx.execute(f"CREATE TABLE {tx.table(table)} (id integer PRIMARY KEY, v {spec.sql})")

    @settings(max_examples=20)
    @given(st.lists(spec.values, min_size=1, max_size=5))
    def check(given_values: list[Any]) -> None:
        with unit_of_work(values_store) as tx:
            tx.execute(f"TRUNCATE {tx.table('a')}, {tx.table('b')}")
        rows = [{"id": i, "v": v} for i, v in enumerate(given_values)]
        expected = [spec.oracle(v) for v in given_values]
        by_values = attempt(values_store, "a", rows)
        by_copy = attempt(copy_store, "b", rows)
        refused = [i for i, e in enumerate(expected) if e is REFUSED]
        if refused:
            assert problems(by_values) == problems(by_copy)
            assert refused == [index for index, column, _ in problems(by_copy)]
            assert {"v"} == {column for _, column, _ in problems(by_copy)}
            assert [] == read(values_store, "a") == read(values_store, "b")
            return
        assert UpsertResult(len(rows), 0, 0) == by_values == by_copy
        for table in ("a", "b"):
            # real read as double: its exact value, not psycopg's parse of its shortest text
            stored = read(values_store, table, "v::float8" if kind == "float4" else "v")
            assert len(expected) == len(stored)
            for want, got in zip(expected, stored, strict=True):
                assert same(got, want), (want, got)
        # Written again, every row is found identical (the converted values are what is stored).
        again = UpsertResult(0, 0, len(rows))
        assert again == attempt(values_store, "a", rows) == attempt(copy_store, "b", rows)

    check()


KEY_KINDS: dict[str, tuple[str, list[Any]]] = {
    "char4": ("char(4)", ["ab", "ab ", "ab  ", "AB", "x"]),
    "float8": ("double precision", [math.nan, float("nan"), 0.0, -0.0, 1.0, 2]),
    "numeric": ("numeric", [D("NaN"), D("1.0"), D("1.00"), math.nan, 1, D("2")]),
    "numeric62": ("numeric(6, 2)", [D("1.001"), D("1.004"), D("1.00"), D("1.006"), 1]),
    "uuid": (
        "uuid",
        [
            str(uuid.UUID(int=1)),
            uuid.UUID(int=1),
            uuid.UUID(int=1).hex,
            str(uuid.UUID(int=2)).upper(),
        ],
    ),
    "citext": ("citext", ["a", "A", "b", "B ", "b"]),
    "icu": ('text COLLATE "{schema}"."rp_ci"', ["a", "A", "b", "B", "á"]),
    "timestamptz": (
        "timestamptz",
        [datetime.datetime(2026, 1, 1), datetime.datetime(2026, 1, 1, tzinfo=UTC)],
    ),
}


@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
def test_keys_equal_in_postgres_are_duplicates(
    stores: tuple[PostgresStore, PostgresStore], kind: str
) -> None:
    """Keys distinct in Python but equal in PostgreSQL raise DuplicateKeyError on both paths."""
    values_store, copy_store = stores
    sql, pool = KEY_KINDS[kind]
    sql = sql.format(schema=values_store.schema)
    with unit_of_work(values_store) as tx:
        tx.execute("CREATE EXTENSION IF NOT EXISTS citext")
        tx.execute(
            f"CREATE COLLATION IF NOT EXISTS {tx.table('rp_ci')} "
            "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
        )
        for table in ("a", "b"):
            tx.execute(f"CREATE TABLE {tx.table(table)} (id {sql} PRIMARY KEY, n integer)")

    def equal_pairs(keys: list[Any]) -> list[tuple[int, int]]:
        """PostgreSQL's own answer: every pair of rows with equal keys, first pair first."""
        rows = ", ".join(f"({i}, %s::{sql})" for i in range(len(keys)))
        with unit_of_work(values_store) as tx:
            found = tx.fetchall(
                f"WITH u (o, x) AS (VALUES {rows}) SELECT a.o, b.o FROM u a JOIN u b "
                "ON a.x = b.x AND a.o < b.o ORDER BY b.o, a.o",
                keys,
            )
        return [(a, b) for a, b in found]

    @settings(max_examples=25)
    @given(st.lists(st.sampled_from(pool), min_size=1, max_size=5))
    def check(keys: list[Any]) -> None:
        with unit_of_work(values_store) as tx:
            tx.execute(f"TRUNCATE {tx.table('a')}, {tx.table('b')}")
        rows = [{"id": k, "n": i} for i, k in enumerate(keys)]
        pairs = equal_pairs(keys)
        by_values = attempt(values_store, "a", rows)
        by_copy = attempt(copy_store, "b", rows)
        if not pairs:
            assert UpsertResult(len(keys), 0, 0) == by_values == by_copy
            return
        assert problems(by_values) == problems(by_copy)
        assert isinstance(by_copy, DuplicateKeyError), by_copy
        [problem] = by_copy.problems
        first = int(problem.message.rpartition("first seen in row ")[2].rstrip(")"))
        # Two rows PostgreSQL holds equal; the first such pair where Python can tell
        # (where only PostgreSQL can, a pair equal in Python too may be named first).
        assert (first, problem.index) in pairs
        if kind not in {"citext", "icu", "timestamptz"}:
            assert pairs[0] == (first, problem.index)
        with unit_of_work(values_store) as tx:
            assert [(0,)] == tx.fetchall(f"SELECT count(*) FROM {tx.table('a')}")
            assert [(0,)] == tx.fetchall(f"SELECT count(*) FROM {tx.table('b')}")

    check()


HOSTILE_ROW = {"clicks": 2**32 + 7, "small": 70_000, "name": "brand-2026-q4"}


@pytest.mark.parametrize("size", [999, 1000])
def test_the_real_copy_threshold_changes_nothing(
    postgres_dsn: str, postgres_schema: str, size: int
) -> None:
    """Either side of the default copy_threshold: the same rows stored, the same rows refused."""
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    assert 1000 == store.copy_threshold
    with unit_of_work(store) as tx:
        tx.execute(
            f"CREATE TABLE {tx.table('t')} (id integer PRIMARY KEY, clicks integer, "
            "small smallint, name varchar(8), code char(4), spend numeric(10, 2), ref uuid)"
        )
    rows = [
        {
            "id": i,
            "clicks": i,
            "small": i % 100,
            "name": f"n{i}",
            "code": "ab ",
            "spend": i / 1000,
            "ref": str(uuid.UUID(int=i)),
        }
        for i in range(size)
    ]
    hostile = [dict(row, **HOSTILE_ROW) if row["id"] == 7 else row for row in rows]
    refused = attempt(store, "t", hostile)
    assert [(7, c) for c in sorted(HOSTILE_ROW)] == sorted(
        (index, column) for index, column, _ in problems(refused)
    )
    assert UpsertResult(size, 0, 0) == attempt(store, "t", rows)
    with unit_of_work(store) as tx:
        stored = tx.fetchall(f"SELECT * FROM {tx.table('t')} ORDER BY id")

    def cents(i: int) -> D:
        return (D(i) / 1000).quantize(D("0.01"), decimal.ROUND_HALF_UP)

    expected = [(i, i, i % 100, f"n{i}", "ab  ", cents(i), uuid.UUID(int=i)) for i in range(size)]
    assert expected == stored
    assert UpsertResult(0, 0, size) == attempt(store, "t", rows)
    store.close()


def test_a_truncated_key_no_longer_updates_another_row(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    """A varchar(8) key too long is refused, not cut to one that updates another key's row."""
    for store, table in zip(stores, ("a", "b"), strict=True):
        with unit_of_work(store) as tx:
            tx.execute(f"CREATE TABLE {tx.table(table)} (campaign varchar(8) PRIMARY KEY, n int)")
        for name in ("brand-2026-q4", "brand-2026-q1"):
            outcome = attempt_key(store, table, [{"campaign": name, "n": 1}], "campaign")
            assert [(0, "campaign")] == [(i, c) for i, c, _ in problems(outcome)]
        assert [] == read_all(store, table)


def attempt_key(store: PostgresStore, table: str, rows: list[dict[str, Any]], key: str) -> Any:
    """The upsert's result on ``key``, or the library error it raised."""
    try:
        return idempotent_upsert(store, table, rows, key=key)
    except ResilientPipelineError as exc:
        return exc


def read_all(store: PostgresStore, table: str) -> list[tuple[Any, ...]]:
    """Every stored row."""
    with unit_of_work(store) as tx:
        return tx.fetchall(f"SELECT * FROM {tx.table(table)}")


class Opaque:
    """A value psycopg has no adapter for."""


@pytest.mark.parametrize(("sql", "value"), [("jsonb", {"a": 1}), ("text[]", Opaque())])
def test_values_psycopg_cannot_send_are_named(
    stores: tuple[PostgresStore, PostgresStore], sql: str, value: Any
) -> None:
    """A value of a type psycopg cannot adapt: InvalidBatchError naming its row and column."""
    for store, table in zip(stores, ("a", "b"), strict=True):
        with unit_of_work(store) as tx:
            tx.execute(f"CREATE TABLE {tx.table(table)} (id integer PRIMARY KEY, v {sql})")
        rows = [{"id": 1, "v": None}, {"id": 2, "v": value}]
        outcome = attempt(store, table, rows)
        assert [(1, "v")] == [(i, c) for i, c, _ in problems(outcome)]
        assert [] == read_all(store, table)
