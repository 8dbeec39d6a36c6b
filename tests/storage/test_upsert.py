"""idempotent_upsert on a SQLite file and the real PostgreSQL server: one contract."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
from typing import Any

import attrs
import pytest

from resilient_pipeline import (
    ConfigurationError,
    SQLiteStore,
    StoreError,
    aidempotent_upsert,
    idempotent_upsert,
    unit_of_work,
)
from resilient_pipeline.exceptions import (
    DuplicateKeyError,
    InvalidBatchError,
    MissingUniqueConstraintError,
)
from resilient_pipeline.storage import Store, UpsertResult
from resilient_pipeline.testing import capture_events

DAY = datetime.date(2026, 11, 28)
KPI_DDL = (
    "CREATE TABLE {table} (client_id TEXT NOT NULL, date DATE NOT NULL, platform TEXT NOT NULL,"
    " clicks INTEGER, spend NUMERIC(12, 2), version INTEGER, created_at TEXT,"
    " UNIQUE (client_id, date, platform))"
)


def kpi(
    client: str = "acme", platform: str = "meta", clicks: int = 1, **extra: Any
) -> dict[str, Any]:
    row = {"client_id": client, "date": DAY, "platform": platform, "clicks": clicks}
    row["spend"] = decimal.Decimal("1.50")
    row.update(extra)
    return row


@pytest.fixture
def store(any_store: Store) -> Store:
    """Every store backend (conftest's ``any_store``) with an empty ``kpi`` table."""
    with unit_of_work(any_store) as tx:
        tx.execute(KPI_DDL.format(table=tx.table("kpi")))
    return any_store


def table_rows(store: Store, table: str = "kpi") -> list[tuple[Any, ...]]:
    with unit_of_work(store) as tx:
        rows = tx.fetchall(f"SELECT client_id, platform, clicks FROM {tx.table(table)}")
    return sorted(rows)


def test_insert_then_identical_then_changed(store: Store) -> None:
    """First pass inserts, an identical pass changes nothing, a changed row is updated."""
    rows = [kpi(platform=p, clicks=i) for i, p in enumerate(["meta", "google", "tiktok", "x"])]
    assert UpsertResult(4, 0, 0) == idempotent_upsert(store, "kpi", rows)
    assert UpsertResult(0, 0, 4) == idempotent_upsert(store, "kpi", rows)
    rows[2]["clicks"] = 99
    assert UpsertResult(1, 1, 3) == idempotent_upsert(store, "kpi", [*rows, kpi(platform="new")])
    assert 5 == len(table_rows(store))


def test_rows_may_be_attrs_or_dataclasses(store: Store) -> None:
    """attrs instances and dataclasses upsert like mappings."""

    @attrs.frozen
    class A:
        client_id: str
        date: datetime.date
        platform: str
        clicks: int

    @dataclasses.dataclass
    class D:
        client_id: str
        date: datetime.date
        platform: str
        clicks: int

    result = idempotent_upsert(store, "kpi", [A("a", DAY, "meta", 1), D("b", DAY, "meta", 2)])
    assert UpsertResult(2, 0, 0) == result


def test_duplicate_key_in_a_batch_is_rejected_by_name(store: Store) -> None:
    """The same key twice is an error naming the key and both rows; nothing is written."""
    with pytest.raises(DuplicateKeyError) as info:
        idempotent_upsert(store, "kpi", [kpi(clicks=1), kpi(platform="g"), kpi(clicks=2)])
    assert info.value.key == ("acme", DAY, "meta")
    assert "row 2: duplicate key client_id='acme'" in str(info.value)
    assert "first seen in row 0" in str(info.value)
    assert [] == table_rows(store)


@pytest.mark.parametrize(("policy", "clicks"), [("first", 1), ("last", 2)])
def test_on_duplicate_keeps_the_chosen_row(store: Store, policy: str, clicks: int) -> None:
    """``on_duplicate`` keeps the first or last occurrence and counts the rest."""
    result = idempotent_upsert(store, "kpi", [kpi(clicks=1), kpi(clicks=2)], on_duplicate=policy)  # type: ignore[arg-type]
    assert UpsertResult(1, 0, 0, duplicates=1) == result
    assert [("acme", "meta", clicks)] == table_rows(store)


def test_key_without_unique_constraint_says_what_to_add(store: Store) -> None:
    """A key not covered by a UNIQUE constraint raises with the statement to add."""
    with pytest.raises(MissingUniqueConstraintError) as info:
        idempotent_upsert(store, "kpi", [kpi()], key=("client_id", "date"))
    assert ("client_id", "date") == info.value.key
    assert "UNIQUE" in str(info.value)
    assert '("client_id", "date")' in str(info.value)


def test_problems_are_reported_per_row_and_column(store: Store) -> None:
    """Wrong types and missing key values are listed with their row and column."""
    rows = [
        kpi(),
        kpi(platform="g", clicks="many"),
        kpi(platform=None),
        kpi(platform="h", clicks=True),
    ]
    with pytest.raises(InvalidBatchError) as info:
        idempotent_upsert(store, "kpi", rows)
    found = {(p.index, p.column) for p in info.value.problems}
    assert {(1, "clicks"), (2, "platform"), (3, "clicks")} == found
    assert [] == table_rows(store)


def test_unknown_and_missing_columns_are_named(store: Store) -> None:
    """A column the table lacks, or one some rows lack, is named."""
    with pytest.raises(InvalidBatchError, match="row 0, column 'colour': unknown column"):
        idempotent_upsert(store, "kpi", [kpi(colour="red")])
    with pytest.raises(InvalidBatchError, match="row 1, column 'spend': missing"):
        idempotent_upsert(store, "kpi", [kpi(), {k: v for k, v in kpi().items() if k != "spend"}])


def test_insert_only_and_update_columns(store: Store) -> None:
    """insert_only columns keep their first value; update_columns limits what is rewritten."""
    idempotent_upsert(store, "kpi", [kpi(created_at="first")], insert_only=["created_at"])
    result = idempotent_upsert(store, "kpi", [kpi(created_at="second")], insert_only=["created_at"])
    assert UpsertResult(0, 0, 1) == result
    result = idempotent_upsert(
        store, "kpi", [kpi(clicks=5, created_at="x")], update_columns=["spend"]
    )
    assert UpsertResult(0, 0, 1) == result
    with unit_of_work(store) as tx:
        assert (1, "first") == tx.fetchone(f"SELECT clicks, created_at FROM {tx.table('kpi')}")


def test_version_guard_never_lets_an_older_row_win(store: Store) -> None:
    """With ``version``, an older row is skipped and counted stale."""
    idempotent_upsert(store, "kpi", [kpi(clicks=2, version=2)], version="version")
    result = idempotent_upsert(store, "kpi", [kpi(clicks=1, version=1)], version="version")
    assert UpsertResult(0, 0, 0, stale=1) == result
    result = idempotent_upsert(store, "kpi", [kpi(clicks=3, version=3)], version="version")
    assert UpsertResult(0, 1, 0) == result
    assert [("acme", "meta", 3)] == table_rows(store)


def test_returning_gives_the_changed_keys(store: Store) -> None:
    """``returning=True`` lists inserted and updated keys."""
    idempotent_upsert(store, "kpi", [kpi(platform="a")])
    result = idempotent_upsert(
        store,
        "kpi",
        [kpi(platform="a", clicks=2), kpi(platform="b"), kpi(platform="c", clicks=2)][:2],
        returning=True,
    )
    assert tuple(
        (c, d if isinstance(d, datetime.date) else DAY, p) for c, d, p in result.inserted_keys
    ) == (("acme", DAY, "b"),)
    assert 1 == len(result.updated_keys)


def test_a_failure_between_two_tables_writes_neither(store: Store) -> None:
    """Two upserts in one unit of work: a failure after the first leaves both tables empty."""
    with unit_of_work(store) as tx:
        tx.execute(f"CREATE TABLE {tx.table('conv')} (id INTEGER PRIMARY KEY, n INTEGER)")

    def save() -> None:
        with unit_of_work(store, name="save") as tx:
            tx.upsert("kpi", [kpi()])
            tx.upsert("conv", [{"id": 1, "n": 2}], key="id")
            raise RuntimeError("injected")

    with pytest.raises(RuntimeError) as info:
        save()
    assert "unit of work 'save' rolled back" in info.value.__notes__[-1]
    assert [] == table_rows(store)
    with unit_of_work(store) as tx:
        assert (0,) == tx.fetchone(f"SELECT count(*) FROM {tx.table('conv')}")


def test_decorator_upserts_what_the_function_returns(store: Store) -> None:
    """The decorator form keeps the arguments and returns the result."""

    @idempotent_upsert(store, table="kpi")
    def collect(client: str, *, platforms: list[str]) -> list[dict[str, Any]]:
        return [kpi(client=client, platform=p) for p in platforms]

    assert UpsertResult(2, 0, 0) == collect("acme", platforms=["a", "b"])
    assert UpsertResult(0, 0, 2) == collect("acme", platforms=["a", "b"])
    assert "collect" == collect.__name__


def test_upsert_emits_an_event(store: Store) -> None:
    """Each upsert emits RowsUpserted with the counts."""
    with capture_events() as events:
        idempotent_upsert(store, "kpi", [kpi()])
    assert [("kpi", 1)] == [(e.source, e.fields()["inserted"]) for e in events]


def test_empty_batch_is_a_no_op(store: Store) -> None:
    """An empty batch writes nothing and reports zeros."""
    assert UpsertResult(0, 0, 0) == idempotent_upsert(store, "kpi", [])


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("key", ()),
        ("key", ("a;b\x00",)),
        ("on_duplicate", "ignore"),
        ("version", "client_id"),
        ("insert_only", ("client_id",)),
        ("returning", "yes"),
    ],
)
def test_bad_options_are_named(option: str, value: object) -> None:
    """Invalid options raise ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError) as info:
        idempotent_upsert(SQLiteStore(":memory:"), "kpi", [], **{option: value})  # type: ignore[arg-type]
    assert option == info.value.option


def test_missing_table_is_a_store_error(store: Store) -> None:
    """Upserting into a table that does not exist raises StoreError."""
    with pytest.raises(StoreError, match="does not exist"):
        idempotent_upsert(store, "nope", [kpi()])


@pytest.mark.anyio
async def test_async_upsert(store: Store) -> None:
    """aidempotent_upsert and async decorators work on asyncio and trio."""
    assert UpsertResult(1, 0, 0) == await aidempotent_upsert(store, "kpi", [kpi()])

    @idempotent_upsert(store, table="kpi")
    async def collect() -> list[dict[str, Any]]:
        return [kpi(), kpi(platform="g")]

    assert UpsertResult(1, 0, 1) == await collect()
