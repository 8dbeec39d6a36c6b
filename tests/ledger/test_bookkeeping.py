"""What the ledger costs per partition: one commit, index-only claims, the same fingerprints."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resilient_pipeline import (
    Partition,
    PartitionLedger,
    abackfill,
    backfill,
    subscribe,
    unit_of_work,
)
from resilient_pipeline.exceptions import LeaseLostError
from resilient_pipeline.ledger import Claimed, PartitionCollected
from resilient_pipeline.ledger import _backfill as backfill_module
from resilient_pipeline.ledger._fingerprint import fingerprint
from resilient_pipeline.ledger._sql import one_of
from resilient_pipeline.storage import Store, Transaction
from resilient_pipeline.testing import FakeClock

D1 = dt.date(2026, 11, 1)


class CountingLedger(PartitionLedger):
    """Counts claims made in a transaction of their own, and after a success inside its commit."""

    alone = 0
    inside = 0

    def claim_many(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("tx") is None:
            self.alone += 1
        return super().claim_many(*args, **kwargs)

    def _claim(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("after") is not None:
            self.inside += 1
        return super()._claim(*args, **kwargs)


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
    # 6 partitions: the first claim alone, then 6 claims inside the 6 commits (the last finds
    # none). On PostgreSQL the commit went with the success and the claim of pending work, so
    # the other groups (failed, expired, ...) were still to try: one more claim alone.
    alone = 2 if any_store.dialect == "postgres" else 1
    assert (6, alone, 6) == (report.count("new"), ledger.alone, ledger.inside)
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
    # (on PostgreSQL once more at the end: the last commit looked for pending work only)
    assert (3 if any_store.dialect == "postgres" else 2) == ledger.alone


class FailingAfterClaimLedger(CountingLedger):
    """Partition "1"'s commit fails at COMMIT, after its claim of the next partition went in."""

    fail_commit: ClassVar[list[bool]] = []

    def _claim(self, *args: Any, **kwargs: Any) -> Any:
        claimed = super()._claim(*args, **kwargs)
        after = kwargs.get("after")
        if after is not None and after.partition.key == "1" and claimed:
            self.fail_commit.append(True)
        return claimed


@contextlib.contextmanager
def failing_at_commit(store: Store, **options: Any) -> Iterator[Transaction]:
    """unit_of_work, failing as its COMMIT would when the ledger asked (all rolled back)."""
    with unit_of_work(store, **options) as tx:
        yield tx
        if FailingAfterClaimLedger.fail_commit:
            FailingAfterClaimLedger.fail_commit.clear()
            raise RuntimeError("connection lost at COMMIT")


def test_a_claim_rolled_back_with_its_commit_does_not_count_against_the_limit(
    any_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """limit=2: partition 1's commit fails after claiming 2; 2 is still claimed and collected."""
    monkeypatch.setattr(backfill_module, "unit_of_work", failing_at_commit)
    # The COMMIT is what fails: PostgreSQL's last statement must not take it along.
    monkeypatch.setattr(Transaction, "fetchall_and_commit", Transaction.fetchall)
    make_data(any_store)
    ledger = FailingAfterClaimLedger(any_store)
    report = backfill(
        ledger,
        source="ads",
        keys=[1, 2, 3],
        start=D1,
        end=D1,
        fetch=lambda p: [{"n": 7}],
        write=write_rows,
        concurrency=1,
        limit=2,
        policies=(),
        progress=False,
    )
    statuses = {r.key: r.status for r in ledger.records("ads")}
    assert {"1": "failed", "2": "succeeded"} == {k: statuses[k] for k in ("1", "2")}
    assert "succeeded" != statuses.get("3")
    assert ["2"] == [p.key for p, _ in report.collected]
    with unit_of_work(any_store) as tx:
        rows = tx.fetchall(f"SELECT key, n FROM {tx.table('data')} ORDER BY key")
    assert [("2", 7)] == rows


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
tricky_rows: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    braces, tricky_values, max_size=4
) | st.builds(OrderedDict, st.dictionaries(braces, tricky_values, max_size=2))


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


# A ledger row's state before a success and the next claim, as (status, lease owner,
# lease expiry from now, run id, fingerprint).
ROW_STATES = {
    "pending": ("pending", None, None, None, None),
    "ours": ("running", "A", 60.0, "run", None),
    "theirs": ("running", "B", 60.0, "other", None),
    "expired": ("running", "B", -1.0, "other", None),
    "failed": ("failed", None, None, "old", None),
    "succeeded": ("succeeded", None, None, "old", "fp-old"),
}


def seeded_ledger(store: Store, clock: FakeClock, states: list[str]) -> PartitionLedger:
    """A ledger of worker A whose partitions 0, 1, ... of ``ads`` are in ``states``."""
    ledger = PartitionLedger(store, table=f"l_{uuid.uuid4().hex[:10]}", clock=clock, worker_id="A")
    ledger.ensure_schema()
    now = clock.time()
    with unit_of_work(store) as tx:
        p = tx.placeholder
        tx.executemany(
            f"INSERT INTO {tx.table(ledger.table)} (source, key, period, status, lease_owner,"
            f" lease_expires, run_id, fingerprint, row_count, attempts)"
            f" VALUES ('ads', {p}, {p}, {p}, {p}, {p}, {p}, {p}, 3, 1)",
            [
                (
                    str(key),
                    D1.isoformat(),
                    status,
                    owner,
                    None if ahead is None else now + ahead,
                    run_id,
                    fp,
                )
                for key, (status, owner, ahead, run_id, fp) in enumerate(
                    ROW_STATES[state] for state in states
                )
            ],
        )
    return ledger


def ledger_rows(store: Store, ledger: PartitionLedger) -> list[tuple[Any, ...]]:
    with unit_of_work(store) as tx:
        return tx.fetchall(f"SELECT * FROM {tx.table(ledger.table)} ORDER BY key")


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    held=st.sampled_from(["ours", "theirs"]),
    others=st.lists(st.sampled_from(sorted(ROW_STATES)), max_size=4),
    restated=st.booleans(),
    limit=st.integers(1, 3),
)
def test_a_success_with_the_next_claim_is_the_success_then_the_claim(
    any_store: Store, held: str, others: list[str], restated: bool, limit: int
) -> None:
    """One statement on PostgreSQL, two on SQLite: the same rows, claims and lost leases.

    Also when the statement commits (one round trip with COMMIT on PostgreSQL), followed by
    a claim alone of what it did not look for, as a backfill does.
    """
    clock = FakeClock()
    outcomes = []
    for fused, commit in ((True, False), (True, True), (False, False)):
        ledger = seeded_ledger(any_store, clock, [held, *others])
        claimed = Claimed(
            partition=Partition("ads", 0, D1),
            fingerprint="fp-old" if restated else None,
            row_count=3 if restated else None,
            status="running",
        )
        success = ledger._success_of(claimed, 2, "fp-new", 0.5, "run", 4.0)
        args = ("ads", "", "\uffff", "run", limit, None, None, False, None)
        try:
            with unit_of_work(any_store) as tx:
                if fused:
                    taken = ledger._claim(tx, *args, after=success, commit=commit)
                else:
                    ledger._record(tx, success)
                    taken = ledger._claim(tx, *args)
            assert (commit and any_store.dialect == "postgres" and not restated) == tx.committed
            if tx.committed and len(taken) < limit:
                taken += ledger.claim_many("ads", run_id="run", limit=limit - len(taken))
        except LeaseLostError:
            taken = None
        restatements = ledger.restatements("ads")
        outcomes.append((taken, ledger_rows(any_store, ledger), len(restatements)))
    assert outcomes[2] == outcomes[1] == outcomes[0]
    assert (outcomes[0][0] is None) == (held == "theirs")


@pytest.mark.parametrize("listener", ["on_event", "subscriber", "log"])
def test_collected_partitions_are_seen_by_whoever_listens(
    listener: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The event skipped when unseen reaches a ledger handler, a subscriber, an INFO log."""
    from resilient_pipeline import SQLiteStore

    seen: list[Any] = []
    ledger = PartitionLedger(
        SQLiteStore(":memory:"), on_event=seen.append if listener == "on_event" else None
    )
    with contextlib.ExitStack() as stack:
        if listener == "subscriber":
            stack.enter_context(subscribe(seen.append))
        if listener == "log":
            stack.enter_context(caplog.at_level(logging.INFO, logger="resilient_pipeline.ledger"))
        backfill(
            ledger,
            source="ads",
            keys=[1, 2],
            start=D1,
            end=D1,
            fetch=lambda p: [{"n": 1}],
            write=lambda tx, p, rows: None,
            progress=False,
        )
    if listener == "log":
        seen = [
            r.__dict__["partition"]
            for r in caplog.records
            if getattr(r, "event", "") == "PartitionCollected"
        ]
        assert ["ads/1/2026-11-01", "ads/2/2026-11-01"] == sorted(seen)
    else:
        collected = [e for e in seen if isinstance(e, PartitionCollected)]
        assert [("ads/1/2026-11-01", "new"), ("ads/2/2026-11-01", "new")] == sorted(
            (e.partition, e.outcome) for e in collected
        )


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=["Cs"], min_codepoint=1)), max_size=6))
@example(['say "hi"', "a\\b", "{x,y}", " pad ", "NULL", "", "é\t\n"])
def test_a_claims_list_of_keys_reaches_the_database_as_given(
    any_store: Store, values: list[str]
) -> None:
    """Quotes, backslashes, braces, commas, spaces and NULL-like text: each value arrives intact."""
    with unit_of_work(any_store) as tx:
        _, param = one_of("key", values, tx.dialect, tx.placeholder)
        if tx.dialect == "postgres":
            found = tx.fetchall(f"SELECT unnest(CAST({tx.placeholder} AS text[]))", (param,))
        else:
            found = tx.fetchall(f"SELECT value FROM json_each({tx.placeholder})", (param,))
    assert values == [row[0] for row in found]
