"""Quarantine sinks (JSONL, SQLite, PostgreSQL) and replay: nothing lost, typed values kept."""

from __future__ import annotations

import functools
import json
import math
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from resilient_pipeline import (
    ConfigurationError,
    Field,
    JSONLQuarantine,
    PostgresStore,
    SQLiteStore,
    SQLQuarantine,
    Validator,
    idempotent_upsert,
    quarantine,
    replay,
    unit_of_work,
)
from resilient_pipeline.testing import FakeClock, capture_events
from resilient_pipeline.validation import (
    Issue,
    QuarantineLinesSkipped,
    QuarantineRecord,
    QuarantineSink,
    RowsReplayed,
    areplay,
)
from resilient_pipeline.validation.rules import compare, ge

STRICT = Validator(
    fields={
        "client": Field(str),
        "day": Field(date),
        "clicks": Field(int, ge(0)),
        "impressions": Field(int, ge(0)),
        "spend": Field(Decimal),
    },
    rules=[compare("clicks", "<=", "impressions")],
    name="kpi",
)
# The fix: negative clicks were corrections from the API, not errors.
RELAXED = attrs.evolve(STRICT, fields={**STRICT.fields, "clicks": Field(int)})


def row(client: str, clicks: Any, impressions: Any = 10) -> dict[str, Any]:
    """A KPI row; clicks and impressions vary."""
    return {
        "client": client,
        "day": date(2026, 11, 28),
        "clicks": clicks,
        "impressions": impressions,
        "spend": Decimal("1.25"),
    }


BATCH = [row("a", 1), row("b", -3), row("c", 50), row("d", "7"), row("e", 2)]


@pytest.fixture
def jsonl(tmp_path: Path) -> JSONLQuarantine:
    """A JSONL quarantine in a fresh directory."""
    return JSONLQuarantine(tmp_path / "quarantine.jsonl")


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A SQLite file store with a kpi table keyed by client and day."""
    store = SQLiteStore(tmp_path / "kpi.db")
    with unit_of_work(store) as tx:
        tx.execute(
            "CREATE TABLE kpi (client TEXT, day DATE, clicks INTEGER, impressions INTEGER,"
            " spend DECIMAL, PRIMARY KEY (client, day))"
        )
    yield store
    store.close()


@pytest.fixture
def postgres_store(postgres_dsn: str, postgres_schema: str) -> Iterator[PostgresStore]:
    """A PostgreSQL store in a fresh schema, with the kpi table."""
    store = PostgresStore(postgres_dsn, schema=postgres_schema, max_connections=2)
    with unit_of_work(store) as tx:
        tx.execute(
            f"CREATE TABLE {tx.table('kpi')} (client text, day date, clicks integer,"
            " impressions integer, spend numeric, PRIMARY KEY (client, day))"
        )
    yield store
    store.close()


@pytest.fixture(params=["jsonl", "sqlite", "postgres"])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> QuarantineSink:
    """Every quarantine sink, for the contract tests."""
    if request.param == "jsonl":
        return JSONLQuarantine(tmp_path / "q.jsonl")
    if request.param == "sqlite":
        return SQLQuarantine(request.getfixturevalue("sqlite_store"))
    return SQLQuarantine(request.getfixturevalue("postgres_store"), table="quarantine")


def test_sinks_keep_rows_issues_source_and_time(sink: QuarantineSink) -> None:
    """Quarantined rows come back exactly, typed, with their issues, source and time."""
    result = STRICT.partition(BATCH)
    written = quarantine(sink, result, source="meta_ads", clock=FakeClock(wall_start=1000.0))
    assert [BATCH[1], BATCH[2], BATCH[3]] == [r.row for r in sink.records()]
    assert written == sink.records()
    assert {1000.0} == {r.quarantined_at for r in written}
    assert [q.issues for q in result.quarantined] == [r.issues for r in sink.records()]
    assert [] == sink.records(source="google_ads")
    assert 3 == len(sink.records(source="meta_ads"))


def test_sinks_discard_by_id(sink: QuarantineSink) -> None:
    """discard removes exactly the named records and counts them."""
    records = quarantine(sink, STRICT.partition(BATCH), source="api")
    assert 1 == sink.discard([records[0].id, "no-such-id", records[0].id])
    assert records[1:] == sink.records()
    assert 0 == sink.discard([])


def test_replay_writes_rows_that_are_valid_now(sink: QuarantineSink) -> None:
    """After a fix, replay saves the now-valid rows and leaves the others, with current issues."""
    quarantine(sink, STRICT.partition(BATCH), source="api")
    saved: list[dict[str, Any]] = []
    with capture_events() as events:
        result = replay(sink, RELAXED, saved.extend, source="api")
    assert [BATCH[1]] == saved
    assert [BATCH[2], BATCH[3]] == [r.row for r in result.still_invalid]
    assert [BATCH[2], BATCH[3]] == [r.row for r in sink.records()]
    assert ["compare", "type"] == [r.issues[0].rule for r in result.still_invalid]
    assert [RowsReplayed(source="api", replayed=1, still_invalid=2)] == [
        e for e in events if isinstance(e, RowsReplayed)
    ]


def test_a_failed_write_keeps_everything_in_quarantine(sink: QuarantineSink) -> None:
    """If the writer fails, no record is discarded: nothing is lost."""
    quarantine(sink, STRICT.partition(BATCH), source="api")

    def broken(rows: list[Any]) -> None:
        raise ConnectionError("database down")

    with pytest.raises(ConnectionError):
        replay(sink, RELAXED, broken)
    assert 3 == len(sink.records())


def test_replay_upserts_and_discards_in_one_unit_of_work(sqlite_store: SQLiteStore) -> None:
    """With a SQL sink on the target store, the upsert and the discard commit together."""
    sink = SQLQuarantine(sqlite_store)
    valid = STRICT.partition(BATCH)
    idempotent_upsert(sqlite_store, "kpi", list(valid.valid), key=("client", "day"))
    quarantine(sink, valid, source="api")
    upsert = functools.partial(idempotent_upsert, sqlite_store, "kpi", key=("client", "day"))
    result = replay(sink, RELAXED, upsert)
    assert (1, 0) == (result.written.inserted, result.written.updated)
    with unit_of_work(sqlite_store) as tx:
        clients = tx.fetchall("SELECT client FROM kpi ORDER BY client")
    assert [("a",), ("b",), ("e",)] == clients
    assert 2 == len(sink.records())


def test_replay_into_postgres(postgres_store: PostgresStore) -> None:
    """The same workflow against PostgreSQL, with the quarantine queryable as jsonb."""
    sink = SQLQuarantine(postgres_store)
    quarantine(sink, STRICT.partition(BATCH), source="api")
    with unit_of_work(postgres_store) as tx:
        rules = tx.fetchall(
            f"SELECT issues->0->>'rule' FROM {tx.table('rp_quarantine')}"
            " ORDER BY row_data->'row'->>'client'"
        )
    assert [("ge",), ("compare",), ("type",)] == rules
    upsert = functools.partial(idempotent_upsert, postgres_store, "kpi", key=("client", "day"))
    assert 1 == len(replay(sink, RELAXED, upsert).replayed)
    with unit_of_work(postgres_store) as tx:
        assert [("b", -3, Decimal("1.25"))] == tx.fetchall(
            f"SELECT client, clicks, spend FROM {tx.table('kpi')}"
        )


@pytest.mark.anyio
async def test_areplay(jsonl: JSONLQuarantine) -> None:
    """The async twin replays from a worker thread, on asyncio and trio."""
    quarantine(jsonl, STRICT.partition(BATCH), source="api")
    saved: list[Any] = []
    result = await areplay(jsonl, RELAXED, saved.extend)
    assert ([BATCH[1]], 2) == (saved, len(result.still_invalid))


@attrs.define
class KpiRow:
    client: str
    clicks: int


def test_object_rows_are_stored_by_their_fields(jsonl: JSONLQuarantine) -> None:
    """attrs instances are kept as dicts of their fields; non-rows are kept as they are."""
    v = Validator(fields={"client": Field(str), "clicks": Field(int, ge(0))})
    records = quarantine(jsonl, v.partition([KpiRow("a", -1), 42]), source="api")
    assert [{"client": "a", "clicks": -1}, 42] == [r.row for r in records]
    assert [{"client": "a", "clicks": -1}, 42] == [r.row for r in jsonl.records()]


def test_damaged_lines_are_skipped_and_reported_not_fatal(jsonl: JSONLQuarantine) -> None:
    """A torn last line or a garbage line hides no other record, and is reported by number."""
    quarantine(jsonl, STRICT.partition(BATCH), source="api")
    with open(jsonl.path, "a", encoding="utf-8") as file:
        file.write('{"record": {"id": "x", "sou')
    with capture_events() as events:
        assert 3 == len(jsonl.records())
    jsonl.path.write_text("garbage\n" + jsonl.path.read_text(encoding="utf-8"))
    with capture_events() as later:
        assert 3 == len(jsonl.records())
    assert [(4,), (1, 5)] == [
        e.lines for e in [*events, *later] if isinstance(e, QuarantineLinesSkipped)
    ]


def test_compact_drops_discarded_records(jsonl: JSONLQuarantine) -> None:
    """compact rewrites the file with only live records, one line each."""
    records = quarantine(jsonl, STRICT.partition(BATCH), source="api")
    jsonl.discard([records[0].id])
    jsonl.compact()
    assert records[1:] == jsonl.records()
    assert 2 == len(jsonl.path.read_text(encoding="utf-8").splitlines())


def test_nothing_to_quarantine_writes_nothing(jsonl: JSONLQuarantine) -> None:
    """A clean batch creates no file and replay of an empty quarantine does nothing."""
    assert [] == quarantine(jsonl, STRICT.partition([BATCH[0]]), source="api")
    assert not jsonl.path.exists()
    result = replay(jsonl, RELAXED, print)
    assert ((), ()) == (result.replayed, result.still_invalid)


@pytest.mark.parametrize(
    ("call", "option"),
    [
        (lambda s: quarantine(object(), [], source="api"), "sink"),  # type: ignore[arg-type]
        (lambda s: quarantine(s, [], source=""), "source"),
        (lambda s: replay(s, RELAXED, "nope"), "write"),  # type: ignore[arg-type]
        (lambda s: replay(s, RELAXED, print, source=3), "source"),  # type: ignore[arg-type]
        (lambda s: SQLQuarantine("db.sqlite"), "store"),  # type: ignore[arg-type]
        (lambda s: SQLQuarantine(SQLiteStore(":memory:"), table="bad\x00"), "table"),
    ],
)
def test_bad_arguments_are_named(jsonl: JSONLQuarantine, call: Any, option: str) -> None:
    """Wrong sinks, sources, writers and table names fail with ConfigurationError."""
    with pytest.raises(ConfigurationError) as info:
        call(jsonl)
    assert option == info.value.option


def test_record_json_is_strict_json() -> None:
    """NaN, Decimal NaN and infinities are tagged: PostgreSQL's jsonb accepts the result."""
    record = QuarantineRecord(
        "r", "s", {"x": math.nan, "y": Decimal("NaN"), "z": -math.inf}, (), 0.0
    )
    text = json.dumps(record.to_json(), allow_nan=False)
    clone = QuarantineRecord.from_json(json.loads(text))
    assert ["nan", "NaN", "-inf"] == [str(v) for v in clone.row.values()]


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(),
    st.binary(max_size=8),
    st.dates(),
    # fold (which of two repeated local times) is not part of the ISO format
    st.datetimes(timezones=st.sampled_from([None, timezone.utc])).map(lambda d: d.replace(fold=0)),
    st.times().map(lambda t: t.replace(fold=0)),
    st.uuids(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


@settings(max_examples=200)
@given(st.dictionaries(st.text(max_size=5), values, max_size=5))
def test_rows_survive_the_json_round_trip(data: dict[str, Any]) -> None:
    """Every supported value comes back equal and of the same type."""
    record = QuarantineRecord("r", "s", data, (Issue("f", "r", "m", data),), 0.0)
    clone = QuarantineRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert repr(data) == repr(clone.row)
    assert repr(data) == repr(clone.issues[0].value)


def test_sink_protocol_is_runtime_checkable(tmp_path: Path) -> None:
    """Both sinks satisfy QuarantineSink; a plain object does not."""
    assert isinstance(JSONLQuarantine(tmp_path / "q"), QuarantineSink)
    assert isinstance(SQLQuarantine(SQLiteStore(":memory:")), QuarantineSink)
    assert not isinstance(object(), QuarantineSink)


def test_uuid_time_and_datetime_rows_replay_typed(jsonl: JSONLQuarantine) -> None:
    """Typed values are restored before the row is validated again."""
    v = Validator(fields={"id": Field(uuid.UUID), "at": Field(datetime), "t": Field(time)})
    bad = {"id": uuid.UUID(int=7), "at": datetime(2026, 1, 1, 12), "t": "noon"}
    quarantine(jsonl, v.partition([bad]), source="api")
    assert [bad] == [r.row for r in jsonl.records()]
    assert ["t"] == [i.field for r in jsonl.records() for i in r.issues]


def test_replay_can_correct_rows_first(jsonl: JSONLQuarantine) -> None:
    """fix() corrects each row before validation; unfixable rows stay as they were."""
    quarantine(jsonl, STRICT.partition(BATCH), source="api")

    def refetch(r: dict[str, Any]) -> dict[str, Any]:
        return {**r, "impressions": 100} if r["client"] == "c" else r

    saved: list[Any] = []
    result = replay(jsonl, STRICT, saved.extend, fix=refetch)
    assert [{**BATCH[2], "impressions": 100}] == saved
    assert [BATCH[2]] == [r.row for r in result.replayed]
    assert [BATCH[1], BATCH[3]] == [r.row for r in jsonl.records()]
    with pytest.raises(ConfigurationError):
        replay(jsonl, STRICT, saved.extend, fix="nope")  # type: ignore[arg-type]


class SinkMachine(RuleBasedStateMachine):
    """JSONL and SQLite sinks behave like an ordered dict of records, whatever the sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp())
        self.store = SQLiteStore(self.directory / "q.db")
        self.sinks: list[Any] = [
            JSONLQuarantine(self.directory / "q.jsonl"),
            SQLQuarantine(self.store),
        ]
        self.model: dict[str, QuarantineRecord] = {}
        self.counter = 0

    records = Bundle("records")

    @rule(target=records, source=st.sampled_from(["a", "b"]), clicks=st.integers(-3, 3))
    def put(self, source: str, clicks: int) -> QuarantineRecord:
        self.counter += 1
        issue = Issue("clicks", "ge", "must be >= 0", clicks)
        record = QuarantineRecord(f"id{self.counter}", source, {"clicks": clicks}, (issue,), 1.0)
        for sink in self.sinks:
            sink.put([record])
        self.model[record.id] = record
        return record

    @rule(record=records)
    def discard(self, record: QuarantineRecord) -> None:
        expected = 1 if record.id in self.model else 0
        for sink in self.sinks:
            assert expected == sink.discard([record.id])
        self.model.pop(record.id, None)

    @rule()
    def compact(self) -> None:
        self.sinks[0].compact()

    @invariant()
    def same_records(self) -> None:
        for source in (None, "a", "b"):
            expected = [r for r in self.model.values() if source in (None, r.source)]
            for sink in self.sinks:
                assert expected == sink.records(source=source)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.directory)


SinkMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=12)
TestSinkMachine = SinkMachine.TestCase
