"""PostgreSQL's fast paths (MERGE; INSERT + UPDATE): what ON CONFLICT would do, or they give way."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_pipeline import PostgresStore, idempotent_upsert, unit_of_work
from resilient_pipeline.exceptions import ResilientPipelineError, StoreError
from resilient_pipeline.storage import _postgres_fast, _postgres_upsert
from tests.strategies import UPSERT_DDL, UPSERT_KEY, upsert_rows

pytestmark = pytest.mark.postgres


@pytest.fixture
def store(postgres_dsn: str, postgres_schema: str) -> Iterator[PostgresStore]:
    """A store that sends every batch through COPY (where the fast path is)."""
    s = PostgresStore(postgres_dsn, schema=postgres_schema, copy_threshold=1)
    yield s
    s.close()


@pytest.fixture(params=["merge", "insert+update"])
def statement(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with the MERGE statement where it applies, and with the other one only."""
    if request.param != "merge":
        monkeypatch.setattr(_postgres_fast, "_merges", lambda session, batch: False)
    return str(request.param)


@pytest.fixture
def fast_calls(statement: str, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per fast-path attempt: whether its result was kept."""
    calls: list[bool] = []
    real = _postgres_fast._try_fast

    def spy(*args: Any) -> Any:
        rows = real(*args)
        calls.append(rows is not None)
        return rows

    monkeypatch.setattr(_postgres_upsert, "_try_fast", spy)
    return calls


def create(store: PostgresStore, *tables: str, ddl: str = UPSERT_DDL) -> None:
    """Create ``tables`` with ``ddl`` (``{t}`` is the table)."""
    with unit_of_work(store) as tx:
        for table in tables:
            tx.execute(ddl.format(t=tx.table(table)))


def outcome(store: PostgresStore, table: str, rows: list[dict[str, Any]], **options: Any) -> Any:
    """The upsert's result, or the library error's class and SQLSTATE."""
    try:
        return idempotent_upsert(store, table, rows, **options)
    except ResilientPipelineError as exc:
        return type(exc), getattr(exc, "sqlstate", None)


def content(store: PostgresStore, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table``, sorted."""
    with unit_of_work(store) as tx:
        return sorted(tx.fetchall(f"SELECT * FROM {tx.table(table)}"), key=repr)


OPTIONS = st.fixed_dictionaries(
    {
        "key": st.just(UPSERT_KEY),
        "returning": st.booleans(),
        "on_duplicate": st.sampled_from(["first", "last"]),
    },
    optional={
        "version": st.just("v"),
        "insert_only": st.just(("n",)),
        "update_columns": st.sampled_from([(), ("v",), ("v", "n")]),
    },
).filter(lambda o: "version" not in o or "v" in o.get("update_columns", ("v",)))


def test_the_fast_path_stores_and_counts_what_on_conflict_does(
    store: PostgresStore, fast_calls: list[bool]
) -> None:
    """Any sequence of batches and options: the same results and table with and without it."""
    create(store, "slow", "fast")

    @settings(max_examples=40, deadline=None)
    @given(st.lists(upsert_rows, min_size=1, max_size=3), OPTIONS)
    def check(batches: list[list[dict[str, Any]]], options: dict[str, Any]) -> None:
        with unit_of_work(store) as tx:
            tx.execute(f"TRUNCATE {tx.table('slow')}, {tx.table('fast')}")
        for rows in batches:
            fast_calls.clear()
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(_postgres_upsert, "_try_fast", lambda *args: None)
                slow = outcome(store, "slow", rows, **options)
            fast = outcome(store, "fast", rows, **options)
            assert slow == fast
            assert content(store, "slow") == content(store, "fast")
            # Alone on the table, the fast path never needs to give way.
            assert fast_calls == ([True] if rows else [])

    check()


def test_a_batch_found_changed_meanwhile_is_rolled_back_and_redone(
    store: PostgresStore, fast_calls: list[bool], monkeypatch: pytest.MonkeyPatch, statement: str
) -> None:
    """When the fast statement says a row escaped it, its writes are undone, not doubled."""
    create(store, "t")
    real = _postgres_fast._fast_statement
    # As if another writer had deleted or changed a row after the snapshot.
    monkeypatch.setattr(
        _postgres_fast,
        "_fast_statement",
        lambda batch, raw: real(batch, raw).replace("FROM src) <> ", "FROM src) >= "),
    )
    merged = _postgres_fast._merged
    # As if MERGE had written a row the statistics counters did not count.
    monkeypatch.setattr(
        _postgres_fast,
        "_merged",
        lambda batch, written, inserted, updated: merged(batch, written + 1, inserted, updated),
    )
    rows = [{"k": k, "p": "meta", "v": 1, "n": None} for k in range(5)]
    assert (5, 0, 0) == astuple(idempotent_upsert(store, "t", rows, key=UPSERT_KEY))
    changed = [{**row, "v": 2} for row in rows[:3]] + rows[3:]
    assert (0, 3, 2) == astuple(idempotent_upsert(store, "t", changed, key=UPSERT_KEY))
    assert [False, False] == fast_calls
    expected = sorted(((r["k"], r["p"], r["v"], r["n"]) for r in changed), key=repr)
    assert expected == content(store, "t")


def astuple(result: Any) -> tuple[int, int, int]:
    """``(inserted, updated, unchanged)``."""
    return result.inserted, result.updated, result.unchanged


def test_a_row_locked_elsewhere_makes_it_give_way_and_wait_in_key_order(
    store: PostgresStore, postgres_dsn: str, postgres_schema: str, fast_calls: list[bool]
) -> None:
    """A key another transaction holds: the fast path gives up at once, ON CONFLICT waits."""
    create(store, "t")
    rows = [{"k": k, "p": "meta", "v": 1, "n": None} for k in range(4)]
    idempotent_upsert(store, "t", rows, key=UPSERT_KEY)
    fast_calls.clear()
    other = psycopg.connect(postgres_dsn)
    results: list[Any] = []
    try:
        other.execute(f'UPDATE "{postgres_schema}".t SET v = 2 WHERE k = 1')  # still open
        changed = [{**row, "v": 2} for row in rows]
        worker = threading.Thread(
            target=lambda: results.append(outcome(store, "t", changed, key=UPSERT_KEY))
        )
        worker.start()
        # Wait (without sleeping) until the ON CONFLICT statement waits for the other
        # transaction's lock. Not merely a fast statement in its 1 ms wait: a commit
        # within that millisecond would let it go on, and MERGE then finds k=1 as
        # wanted (no miss to give way on) where the INSERT + UPDATE statement counts a miss.
        for _ in range(100_000):
            other.execute("SELECT pg_stat_clear_snapshot()")  # else read once per transaction
            waiting = other.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE NOT l.granted AND l.pid <> pg_backend_pid()"
                " AND a.query LIKE '%%ON CONFLICT%%' AND strpos(a.query, %s) > 0",
                (postgres_schema,),
            ).fetchone()
            if (waiting is not None and waiting[0] > 0) or not worker.is_alive():
                break
        other.commit()
        worker.join(timeout=60)
    finally:
        other.close()
    # The fast path gave way; the one-statement path then waited (so lock_timeout
    # was restored) and found k=1 already as wanted.
    assert [False] == fast_calls
    assert [(0, 3, 1)] == [astuple(r) for r in results]
    assert [(k, "meta", 2, None) for k in range(4)] == content(store, "t")


def test_lock_timeout_is_the_callers_again_after_the_fast_path(
    store: PostgresStore, fast_calls: list[bool]
) -> None:
    """The fast path's 1 ms lock_timeout does not outlive it."""
    create(store, "t")
    rows = [{"k": k, "p": "meta", "v": 1, "n": None} for k in range(3)]
    with unit_of_work(store) as tx:
        tx.execute("SET LOCAL lock_timeout = '4s'")
        tx.upsert("t", rows, key=UPSERT_KEY)
        assert ("4s",) == tx.fetchone("SHOW lock_timeout")
    assert [True] == fast_calls


def test_columns_named_like_the_new_key_flag(store: PostgresStore) -> None:
    """A column called rp_new (or rp_new_) does not confuse the fast statement."""
    create(
        store,
        "t",
        ddl="CREATE TABLE {t} (id integer PRIMARY KEY, rp_new integer, rp_new_ text)",
    )
    rows = [{"id": i, "rp_new": i, "rp_new_": "a"} for i in range(3)]
    assert (3, 0, 0) == astuple(idempotent_upsert(store, "t", rows, key="id", returning=True))
    rows[0]["rp_new"] = 9
    result = idempotent_upsert(store, "t", rows, key="id", returning=True)
    assert ((0, 1, 2), ((0,),)) == (astuple(result), result.updated_keys)
    assert [(0, 9, "a"), (1, 1, "a"), (2, 2, "a")] == sorted(content(store, "t"))


TRIGGERED = """
CREATE TABLE {t} (id integer PRIMARY KEY, v integer);
CREATE FUNCTION {t}_x10() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN NEW.v := NEW.v * 10; RETURN NEW; END $$;
CREATE TRIGGER seen BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {t}_x10();
"""
PARTITIONED = """
CREATE TABLE {t} (id integer PRIMARY KEY, v integer) PARTITION BY RANGE (id);
CREATE TABLE {t}_0 PARTITION OF {t} FOR VALUES FROM (0) TO (100);
"""


@pytest.mark.parametrize(
    ("ddl", "tried"),
    [
        # A BEFORE INSERT trigger changes updated rows too (EXCLUDED.v): tried,
        # found not plain (checked per batch), given way.
        pytest.param(TRIGGERED, [False, False], id="trigger"),
        # Its partitions may have triggers of their own: not even tried.
        pytest.param(PARTITIONED, [], id="partitioned"),
    ],
)
def test_tables_a_plain_write_would_treat_otherwise_keep_the_on_conflict_path(
    postgres_dsn: str, postgres_schema: str, fast_calls: list[bool], ddl: str, tried: list[bool]
) -> None:
    """Triggers, partitions: COPY batches give what VALUES batches give; no fast path."""
    values = PostgresStore(postgres_dsn, schema=postgres_schema, copy_threshold=10**9)
    copy = PostgresStore(postgres_dsn, schema=postgres_schema, copy_threshold=1)
    try:
        with unit_of_work(values) as tx:
            for table in ("a", "b"):
                # Unquoted names: {t}_x10 and {t}_0 must stay one identifier.
                tx.execute(ddl.format(t=f"{postgres_schema}.{table}"))
        for rows in ([{"id": 1, "v": 1}], [{"id": 1, "v": 2}, {"id": 2, "v": 3}]):
            assert outcome(values, "a", rows, key="id") == outcome(copy, "b", rows, key="id")
            assert content(values, "a") == content(copy, "b")
        assert tried == fast_calls
    finally:
        values.close()
        copy.close()


X10 = """
CREATE FUNCTION {s}.x10() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN NEW.v := NEW.v * 10; RETURN NEW; END $$
"""


def test_a_trigger_added_after_the_first_upsert_is_seen(
    postgres_dsn: str, postgres_schema: str, fast_calls: list[bool]
) -> None:
    """Upsert, add a BEFORE INSERT trigger, upsert again: it acts as under ON CONFLICT."""
    values = PostgresStore(postgres_dsn, schema=postgres_schema, copy_threshold=10**9)
    copy = PostgresStore(postgres_dsn, schema=postgres_schema, copy_threshold=1)
    try:
        create(values, "a", "b", ddl="CREATE TABLE {t} (id integer PRIMARY KEY, v integer)")
        first = [{"id": 1, "v": 1}, {"id": 2, "v": 2}]
        assert outcome(values, "a", first, key="id") == outcome(copy, "b", first, key="id")
        assert [True] == fast_calls  # the table is described (and cached) as plain
        with unit_of_work(values) as tx:
            tx.execute(X10.format(s=f'"{postgres_schema}"'))
            for table in ("a", "b"):
                tx.execute(
                    f"CREATE TRIGGER seen BEFORE INSERT ON {tx.table(table)} "
                    f'FOR EACH ROW EXECUTE FUNCTION "{postgres_schema}".x10()'
                )
        # ON CONFLICT runs the trigger on every row it tries: the updated row 1
        # gets EXCLUDED.v = 30, the new row 3 gets 40; identical row 2 is not tried.
        second = [{"id": 1, "v": 3}, {"id": 2, "v": 2}, {"id": 3, "v": 4}]
        assert outcome(values, "a", second, key="id") == outcome(copy, "b", second, key="id")
        expected = [(1, 30), (2, 2), (3, 40)]
        assert (expected, expected) == (content(values, "a"), content(copy, "b"))
        assert [True, False] == fast_calls
    finally:
        values.close()
        copy.close()


CONSTRAINED = (
    "CREATE TABLE {t} (id integer PRIMARY KEY, email text UNIQUE, v integer CHECK (v >= 0))"
)


@pytest.mark.parametrize(
    ("rows", "sqlstate"),
    [
        ([{"id": 2, "email": "a@x", "v": 1}], "23505"),  # another unique index
        ([{"id": 1, "email": "a@x", "v": -1}], "23514"),  # a CHECK on update
        ([{"id": 3, "email": "c@x", "v": -1}], "23514"),  # a CHECK on insert
    ],
)
def test_constraint_errors_are_the_same_and_nothing_is_written(
    store: PostgresStore, fast_calls: list[bool], rows: list[dict[str, Any]], sqlstate: str
) -> None:
    """A row the table refuses: the error ON CONFLICT gives, nothing half-written."""
    create(store, "t", ddl=CONSTRAINED)
    idempotent_upsert(store, "t", [{"id": 1, "email": "a@x", "v": 0}], key="id")
    before = content(store, "t")
    fast_calls.clear()
    batch = [*rows, {"id": 9, "email": "z@x", "v": 5}]
    assert (StoreError, sqlstate) == outcome(store, "t", batch, key="id")
    assert [False] == fast_calls
    assert before == content(store, "t")


@pytest.mark.parametrize("table", ["raw", "src", "up", "dup", "ins", "upd", "s", "t"])
@pytest.mark.parametrize("size", [2, 5], ids=["values", "copy"])
def test_a_table_named_like_a_part_of_the_statement_is_written(
    postgres_dsn: str, postgres_schema: str, table: str, size: int
) -> None:
    """No schema on the store (the search path finds the table): a table named raw, src, ...
    is written and counted exactly, not mistaken for the statement's own part of that name."""
    dsn = f"{postgres_dsn}?options=-csearch_path%3D{postgres_schema}"
    store = PostgresStore(dsn, copy_threshold=3)
    try:
        with unit_of_work(store) as tx:
            tx.execute(f'CREATE TABLE "{table}" (k integer PRIMARY KEY, v integer)')
        first = [{"k": k, "v": 10 * k} for k in range(size)]
        second = [{"k": k, "v": 10 * k + (k % 2)} for k in range(size + 1)]
        with unit_of_work(store) as tx:
            inserted = idempotent_upsert(tx, table, first, key=["k"])
        with unit_of_work(store) as tx:
            changed = idempotent_upsert(tx, table, second, key=["k"])
        with unit_of_work(store) as tx:
            stored = tx.fetchall(f'SELECT k, v FROM "{table}" ORDER BY k')
    finally:
        store.close()
    assert (size, 0, 0) == (inserted.inserted, inserted.updated, inserted.unchanged)
    odd = sum(k % 2 for k in range(size))
    assert (1, odd, size - odd) == (changed.inserted, changed.updated, changed.unchanged)
    assert [(r["k"], r["v"]) for r in second] == [tuple(row) for row in stored]


@pytest.fixture
def merges(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The MERGE statements built (one per batch that took that path)."""
    built: list[str] = []
    real = _postgres_fast._merge_statement

    def spy(batch: Any, stage: str) -> str:
        built.append(real(batch, stage))
        return built[-1]

    monkeypatch.setattr(_postgres_fast, "_merge_statement", spy)
    return built


def test_a_default_batch_is_merged_and_others_take_the_other_statement(
    store: PostgresStore, fast_calls: list[bool], merges: list[str], statement: str
) -> None:
    """MERGE for batches without version= or returning=True (PostgreSQL 15+); kept, exact."""
    create(store, "t")
    rows = [{"k": k, "p": "meta", "v": 1, "n": None} for k in range(4)]
    assert (4, 0, 0) == astuple(idempotent_upsert(store, "t", rows, key=UPSERT_KEY))
    changed = [{**row, "v": 2} for row in rows[:2]] + rows[2:] + [{**rows[0], "k": 9}]
    assert (1, 2, 2) == astuple(idempotent_upsert(store, "t", changed, key=UPSERT_KEY))
    result = idempotent_upsert(store, "t", changed, key=UPSERT_KEY, returning=True)
    assert (0, 0, 5) == astuple(result)
    idempotent_upsert(store, "t", changed, key=UPSERT_KEY, version="v")
    with unit_of_work(store) as tx:
        version = tx.session.connection.info.server_version  # type: ignore[attr-defined]
    expected = 2 if statement == "merge" and version >= 150_000 else 0
    assert (expected, [True] * 4) == (len(merges), fast_calls)


def test_counters_that_do_not_move_make_the_merge_give_way(
    store: PostgresStore, fast_calls: list[bool], merges: list[str], statement: str
) -> None:
    """track_counts off: MERGE cannot be counted, so it is undone and ON CONFLICT runs."""
    create(store, "t")
    rows = [{"k": k, "p": "meta", "v": 1, "n": None} for k in range(3)]
    idempotent_upsert(store, "t", rows[:1], key=UPSERT_KEY)
    changed = [{**rows[0], "v": 5}, *rows[1:]]
    with unit_of_work(store) as tx:
        tx.execute("SET LOCAL track_counts = off")
        result = tx.upsert("t", changed, key=UPSERT_KEY)
    assert (2, 1, 0) == astuple(result)
    assert [(0, "meta", 5, None), (1, "meta", 1, None), (2, "meta", 1, None)] == content(store, "t")
    kept = statement != "merge" or not merges
    assert [True, kept] == fast_calls


@pytest.mark.parametrize("version", [None, "n"])
def test_a_staging_table_in_another_column_order_stores_every_value_in_its_column(
    store: PostgresStore, statement: str, version: str | None
) -> None:
    """Text first, then fixed sizes: staged in packing order, each value lands where it belongs."""
    ddl = (
        "CREATE TABLE {t} (label text, ok boolean, n bigint, day date, code smallint,"
        " note varchar(5), share real, PRIMARY KEY (label, day))"
    )
    create(store, "mixed", ddl=ddl)
    first: list[dict[str, Any]] = [
        {"label": f"k{i}", "ok": i % 2 == 0, "n": 10**12 + i, "day": datetime.date(2026, 1, 1 + i),
         "code": -i, "note": None if i == 1 else f"n{i}", "share": i / 4}
        for i in range(3)
    ]  # fmt: skip
    second = [{**row, "n": row["n"] + 1, "note": "new"} for row in first]
    key = ("label", "day")
    assert (3, 0, 0) == counts(idempotent_upsert(store, "mixed", first, key=key, version=version))
    assert (0, 3, 0) == counts(idempotent_upsert(store, "mixed", second, key=key, version=version))
    with unit_of_work(store) as tx:
        stored = tx.fetchall(
            f"SELECT label, ok, n, day, code, note, share FROM {tx.table('mixed')} ORDER BY label"
        )
    assert [tuple(row.values()) for row in second] == [tuple(row) for row in stored]


def counts(result: Any) -> tuple[int, int, int]:
    """inserted, updated, unchanged."""
    return result.inserted, result.updated, result.unchanged
