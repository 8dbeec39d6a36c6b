"""Sources, keys and periods holding NUL are refused up front, on both backends.

A key with NUL used to be planned on SQLite but never claimed (SQLite's JSON
functions stop at NUL), so ``backfill`` left it pending and reported nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import ConfigurationError, Partition, PartitionLedger, SQLiteStore, backfill
from resilient_pipeline.storage import Store

D1 = dt.date(2026, 11, 1)

BAD: dict[str, dict[str, Any]] = {
    "key": {"source": "meta", "keys": ["ok", "a\x00b"], "periods": [D1]},
    "source": {"source": "me\x00ta", "keys": ["ok"], "periods": [D1]},
    "period": {"source": "meta", "keys": ["ok"], "periods": [D1, "2026-11\x00"]},
}


def run_backfill(ledger: PartitionLedger, args: dict[str, Any]) -> object:
    """``backfill`` over ``args`` with a fetch that records nothing."""
    return backfill(
        ledger, fetch=lambda p: [], write=lambda tx, p, rows: None, progress=False, **args
    )


CALLS: dict[str, Callable[[PartitionLedger, dict[str, Any]], object]] = {
    "plan": lambda ledger, a: ledger.plan(a["source"], a["keys"], periods=a["periods"]),
    "gaps": lambda ledger, a: ledger.gaps(a["source"], a["keys"], periods=a["periods"]),
    "backfill": run_backfill,
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("option", sorted(BAD))
def test_nul_is_refused_naming_the_option_and_nothing_is_planned(
    any_store: Store, option: str, call: str
) -> None:
    """plan, gaps and backfill name the option that holds NUL, and leave the ledger as it was."""
    ledger = PartitionLedger(any_store)
    ledger.plan("meta", ["ok"], periods=[D1])
    with pytest.raises(ConfigurationError) as info:
        CALLS[call](ledger, BAD[option])
    assert option == info.value.option
    assert "NUL" in str(info.value)
    assert [("meta", "ok", D1.isoformat(), "pending")] == [
        (*r.partition.as_tuple(), r.status) for r in ledger.records("meta", D1, D1)
    ]


@given(text=st.text(max_size=6))
def test_a_partition_holds_its_text_or_refuses_it(text: str) -> None:
    """A Partition keeps any text without NUL exactly, and names the field that holds NUL."""
    for field in ("source", "key", "period"):
        parts = {"source": "s", "key": "k", "period": "p", field: text}
        if "\x00" in text or (field == "key" and "\x1f" in text):
            with pytest.raises(ConfigurationError) as info:
                Partition(**parts)
            assert field == info.value.option
        else:
            assert text == getattr(Partition(**parts), field)


def test_every_key_without_nul_is_claimed_on_sqlite() -> None:
    """Keys that are prefixes of each other, or hold other control characters, are all collected."""
    ledger = PartitionLedger(SQLiteStore(":memory:"))
    keys = ["a", "a\x01", "a\x7f", "ab", "é", "x\u2028y"]
    fetched: list[str] = []
    backfill(
        ledger,
        source="meta",
        keys=keys,
        periods=[D1],
        fetch=lambda p: fetched.append(p.key) or [],
        write=lambda tx, p, rows: None,
        progress=False,
    )
    assert sorted(keys) == sorted(fetched)
    assert [] == ledger.gaps("meta", keys, periods=[D1])
