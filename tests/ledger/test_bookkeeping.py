"""What the ledger costs per partition: one commit, index-only claims, the same fingerprints."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import anyio
import anyio.from_thread
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import Partition, PartitionLedger, abackfill, backfill, unit_of_work
from resilient_pipeline.ledger._sql import fingerprint
from resilient_pipeline.storage import Store, Transaction

D1 = dt.date(2026, 11, 1)


class CountingLedger(PartitionLedger):
    """Counts claims made in a transaction of their own and inside another one."""

    alone = 0
    inside = 0

    def claim_many(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("tx") is None:
            self.alone += 1
        else:
            self.inside += 1
        return super().claim_many(*args, **kwargs)


def write_rows(tx: Transaction, partition: Partition, rows: Any) -> None:
    """Write each row of a partition into ``data``."""
    p = tx.placeholder
    tx.executemany(
        f"INSERT INTO {tx.table('data')} VALUES ({p}, {p}, {p})",
        [(partition.key, partition.period, row["n"]) for row in rows],
    )


def make_data(store: Store) -> None:
    with unit_of_work(store) as tx:
        tx.execute(f"CREATE TABLE {tx.table('data')} (key TEXT, period TEXT, n INTEGER)")


def test_each_partition_commits_with_the_next_claim(any_store: Store) -> None:
    """One claim of its own per worker; every later claim rides on the previous commit."""
    make_data(any_store)
    ledger = CountingLedger(any_store)
    report = backfill(
        ledger,
        source="ads",
        keys=[1, 2, 3],
        start=D1,
        end=D1 + dt.timedelta(days=1),
        fetch=lambda p: [{"n": 1}],
        write=write_rows,
        concurrency=1,
        policies=(),
        progress=False,
    )
    # 6 partitions: the first claim alone, then 6 claims inside the 6 commits (the last finds none)
    assert (6, 1, 6) == (report.count("new"), ledger.alone, ledger.inside)
    assert [] == ledger.gaps("ads", [1, 2, 3], D1, D1 + dt.timedelta(days=1))


def test_a_failed_commit_takes_its_next_claim_with_it(any_store: Store) -> None:
    """The write of one partition fails: the claim made in its transaction rolls back too."""
    make_data(any_store)
    ledger = CountingLedger(any_store)

    def write(tx: Transaction, partition: Partition, rows: Any) -> None:
        write_rows(tx, partition, rows)
        if partition.key == "1":
            raise RuntimeError("disk full")

    report = backfill(
        ledger,
        source="ads",
        keys=[1, 2, 3],
        start=D1,
        end=D1,
        fetch=lambda p: [{"n": 7}],
        write=write,
        concurrency=1,
        policies=(),
        progress=False,
    )
    statuses = {r.key: r.status for r in ledger.records("ads")}
    assert {"1": "failed", "2": "succeeded", "3": "succeeded"} == statuses
    assert ["2", "3"] == sorted(p.key for p, _ in report.collected)
    with unit_of_work(any_store) as tx:
        rows = tx.fetchall(f"SELECT key, n FROM {tx.table('data')} ORDER BY key")
    assert [("2", 7), ("3", 7)] == rows
    # after the failure, the worker claimed on its own again: nothing was left leased
    assert 2 == ledger.alone


def test_a_cancelled_sync_backfill_stops_between_partitions() -> None:
    """A sync fetch runs a worker's whole loop in a thread; cancelling still stops it."""
    from resilient_pipeline import SQLiteStore

    ledger = PartitionLedger(SQLiteStore(":memory:"))
    fetched: list[str] = []

    async def main() -> None:
        with anyio.CancelScope() as scope:

            def fetch(partition: Partition) -> list[dict[str, int]]:
                fetched.append(partition.key)
                if len(fetched) == 2:
                    anyio.from_thread.run_sync(scope.cancel)
                return [{"n": 1}]

            await abackfill(
                ledger,
                source="ads",
                keys=range(10),
                start=D1,
                end=D1,
                fetch=fetch,
                write=lambda tx, p, rows: None,
                concurrency=1,
                policies=(),
                progress=False,
            )
        assert scope.cancelled_caught

    anyio.run(main)
    assert ["0", "1"] == fetched
    assert 8 == len(ledger.gaps("ads", range(10), D1, D1))


def _plan_of(store: Store, sql: str, params: tuple[Any, ...]) -> str:
    with unit_of_work(store) as tx:
        if tx.dialect == "postgres":
            # A small table may be scanned and sorted by choice: ask whether a plan
            # without any sort exists (the old ORDER BY CASE ... query had none).
            tx.execute("SET LOCAL enable_sort = off")
            tx.execute("SET LOCAL enable_seqscan = off")
            rows = tx.fetchall("EXPLAIN " + sql, params)
        else:
            rows = tx.fetchall("EXPLAIN QUERY PLAN " + sql, params)
    return "\n".join(str(row[-1]) for row in rows)


def test_a_claim_walks_the_status_index_without_sorting(
    any_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every claim query is an ordered range of the status index: no sort of the whole range."""
    ledger = PartitionLedger(any_store)
    keys = [str(k) for k in range(40)]
    ledger.plan("ads", keys, D1, D1 + dt.timedelta(days=29))
    queries: list[tuple[str, tuple[Any, ...]]] = []
    with unit_of_work(any_store) as tx:
        original = type(tx).fetchall

        def spy(self: Transaction, sql: str, params: Any = ()) -> Any:
            queries.append((sql, tuple(params)))
            return original(self, sql, params)

        monkeypatch.setattr(type(tx), "fetchall", spy)
        ledger.claim_many(
            "ads", D1, D1 + dt.timedelta(days=29), run_id="r", keys=keys,
            include_exhausted=True, recheck=[D1], limit=2000, tx=tx,
        )  # fmt: skip
        monkeypatch.undo()
    claims = [(sql, params) for sql, params in queries if "ORDER BY" in sql]
    assert 6 == len(claims)  # pending, failed, expired, exhausted, quarantined, re-check
    for sql, params in claims:
        plan = _plan_of(any_store, sql.replace(" FOR UPDATE SKIP LOCKED", ""), params)
        assert "status" in plan, plan  # the (source, status, period, key) index
        assert "TEMP B-TREE" not in plan, plan
        assert "Sort" not in plan, plan


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.dates()
    | st.decimals(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


def digest_as_before(rows: list[Any]) -> str:
    """The fingerprint as json.dumps computed it, one row at a time."""
    lines = sorted(
        json.dumps(row, sort_keys=True, separators=(",", ":"), default=str) for row in rows
    )
    return hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()[:32]


@given(st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5), max_size=8))
def test_fingerprints_are_the_digests_stored_before(rows: list[dict[str, Any]]) -> None:
    """The faster encoder gives the digest json.dumps gave, byte for byte (stored ones match)."""
    assert digest_as_before(rows) == fingerprint(rows)


# What the one-call encoding of all rows must not split on: "},{" in text, in a list of dicts.
braces = st.text(alphabet='{},"\\a', max_size=6) | st.sampled_from(["},{", '"},{"', "a},{"])
tricky_values = st.recursive(
    braces | st.integers() | st.none(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(braces, children, max_size=3),
    max_leaves=6,
)
tricky_rows = st.dictionaries(braces, tricky_values, max_size=4) | st.builds(
    OrderedDict, st.dictionaries(braces, tricky_values, max_size=2)
)


@given(st.lists(tricky_rows, max_size=6))
def test_rows_encoded_at_once_give_each_rows_own_text(rows: list[dict[str, Any]]) -> None:
    """Braces and commas in keys, values and nested lists of dicts never move a row boundary."""
    assert digest_as_before(rows) == fingerprint(rows)
    assert digest_as_before(rows) == fingerprint(iter(rows))  # any iterable of rows


def test_a_row_that_contains_itself_is_an_error() -> None:
    """A self-referencing row raises, as json.dumps does, instead of recursing forever."""
    row: dict[str, Any] = {"n": Decimal(1)}
    row["self"] = row
    with pytest.raises(ValueError, match="Circular reference"):
        fingerprint([row])


def test_a_claim_follows_a_changed_key_list(any_store: Store) -> None:
    """The claim condition is reused only for the same tuples: a list changed in place is new."""
    ledger = PartitionLedger(any_store)
    ledger.plan("ads", ["a", "b"], D1, D1)
    keys = ["a"]
    first = ledger.claim_many("ads", D1, D1, run_id="r", keys=keys)
    keys[0] = "b"
    second = ledger.claim_many("ads", D1, D1, run_id="r", keys=keys)
    same = ("a",)
    third = ledger.claim_many("ads", D1, D1, run_id="r", keys=same)
    assert (["a"], ["b"], []) == (
        [c.partition.key for c in first],
        [c.partition.key for c in second],
        [c.partition.key for c in third],
    )
