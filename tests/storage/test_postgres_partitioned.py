"""PostgreSQL upserts into a partitioned table: what a plain table gets, row by row."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_pipeline import PostgresStore, idempotent_upsert, unit_of_work
from resilient_pipeline.exceptions import DuplicateKeyError, StoreError
from tests.storage.test_postgres_upsert import content, outcome

pytestmark = pytest.mark.postgres

DAYS = [datetime.date(2026, 12, d) for d in (1, 2, 3)]
COLUMNS = "day date NOT NULL, id integer NOT NULL, v integer, ver integer, PRIMARY KEY (day, id)"
PLAIN = "CREATE TABLE {s}.plain ({c})"
PARTITIONED = [
    "CREATE TABLE {s}.daily ({c}) PARTITION BY RANGE (day)",
    *(
        f"CREATE TABLE {{s}}.daily_{d:%d} PARTITION OF {{s}}.daily "
        f"FOR VALUES FROM ('{d}') TO ('{d + datetime.timedelta(days=1)}')"
        for d in DAYS
    ),
]
KEY = ("day", "id")


@pytest.fixture(params=[10**9, 1], ids=["values", "copy"])
def store(request: pytest.FixtureRequest, postgres_dsn: str, postgres_schema: str) -> Iterator[Any]:
    """A store writing every batch with VALUES, or every batch staged through COPY."""
    s = PostgresStore(postgres_dsn, schema=postgres_schema, copy_threshold=request.param)
    with unit_of_work(s) as tx:
        for ddl in [PLAIN, *PARTITIONED]:
            tx.execute(ddl.format(s=f'"{postgres_schema}"', c=COLUMNS))
    yield s
    s.close()


def same(store: PostgresStore, rows: list[dict[str, Any]], **options: Any) -> Any:
    """Upsert ``rows`` into both tables: the same outcome and the same content, or fail."""
    options.setdefault("key", KEY)
    plain = outcome(store, "plain", rows, **options)
    daily = outcome(store, "daily", rows, **options)
    assert plain == daily
    assert content(store, "plain") == content(store, "daily")
    return daily


def rows_for(ids: range, v: int, ver: int = 1) -> list[dict[str, Any]]:
    """One row per id and day (so across every partition)."""
    return [{"day": d, "id": i, "v": v, "ver": ver} for d in DAYS for i in ids]


def counts(result: Any) -> tuple[int, int, int, int]:
    """``(inserted, updated, unchanged, stale)``."""
    return result.inserted, result.updated, result.unchanged, result.stale


@pytest.mark.parametrize("size", [4, 700], ids=["small", "large"])
def test_inserts_conflicts_and_identical_rows_count_as_on_a_plain_table(
    store: PostgresStore, size: int
) -> None:
    """Insert, all conflicts, identical, across three partitions: as on a plain table."""
    # Reversed: keys come back in key order, as from a plain table.
    first = rows_for(range(size), v=1)[::-1]
    n = len(first)
    assert (n, 0, 0, 0) == counts(same(store, first, returning=True))
    changed = rows_for(range(size), v=2)[::-1]
    result = same(store, changed, returning=True)
    assert (0, n, 0, 0) == counts(result)
    assert sorted((r["day"], r["id"]) for r in changed) == list(result.updated_keys)
    assert (0, 0, n, 0) == counts(same(store, changed))
    mixed = rows_for(range(size // 2, size + size // 2), v=3)
    assert (3 * (size // 2), 3 * (size - size // 2), 0, 0) == counts(same(store, mixed))
    rows = {d for (d, *_) in content(store, "daily")}
    assert set(DAYS) == rows
    with unit_of_work(store) as tx:
        per_partition = tx.fetchall(
            f"SELECT tableoid::regclass::text, count(*) FROM {tx.table('daily')} GROUP BY 1"
        )
    assert 3 == len(per_partition)


def test_a_version_column_keeps_newer_rows_as_on_a_plain_table(store: PostgresStore) -> None:
    """version=: older rows are stale, newer ones update, on a partitioned table too."""
    same(store, rows_for(range(3), v=1, ver=5))
    older = rows_for(range(2), v=9, ver=4)
    newer = rows_for(range(1, 3), v=8, ver=6)
    assert (0, 0, 0, 6) == counts(same(store, older, version="ver"))
    assert (0, 6, 0, 0) == counts(same(store, newer, version="ver"))


def test_a_row_with_no_partition_is_refused_and_nothing_is_written(store: PostgresStore) -> None:
    """A day no partition holds: PostgreSQL's error, naming the day; no row of the batch written."""
    same(store, rows_for(range(2), v=1))
    before = content(store, "daily")
    nowhere = {"day": datetime.date(2027, 1, 1), "id": 0, "v": 7, "ver": 1}
    batch = [*rows_for(range(3), v=7), nowhere]
    with pytest.raises(StoreError) as error:
        idempotent_upsert(store, "daily", batch, key=KEY)
    assert ("23514", True) == (error.value.sqlstate, "2027-01-01" in str(error.value))
    assert before == content(store, "daily")


def test_any_batches_give_the_plain_tables_results(store: PostgresStore) -> None:
    """Random batches and options: partitioned and plain tables agree after every batch."""
    row = st.fixed_dictionaries(
        {
            "day": st.sampled_from(DAYS),
            "id": st.integers(0, 4),
            "v": st.none() | st.integers(0, 2),
            "ver": st.integers(0, 2),
        }
    )
    batches = st.lists(st.lists(row, max_size=8), min_size=1, max_size=3)
    options = st.fixed_dictionaries(
        {"returning": st.booleans(), "on_duplicate": st.sampled_from(["first", "last"])},
        optional={"version": st.just("ver"), "update_columns": st.sampled_from([(), ("v", "ver")])},
    )

    @settings(max_examples=30, deadline=None)
    @given(batches, options)
    def check(batches: list[list[dict[str, Any]]], options: dict[str, Any]) -> None:
        with unit_of_work(store) as tx:
            tx.execute(f"TRUNCATE {tx.table('plain')}, {tx.table('daily')}")
        for rows in batches:
            same(store, rows, **options)

    check()


def test_keys_only_postgresql_compares_count_as_on_a_plain_table(
    store: PostgresStore, postgres_schema: str
) -> None:
    """A timestamptz partition key (checked for duplicates by the statement): same results."""
    utc, plus2 = datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=2))
    with unit_of_work(store) as tx:
        s = f'"{postgres_schema}"'
        tx.execute(f"DROP TABLE {s}.plain, {s}.daily")
        columns = "at timestamptz NOT NULL, id integer NOT NULL, v integer, PRIMARY KEY (at, id)"
        tx.execute(f"CREATE TABLE {s}.plain ({columns})")
        tx.execute(f"CREATE TABLE {s}.daily ({columns}) PARTITION BY RANGE (at)")
        tx.execute(
            f"CREATE TABLE {s}.daily_all PARTITION OF {s}.daily "
            "FOR VALUES FROM ('2026-12-01 00:00Z') TO ('2026-12-04 00:00Z')"
        )
    at = [datetime.datetime(2026, 12, d, 12, tzinfo=utc) for d in (1, 2, 3)]
    rows = [{"at": t, "id": i, "v": 1} for t in at for i in range(2)]

    def upsert(batch: list[dict[str, Any]]) -> Any:
        return same(store, batch, key=("at", "id"), returning=True)

    assert (6, 0, 0, 0) == counts(upsert(rows))
    assert (1, 1, 5, 0) == counts(upsert([*rows[1:], {**rows[0], "v": 2}, {**rows[0], "id": 9}]))
    # The same instant written in another zone: one key to PostgreSQL.
    twice = [rows[0], {**rows[0], "at": at[0].astimezone(plus2), "v": 5}]
    assert (DuplicateKeyError, None) == upsert(twice)
