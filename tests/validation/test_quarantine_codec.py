"""The quarantine codec: any JSON value and every typed value comes back equal, with its type."""

from __future__ import annotations

import base64
import enum
import json
import math
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resilient_pipeline import (
    ConfigurationError,
    Field,
    JSONLQuarantine,
    PostgresStore,
    SQLiteStore,
    SQLQuarantine,
    Validator,
    quarantine,
    unit_of_work,
)
from resilient_pipeline.exceptions import QuarantineError
from resilient_pipeline.validation import Issue, Quarantined, QuarantineRecord, QuarantineSink

# Every tag either version of the codec writes: user dicts that look like these must survive.
TAGS = [
    "$bytearray",
    "$bytes",
    "$date",
    "$datetime",
    "$decimal",
    "$dict",
    "$fields",
    "$float",
    "$frozenset",
    "$int",
    "$repr",
    "$set",
    "$text",
    "$time",
    "$timedelta",
    "$tuple",
    "$uuid",
    "$unknown",
]

texts = st.text(
    st.characters(exclude_categories=()) | st.sampled_from(["\x00", "\ud83d", "\ude00", "$"]),
    max_size=6,
)
zones = st.sampled_from([None, timezone.utc, timezone(timedelta(hours=5, minutes=30))])
hashables = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**12_000), 2**12_000),  # beyond json's 4300-digit limit
    st.floats(),
    st.decimals().filter(lambda d: not d.is_snan()),  # a signalling NaN cannot be hashed
    texts,
    st.sampled_from(TAGS),
    st.binary(max_size=8),
    st.dates(),
    # fold (which of two repeated local times) is not part of the ISO format
    st.datetimes(timezones=zones).map(lambda d: d.replace(fold=0)),
    st.times(timezones=zones).map(lambda t: t.replace(fold=0)),
    st.timedeltas(),
    st.uuids(),
)
scalars = hashables | st.decimals() | st.binary(max_size=8).map(bytearray)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = texts | st.sampled_from(TAGS) | hashables | st.tuples(hashables, hashables)
    return st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.sets(hashables, max_size=3),
        st.frozensets(hashables, max_size=3),
        st.dictionaries(keys, inner, max_size=3),
        # one key that looks like a tag: MongoDB Extended JSON and friends
        st.builds(lambda tag, payload: {tag: payload}, st.sampled_from(TAGS), inner | json_values),
    )


values = st.recursive(scalars, _containers, max_leaves=10)


def fingerprint(value: Any) -> str:
    """Value and type, all the way down; NaN equals NaN, dict and set order do not count.

    (PostgreSQL's jsonb keeps an object's keys in an order of its own.)
    """
    kind = type(value).__name__
    if isinstance(value, list | tuple):
        return f"{kind}[{', '.join(fingerprint(v) for v in value)}]"
    if isinstance(value, set | frozenset):
        return f"{kind}{{{', '.join(sorted(fingerprint(v) for v in value))}}}"
    if isinstance(value, dict):
        pairs = sorted(f"{fingerprint(k)}: {fingerprint(v)}" for k, v in value.items())
        return f"{kind}{{{', '.join(pairs)}}}"
    if type(value) is int:  # repr refuses ints of more than 4300 digits
        return f"int:{value:x}"
    if isinstance(value, datetime | time) and value.tzinfo is not None:
        return f"{kind}:{value!r}:{value.utcoffset()}"
    return f"{kind}:{value!r}"


def record_of(row: Any, n: int = 0) -> QuarantineRecord:
    """A record holding ``row``, with an issue whose field, message and value are hostile too."""
    issue = Issue("f\x00\ud83d", "rule", "msg \x00 \udc00", row, "error")
    return QuarantineRecord(f"r{n}", "src", row, (issue,), 12.5)


def assert_same(expected: QuarantineRecord, actual: QuarantineRecord) -> None:
    """Equal field by field, and every value of the same type."""
    assert (expected.id, expected.source, expected.quarantined_at) == (
        actual.id,
        actual.source,
        actual.quarantined_at,
    )
    assert fingerprint(expected.row) == fingerprint(actual.row)
    assert len(expected.issues) == len(actual.issues)
    for want, got in zip(expected.issues, actual.issues, strict=True):
        assert (want.field, want.rule, want.message, want.severity) == (
            got.field,
            got.rule,
            got.message,
            got.severity,
        )
        assert fingerprint(want.value) == fingerprint(got.value)


MONGO = {"_id": {"$oid": "5f1d"}, "at": {"$date": "2026-11-28T00:00:00Z"}, "id": {"$uuid": None}}


@settings(max_examples=300)
@given(values)
@example({"$date": "2026-11-28"})
@example({"$uuid": None})
@example({"$dict": [["a", 1]]})
@example(MONGO)
@example((1, (2, [3])))
@example({"client": "acme\x00", "note": "\ud83d"})
@example({1: "a", "1": "b", (1, 2): "c", None: "d"})
@example([-0.0, 1e16, math.inf, 10**5000])
def test_records_survive_the_json_round_trip(row: Any) -> None:
    """In memory: to_json, strict UTF-8 JSON text, from_json gives the record back exactly."""
    record = record_of(row)
    text = json.dumps(record.to_json(), allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")  # strict: no lone surrogate reaches the text
    assert "\\u0000" not in text  # PostgreSQL's jsonb refuses NUL
    assert_same(record, QuarantineRecord.from_json(json.loads(text)))


@pytest.fixture(params=["jsonl", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QuarantineSink]:
    """Every quarantine sink, on a fresh file, database or schema."""
    if request.param == "jsonl":
        yield JSONLQuarantine(tmp_path / "q.jsonl")
        return
    store: SQLiteStore | PostgresStore
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "q.db")
    else:
        store = PostgresStore(
            request.getfixturevalue("postgres_dsn"),
            schema=request.getfixturevalue("postgres_schema"),
        )
    yield SQLQuarantine(store)
    store.close()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(values, min_size=1, max_size=3))
@example(rows=[MONGO, {"$uuid": None}, ("t", 1)])
@example(rows=[{"client": "acme\x00", "note": "\ud83d", "acme\x00": "\udfff"}])
@example(rows=[{"x": [-0.0, 1e16, 1e-320, 10**5000, math.nan]}])
def test_every_sink_gives_rows_back_with_their_types(
    any_sink: QuarantineSink, rows: list[Any]
) -> None:
    """JSONL, SQLite and PostgreSQL store every value exactly: nothing refused, nothing changed."""
    records = [record_of(row, n) for n, row in enumerate(rows)]
    any_sink.put(records)
    stored = any_sink.records()
    assert len(records) == len(stored)
    for want, got in zip(records, stored, strict=True):
        assert_same(want, got)
    assert len(records) == any_sink.discard(r.id for r in records)


def test_rows_from_valid_json_are_quarantined_not_refused(any_sink: QuarantineSink) -> None:
    """NUL (jsonb refuses it) and a lone surrogate (UTF-8 refuses it), from valid JSON."""
    batch = json.loads('[{"client": "acme\\u0000", "n": "x"}, {"client": "\\ud83d", "n": "y"}]')
    v = Validator(fields={"client": Field(str), "n": Field(int)})
    quarantine(any_sink, v.partition(batch), source="api")
    assert batch == [r.row for r in any_sink.records()]


def test_nesting_just_inside_the_limit_is_stored(any_sink: QuarantineSink) -> None:
    """A value 100 lists deep is stored and read back by every sink."""
    deep: Any = "bottom"
    for _ in range(100):
        deep = [deep]
    any_sink.put([QuarantineRecord("deep", "api", {"x": deep}, (), 0.0)])
    assert [{"x": deep}] == [r.row for r in any_sink.records()]


def nested(depth: int) -> list[Any]:
    """A list ``depth`` levels deep."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("where", ["row", "issue"])
def test_too_deep_a_value_is_a_typed_error_naming_row_and_field(
    any_sink: QuarantineSink, where: str
) -> None:
    """3,000 levels: QuarantineError with the row's index and field, and nothing written."""
    deep = nested(3000)
    shallow = Quarantined({"n": "1"}, (Issue("n", "type", "expected int", "1"),), 0)
    if where == "row":
        bad = Quarantined({"n": "2", "payload": deep}, (Issue("n", "type", "m", "2"),), 7)
    else:  # the deep value is only in an issue (a rule may report any value)
        bad = Quarantined({"n": "2"}, (Issue("payload", "custom", "m", deep),), 7)
    with pytest.raises(QuarantineError) as info:
        quarantine(any_sink, [shallow, bad], source="api")
    assert (7, "payload") == (info.value.row, info.value.field)
    assert "row 7" in str(info.value)
    assert "'payload'" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert [] == any_sink.records()


def test_a_deep_row_from_validation_is_refused_by_row_and_field(jsonl_path: Path) -> None:
    """The whole path: partition a batch with a 3,000-deep list, then quarantine it."""
    v = Validator(fields={"n": Field(int), "payload": Field(list)})
    batch = v.partition([{"n": 1, "payload": []}, {"n": "2", "payload": nested(3000)}])
    with pytest.raises(QuarantineError) as info:
        quarantine(JSONLQuarantine(jsonl_path), batch, source="api")
    assert (1, "payload") == (info.value.row, info.value.field)
    assert not jsonl_path.exists()


def test_a_value_that_contains_itself_is_a_typed_error() -> None:
    """A cycle is refused like a value nested too deeply, never a RecursionError."""
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(QuarantineError) as info:
        QuarantineRecord("r", "s", {"loop": loop}, (), 0.0).to_json()
    assert ("loop", "r") == (info.value.field, info.value.record)


@pytest.mark.parametrize("source", ["", "a\x00b", "\ud83d", 3])
def test_sources_every_sink_can_store_are_required(jsonl_path: Path, source: Any) -> None:
    """A source is an option: NUL and lone surrogates are refused up front, by name."""
    with pytest.raises(ConfigurationError) as info:
        quarantine(JSONLQuarantine(jsonl_path), [], source=source)
    assert "source" == info.value.option
    with pytest.raises(ConfigurationError):
        QuarantineRecord("r", source, {}, (), 0.0)


@pytest.fixture
def jsonl_path(tmp_path: Path) -> Path:
    """A path for a JSONL quarantine."""
    return tmp_path / "q.jsonl"


# ------------------------------------------------------------- the previous format
def v1_encode(value: Any) -> Any:
    """The format-1 encoder (resilient-pipeline before format 2), kept as the oracle."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): v1_encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v1_encode(v) for v in value]
    return {"$repr": repr(value)}


def v1_record(record_id: str, row: Any, issue_value: Any = None) -> dict[str, Any]:
    """A record as format 1 wrote it (no ``format`` key)."""
    issue = {
        "field": "spend",
        "rule": "ge",
        "message": "must be >= 0",
        "value": v1_encode(issue_value),
        "severity": "error",
    }
    return {
        "id": record_id,
        "source": "api",
        "quarantined_at": 1.5,
        "row": v1_encode(row),
        "issues": [issue],
    }


# What format 1 stored unambiguously: no dict that looks like a tag, no tuples or sets.
v1_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.decimals()
    | st.text(max_size=5)
    | st.binary(max_size=8)
    | st.dates()
    | st.datetimes(timezones=st.sampled_from([None, timezone.utc])).map(lambda d: d.replace(fold=0))
    | st.uuids(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3).filter(lambda k: not k.startswith("$")), inner)
    ),
    max_leaves=8,
)


@settings(max_examples=150)
@given(v1_values)
def test_records_written_by_format_1_are_still_read(row: Any) -> None:
    """Format-1 records (no format key) decode exactly as they did."""
    clone = QuarantineRecord.from_json(json.loads(json.dumps(v1_record("old", row, row))))
    assert fingerprint(row) == fingerprint(clone.row)
    assert fingerprint(row) == fingerprint(clone.issues[0].value)


def test_format_1_tag_look_alikes_that_cannot_decode_are_read_as_dicts(
    any_sink: QuarantineSink, tmp_path: Path
) -> None:
    """A format-1 ``{"$uuid": None}`` was the row's own data: it no longer breaks every read."""
    row = {"id": {"$uuid": None}, "day": {"$date": "2026-11-28"}, "t": {"$tuple": [1]}}
    old = v1_record("old1", row)
    if isinstance(any_sink, JSONLQuarantine):
        any_sink.path.write_text(json.dumps({"record": old}) + "\n", encoding="utf-8")
    else:
        assert isinstance(any_sink, SQLQuarantine)
        any_sink.records()  # creates the table
        with unit_of_work(any_sink.store) as tx:
            ph = tx.placeholder
            tx.execute(
                f"INSERT INTO {tx.table(any_sink.table)} "
                "(id, source, quarantined_at, row_data, issues) "
                f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph})",
                ("old1", "api", 1.5, json.dumps({"row": old["row"]}), json.dumps(old["issues"])),
            )
    [record] = any_sink.records()
    # format 1 could not tell the date from a tag: it stays a date, as it always was read
    expected = {"id": {"$uuid": None}, "day": date(2026, 11, 28), "t": {"$tuple": [1]}}
    assert fingerprint(expected) == fingerprint(record.row)
    assert ("old1", "api", 1.5) == (record.id, record.source, record.quarantined_at)
    # a new record beside it is written in format 2 and both read back
    any_sink.put([record_of({"$uuid": None}, 2)])
    assert [{"$uuid": None}] == [r.row for r in any_sink.records() if r.id == "r2"]


# --------------------------------------------------------------------- damage
def test_a_record_from_a_newer_format_is_refused_by_name() -> None:
    """Format 3 is not guessed at: QuarantineError says to upgrade."""
    data = {**record_of({"n": 1}).to_json(), "format": 3}
    with pytest.raises(QuarantineError, match="format 3") as info:
        QuarantineRecord.from_json(data)
    assert "r0" == info.value.record


@pytest.mark.parametrize(
    "row",
    [
        {"d": {"$date": "hunter2"}},
        {"d": {"$nope": "hunter2"}},
        {"d": {"$dict": "hunter2"}},
        {"d": {"$text": ["hunter2", -1]}},
        {"d": {"$bytes": "hunter2!"}},
    ],
)
def test_a_damaged_record_is_a_typed_error_without_the_value(row: Any) -> None:
    """Stored data that this codec never writes: QuarantineError naming the record, no value."""
    data = {**record_of(1).to_json(), "row": row}
    with pytest.raises(QuarantineError) as info:
        QuarantineRecord.from_json(data)
    assert "r0" == info.value.record
    assert "hunter2" not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_damaged_sql_rows_name_the_record(tmp_path: Path) -> None:
    """A row_data column that is not a record envelope: QuarantineError with the id."""
    store = SQLiteStore(tmp_path / "q.db")
    sink = SQLQuarantine(store)
    sink.put([record_of({"n": 1})])
    with unit_of_work(store) as tx:
        tx.execute(f"UPDATE {tx.table('rp_quarantine')} SET row_data = '[1]'")
    with pytest.raises(QuarantineError) as info:
        sink.records()
    assert "r0" == info.value.record
    store.close()


class Colour(enum.Enum):
    RED = "red"


class Broken:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_values_without_a_json_form_keep_what_they_can() -> None:
    """Enums keep their value; other objects their repr (as text), even with a broken repr."""
    row = {"c": Colour.RED, "o": object.__new__(Broken), "r": Path("a\x00")}
    clone = QuarantineRecord.from_json(record_of(row).to_json())
    assert {"c": "red", "o": "<Broken object>", "r": "PosixPath('a\\x00')"} == clone.row
