"""Look-back and restatements: succeeded partitions collected again, changes written and sized."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from resilient_pipeline import (
    ConfigurationError,
    Partition,
    PartitionLedger,
    backfill,
    unit_of_work,
)
from resilient_pipeline.storage import Store, Transaction

DAYS = [dt.date(2026, 11, d) for d in (24, 25, 26, 27, 28)]
KEYS = ["1", "2"]


def make_table(store: Store) -> None:
    """A spend table keyed by (key, day, campaign)."""
    with unit_of_work(store) as tx:
        tx.execute(
            f"CREATE TABLE {tx.table('spend')} (key TEXT, day TEXT, campaign INTEGER,"
            " spend DOUBLE PRECISION)"
        )


def stored(store: Store) -> dict[tuple[str, str, int], float]:
    """The spend table's rows."""
    with unit_of_work(store) as tx:
        rows = tx.fetchall(f"SELECT key, day, campaign, spend FROM {tx.table('spend')}")
    return {(k, d, c): s for k, d, c, s in rows}


class Upstream:
    """The platform: spend per (key, day, campaign), which it may revise later."""

    def __init__(self) -> None:
        self.spend = {
            (k, d.isoformat(), c): float(10 * int(k) + d.day + c)
            for k in KEYS
            for d in DAYS
            for c in (1, 2)
        }
        self.fetched: list[tuple[str, str]] = []
        self.writes: list[tuple[str, str]] = []

    def fetch(self, partition: Partition) -> list[dict[str, Any]]:
        self.fetched.append((partition.key, partition.period))
        return [
            {"campaign": c, "spend": s}
            for (k, d, c), s in sorted(self.spend.items())
            if (k, d) == (partition.key, partition.period)
        ]

    def write(self, tx: Transaction, partition: Partition, rows: list[dict[str, Any]]) -> None:
        self.writes.append((partition.key, partition.period))
        table, p = tx.table("spend"), tx.placeholder
        tx.execute(
            f"DELETE FROM {table} WHERE key = {p} AND day = {p}", (partition.key, partition.period)
        )
        tx.executemany(
            f"INSERT INTO {table} VALUES ({p}, {p}, {p}, {p})",
            [(partition.key, partition.period, r["campaign"], r["spend"]) for r in rows],
        )


@pytest.mark.parametrize("lookback", [2, dt.timedelta(days=2)], ids=["periods", "timedelta"])
def test_lookback_writes_restated_partitions_value_by_value(
    any_store: Store, lookback: int | dt.timedelta
) -> None:
    """The last 2 days are collected again; revised ones are written, counted and sized."""
    ledger = PartitionLedger(any_store)
    make_table(any_store)
    upstream = Upstream()
    options: dict[str, Any] = {
        "source": "meta_ads",
        "keys": KEYS,
        "start": DAYS[0],
        "end": DAYS[-1],
        "fetch": upstream.fetch,
        "write": upstream.write,
        "measure": "spend",
        "progress": False,
    }
    first = backfill(ledger, **options)
    assert 10 == first.count("new")
    assert upstream.spend == stored(any_store)
    # The platform revises key 1 on the 27th and both campaigns of key 2 on the 28th;
    # the 25th (outside the look-back) too, which this run must not look at.
    revised = {
        ("1", "2026-11-27", 1): 1.1,
        ("2", "2026-11-28", 1): 1.25,
        ("2", "2026-11-28", 2): 0.5,
    }
    before = dict(upstream.spend)
    for cell, factor in revised.items():
        upstream.spend[cell] = round(upstream.spend[cell] * factor, 2)
    upstream.spend[("1", "2026-11-25", 1)] += 100
    upstream.fetched.clear()
    upstream.writes.clear()
    second = backfill(ledger, lookback=lookback, **options)
    window = sorted((k, d.isoformat()) for k in KEYS for d in DAYS[-2:])
    assert window == sorted(upstream.fetched)
    changed = [("1", "2026-11-27"), ("2", "2026-11-28")]
    assert changed == sorted(upstream.writes)
    assert {(p.key, p.period): o for p, o in second.collected} == {
        kd: "restated" if kd in changed else "unchanged" for kd in window
    }
    expected = dict(upstream.spend)
    expected[("1", "2026-11-25", 1)] = before[("1", "2026-11-25", 1)]  # not looked at
    assert expected == stored(any_store)
    # The summary, from the ground truth: the restated partitions' spend before and after.
    old = sum(v for (k, d, _), v in before.items() if (k, d) in changed)
    new = sum(v for (k, d, _), v in upstream.spend.items() if (k, d) in changed)
    summary = second.restatement_summary()
    assert summary is not None
    assert 2 == summary.partitions
    assert pytest.approx(old) == summary.before
    assert pytest.approx(new) == summary.after
    text = f"meta_ads restated 2 partitions, spend {new / old - 1:+.1%}"
    assert text == summary.text()
    [alert] = second.alerts()
    assert ("info", text) == (alert.severity, alert.title)
    recorded = {(r.partition.key, r.partition.period): r for r in ledger.restatements("meta_ads")}
    assert sorted(changed) == sorted(recorded)
    for kd in changed:
        cells = [c for c in before if c[:2] == kd]
        assert pytest.approx(sum(before[c] for c in cells)) == recorded[kd].before_measure
        assert pytest.approx(sum(upstream.spend[c] for c in cells)) == recorded[kd].after_measure
    # Nothing changed since: the same run again writes nothing.
    upstream.writes.clear()
    third = backfill(ledger, lookback=lookback, **options)
    assert ([], 4, 0) == (upstream.writes, third.count("unchanged"), len(third.restated))
    assert [] == third.alerts()
    assert expected == stored(any_store)


def test_without_lookback_succeeded_partitions_are_left_alone(any_store: Store) -> None:
    """A re-run without lookback fetches nothing that already succeeded."""
    ledger = PartitionLedger(any_store)
    make_table(any_store)
    upstream = Upstream()
    options: dict[str, Any] = {
        "source": "meta_ads",
        "keys": KEYS,
        "periods": DAYS,
        "fetch": upstream.fetch,
        "write": upstream.write,
        "progress": False,
    }
    backfill(ledger, **options)
    upstream.fetched.clear()
    report = backfill(ledger, lookback=0, **options)
    assert ([], ()) == (upstream.fetched, report.collected)


@pytest.mark.parametrize(
    ("lookback", "periods"),
    [
        (-1, DAYS),
        (True, DAYS),
        (1.5, DAYS),
        (dt.timedelta(0), DAYS),
        (dt.timedelta(days=1), ["2026-11"]),
    ],
)
def test_bad_lookback(any_store: Store, lookback: object, periods: list[object]) -> None:
    """A lookback that is not a count of periods (or a timedelta over days) names the option."""
    with pytest.raises(ConfigurationError) as info:
        backfill(
            PartitionLedger(any_store),
            source="s",
            keys=["1"],
            periods=periods,
            fetch=lambda p: [],
            write=lambda tx, p, rows: None,
            lookback=lookback,  # type: ignore[arg-type]
            progress=False,
        )
    assert "lookback" == info.value.option
