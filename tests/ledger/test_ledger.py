"""The partition ledger on real SQLite and PostgreSQL: gaps, fingerprints, leases, backfill."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_pipeline import (
    ConfigurationError,
    Partition,
    PartitionLedger,
    SQLiteStore,
    abackfill,
    backfill,
    unit_of_work,
)
from resilient_pipeline.exceptions import BackfillError, LeaseLostError
from resilient_pipeline.ledger import PartitionRestated
from resilient_pipeline.storage import Store, Transaction
from resilient_pipeline.testing import FakeClock, capture_events

D1, D2, D3 = dt.date(2026, 11, 26), dt.date(2026, 11, 27), dt.date(2026, 11, 28)


def make_data_table(store: Store) -> None:
    """A data table WITHOUT a unique key: only the ledger keeps it duplicate-free."""
    with unit_of_work(store) as tx:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {tx.table('kpi')} "
            "(source TEXT, key TEXT, period TEXT, n INTEGER, spend DOUBLE PRECISION)"
        )


def writer(tx: Transaction, partition: Partition, rows: list[dict[str, Any]]) -> None:
    """Insert the partition's rows (plain INSERT: atomicity comes from the unit of work)."""
    tx.executemany(
        f"INSERT INTO {tx.table('kpi')} VALUES ({', '.join([tx.placeholder] * 5)})",
        [(*partition.as_tuple(), r["n"], r["spend"]) for r in rows],
    )


def rows_of(partition: Partition, spend: float = 1.0) -> list[dict[str, Any]]:
    """Three rows for a partition."""
    return [{"n": n, "spend": spend} for n in range(3)]


def data_counts(store: Store) -> dict[tuple[str, str, str], int]:
    """Rows per partition in the data table."""
    with unit_of_work(store) as tx:
        return {
            (s, k, p): c
            for s, k, p, c in tx.fetchall(
                f"SELECT source, key, period, count(*) FROM {tx.table('kpi')} "
                "GROUP BY source, key, period"
            )
        }


def test_gaps_are_expected_partitions_not_succeeded(any_store: Store) -> None:
    """gaps() lists missing and non-succeeded partitions, by period then key."""
    ledger = PartitionLedger(any_store)
    with unit_of_work(any_store) as tx:
        ledger.succeed(tx, Partition("meta", 1, D1), rows=rows_of(Partition("meta", 1, D1)))
        ledger.succeed(tx, Partition("other", 2, D1), rows=[])
    ledger.plan("meta", [2], D2, D2)
    gaps = ledger.gaps("meta", [1, 2], D1, D2)
    assert [
        ("2", "2026-11-26"),
        ("1", "2026-11-27"),
        ("2", "2026-11-27"),
    ] == [(g.key, g.period) for g in gaps]


def test_succeeded_only_if_the_data_committed(any_store: Store) -> None:
    """A unit of work that rolls back takes the 'succeeded' row with it."""
    ledger = PartitionLedger(any_store)
    partition = Partition("meta", 1, D1)

    def crash() -> None:
        with unit_of_work(any_store) as tx:
            ledger.succeed(tx, partition, rows=rows_of(partition))
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        crash()
    assert [(partition, "missing")] == [
        (g.partition, g.status) for g in ledger.gaps("meta", [1], D1, D1)
    ]


def test_fingerprints_detect_unchanged_and_restated_data(any_store: Store) -> None:
    """Identical rows are 'unchanged'; different rows are a recorded, reported restatement."""
    ledger = PartitionLedger(any_store)
    partition = Partition("meta", 1, D1)
    outcomes = []
    with capture_events() as events:
        for spend in (1.0, 1.0, 2.5):
            with unit_of_work(any_store) as tx:
                outcomes.append(ledger.succeed(tx, partition, rows=rows_of(partition, spend)))
    assert ["new", "unchanged", "restated"] == outcomes
    [restatement] = ledger.restatements("meta")
    assert (partition, 3, 3) == (
        restatement.partition,
        restatement.before_rows,
        restatement.after_rows,
    )
    assert restatement.before_fingerprint != restatement.after_fingerprint
    assert 1 == sum(isinstance(e, PartitionRestated) for e in events)
    assert 1 == ledger.records("meta")[0].restatements


def test_failures_count_attempts_then_exhaust(any_store: Store) -> None:
    """Each failure counts (a claim does not); at max_attempts the partition is exhausted."""
    ledger = PartitionLedger(any_store, max_attempts=2)
    partition = Partition("meta", 1, D1)
    statuses = []
    for run in ("r1", "r2"):
        ledger.start(partition, run_id=run)
        statuses.append(ledger.fail(partition, "OSError: reset", run_id=run))
    record = ledger.records("meta")[0]
    assert ["failed", "exhausted"] == statuses
    assert (2, "OSError: reset") == (record.attempts, record.last_error)
    assert ledger.claim("meta", run_id="r3") is None


def test_an_expired_lease_is_reclaimed_and_the_late_worker_loses(any_store: Store) -> None:
    """Worker B takes A's partition once A's lease expired; A's commit raises and rolls back."""
    clock = FakeClock()
    a = PartitionLedger(any_store, lease=60, clock=clock, worker_id="A")
    b = PartitionLedger(any_store, lease=60, clock=clock, worker_id="B")
    make_data_table(any_store)
    a.plan("meta", [1], D1, D1)
    partition = a.claim("meta", run_id="ra")
    assert partition is not None
    assert b.claim("meta", run_id="rb") is None
    clock.advance(61)
    assert partition == b.claim("meta", run_id="rb")

    def late_commit() -> None:
        with unit_of_work(any_store) as tx:
            writer(tx, partition, rows_of(partition))
            a.succeed(tx, partition, rows=rows_of(partition))

    with pytest.raises(LeaseLostError):
        late_commit()
    with unit_of_work(any_store) as tx:
        writer(tx, partition, rows_of(partition))
        b.succeed(tx, partition, rows=rows_of(partition))
    assert {partition.as_tuple(): 3} == data_counts(any_store)
    other = Partition("meta", 9, D3)
    b.start(other)
    with pytest.raises(LeaseLostError):
        a.start(other)


def test_backfill_collects_every_gap_once_and_rerun_is_a_no_op(any_store: Store) -> None:
    """Backfill fills the range; running it again writes nothing; changed data is restated."""
    ledger = PartitionLedger(any_store)
    make_data_table(any_store)
    with unit_of_work(any_store) as tx:  # one partition already collected
        writer(tx, Partition("meta", 1, D1), rows_of(Partition("meta", 1, D1)))
        ledger.succeed(tx, Partition("meta", 1, D1), rows=rows_of(Partition("meta", 1, D1)))
    fetched: list[Partition] = []

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        fetched.append(partition)
        return rows_of(partition)

    options: dict[str, Any] = {
        "source": "meta",
        "keys": [1, 2, 3],
        "start": D1,
        "end": D3,
        "write": writer,
        "progress": False,
    }
    first = backfill(ledger, fetch=fetch, concurrency=3, **options)
    assert (8, 0) == (first.count("new"), len(first.failed))
    assert Partition("meta", 1, D1) not in fetched
    assert [] == ledger.gaps("meta", [1, 2, 3], D1, D3)
    assert 9 == len(data_counts(any_store))
    assert {3} == set(data_counts(any_store).values())
    second = backfill(ledger, fetch=fetch, **options)
    assert 0 == len(second.collected)


def test_backfill_records_failures_and_reports_them(any_store: Store) -> None:
    """A failing fetch leaves a 'failed' partition (a gap) and the report raises on demand."""
    ledger = PartitionLedger(any_store)
    make_data_table(any_store)

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        if partition.key == "2":
            raise ConnectionError("https://api.test/?access_token=secret refused")
        return rows_of(partition)

    report = backfill(
        ledger,
        source="meta",
        keys=[1, 2],
        start=D1,
        end=D1,
        fetch=fetch,
        write=writer,
        policies=(),
        progress=False,
    )
    assert [Partition("meta", 2, D1)] == [g.partition for g in ledger.gaps("meta", [1, 2], D1, D1)]
    assert "secret" not in report.failed[0][1]
    with pytest.raises(BackfillError) as info:
        report.raise_for_failures()
    assert [("meta", "2", "2026-11-26")] == info.value.failed
    assert "failed" == ledger.records("meta", D1, D1)[1].status
    assert sorted((r.key, r.period, r.status) for r in ledger.records("meta", D1, D1)) == sorted(
        ledger._statuses("meta", D1, D1)
    )


def test_backfill_collects_only_the_given_keys(any_store: Store) -> None:
    """Other keys' gaps in the same source and period stay gaps: a churned client is not fetched."""
    ledger = PartitionLedger(any_store)
    make_data_table(any_store)
    # Planned earlier: keys 1-4, where "10" sorts between the given "1" and "2".
    ledger.plan("meta", [1, 10, 2, 3, 4], D1, D3)
    fetched: list[tuple[str, str]] = []

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        fetched.append((partition.key, partition.period))
        return rows_of(partition)

    given = ["1", "2", "5"]  # "5" was never planned: backfill plans it
    report = backfill(
        ledger,
        source="meta",
        keys=iter([1, 2, "5", 2]),  # an iterator, with a duplicate: read once
        start=D1,
        end=D3,
        fetch=fetch,
        write=writer,
        concurrency=2,
        progress=False,
    )
    expected = sorted((k, d.isoformat()) for k in given for d in (D1, D2, D3))
    assert expected == sorted(fetched)
    assert expected == sorted((p.key, p.period) for p, _ in report.collected)
    assert {("meta", k, p): 3 for k, p in expected} == data_counts(any_store)
    others = [(k, d.isoformat()) for d in (D1, D2, D3) for k in ("10", "3", "4")]
    assert others == [(g.key, g.period) for g in ledger.gaps("meta", [10, 3, 4], D1, D3)]
    assert {"pending"} == {
        r.status for r in ledger.records("meta", D1, D3) if r.partition.key not in given
    }


def test_backfill_collects_only_the_given_periods(any_store: Store) -> None:
    """periods= is a set, not a range: a planned period between two given ones is left alone."""
    ledger = PartitionLedger(any_store)
    make_data_table(any_store)
    ledger.plan("meta", ["a"], periods=["2026-09", "2026-10", "2026-11", "2026-10-15"])
    fetched: list[tuple[str, str]] = []

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        fetched.append((partition.key, partition.period))
        return rows_of(partition)

    report = backfill(
        ledger,
        source="meta",
        keys=["a"],
        periods=["2026-11", "2026-09"],
        fetch=fetch,
        write=writer,
        progress=False,
    )
    assert [("a", "2026-09"), ("a", "2026-11")] == sorted(fetched)
    assert [("a", "2026-09"), ("a", "2026-11")] == sorted(
        (p.key, p.period) for p, _ in report.collected
    )
    assert {"2026-10": "pending", "2026-10-15": "pending"} == {
        r.partition.period: r.status
        for r in ledger.records("meta")
        if r.partition.period not in ("2026-09", "2026-11")
    }


KEY_TEXT = st.text(alphabet="ab1%_\u00e9 ", min_size=1, max_size=3)


@settings(max_examples=30)
@given(
    planned=st.sets(KEY_TEXT, max_size=5),
    wanted=st.lists(KEY_TEXT, max_size=5),
    days=st.sets(st.integers(0, 5), max_size=4),
)
def test_backfill_collects_exactly_the_given_partitions(
    planned: set[str], wanted: list[str], days: set[int]
) -> None:
    """Whatever else is planned, backfill fetches given keys x given periods, each once."""
    store = SQLiteStore(":memory:")
    ledger = PartitionLedger(store)
    ledger.plan("meta", planned, D1, D1 + dt.timedelta(days=5))
    periods = [D1 + dt.timedelta(days=d) for d in days]
    fetched: list[tuple[str, str]] = []

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        fetched.append((partition.key, partition.period))
        return []

    backfill(
        ledger,
        source="meta",
        keys=wanted,
        periods=periods,
        fetch=fetch,
        write=lambda tx, partition, rows: None,
        progress=False,
    )
    expected = {(k, p.isoformat()) for k in wanted for p in periods}
    assert sorted(expected) == sorted(fetched)
    statuses = {(r.partition.key, r.partition.period): r.status for r in ledger.records("meta")}
    assert {kp: "succeeded" if kp in expected else "pending" for kp in statuses} == statuses
    store.close()


@pytest.mark.parametrize(
    ("keys", "periods"), [([], ["2026-11-26"]), (["1"], [])], ids=["no-keys", "no-periods"]
)
def test_backfill_of_nothing_collects_nothing(
    tmp_path: Path, keys: list[str], periods: list[str]
) -> None:
    """No keys (or no periods) means no partition, not every partition of the source."""
    store = SQLiteStore(tmp_path / "n.db")
    ledger = PartitionLedger(store)
    make_data_table(store)
    ledger.plan("meta", ["1", "2"], D1, D1)
    fetched: list[Partition] = []

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        fetched.append(partition)
        return []

    report = backfill(
        ledger,
        source="meta",
        keys=keys,
        periods=periods,
        fetch=fetch,
        write=writer,
        progress=False,
    )
    assert ([], ()) == (fetched, report.collected)
    assert {"pending"} == {r.status for r in ledger.records("meta")}
    store.close()


@pytest.mark.anyio
async def test_abackfill_with_an_async_fetch(tmp_path: Path) -> None:
    """An async fetch runs on the event loop (asyncio and trio)."""
    store = SQLiteStore(tmp_path / "a.db")
    ledger = PartitionLedger(store)
    make_data_table(store)

    async def fetch(partition: Partition) -> list[dict[str, Any]]:
        return rows_of(partition)

    report = await abackfill(
        ledger,
        source="s",
        keys=["a"],
        periods=["2026-10", "2026-11"],
        fetch=fetch,
        write=writer,
        progress=False,
    )
    assert ["2026-10", "2026-11"] == sorted(p.period for p, _ in report.collected)
    store.close()


@pytest.mark.parametrize(
    ("option", "value"), [("table", "bad\x00name"), ("lease", 0), ("max_attempts", 0)]
)
def test_bad_ledger_options(tmp_path: Path, option: str, value: object) -> None:
    """Invalid options raise ConfigurationError naming them."""
    with pytest.raises(ConfigurationError) as info:
        PartitionLedger(SQLiteStore(tmp_path / "x.db"), **{option: value})  # type: ignore[arg-type]
    assert option == info.value.option


def _tables(store: Store) -> set[str]:
    with unit_of_work(store) as tx:
        if tx.dialect == "postgres":
            rows = tx.fetchall(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        else:
            rows = tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {str(r[0]) for r in rows}


def test_reading_a_store_without_a_ledger_creates_nothing(any_store: Store) -> None:
    """gaps(), records(), sources() and restatements() read; they never create the tables."""
    ledger = PartitionLedger(any_store)
    before = _tables(any_store)
    day = dt.date(2026, 11, 28)
    gaps = ledger.gaps("meta_ads", [1, 2], day, day)
    assert [
        ("meta_ads", "1", "2026-11-28", "missing"),
        ("meta_ads", "2", "2026-11-28", "missing"),
    ] == [(*g.as_tuple(), g.status) for g in gaps]
    assert [] == ledger.records("meta_ads")
    assert [] == ledger._statuses("meta_ads", None, None)
    assert [] == ledger.sources()
    assert [] == ledger.restatements("meta_ads")
    assert before == _tables(any_store)
    ledger.plan("meta_ads", [1], day, day)
    ledger.plan("google_ads", [1], day, day)
    assert ["google_ads", "meta_ads"] == ledger.sources()
    assert ["pending"] == [r.status for r in ledger.records("meta_ads")]


def test_an_unknown_status_is_a_ledger_error_naming_it(any_store: Store) -> None:
    """A status this version does not know (a newer writer, a hand edit) is a typed error."""
    from resilient_pipeline.exceptions import LedgerError

    ledger = PartitionLedger(any_store)
    ledger.plan("meta_ads", [1], periods=["2026-11-28"])
    with unit_of_work(any_store) as tx:
        tx.execute(f"UPDATE {tx.table('rp_partitions')} SET status = 'paused'")
    with pytest.raises(LedgerError, match="unknown partition status 'paused'"):
        ledger.records("meta_ads")
