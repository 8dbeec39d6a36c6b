"""Short claim lists on SQLite: the ``instr`` search keeps the rows ``json_each`` keeps."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resilient_pipeline import Partition, SQLiteStore, unit_of_work
from resilient_pipeline.ledger import Claimed
from resilient_pipeline.ledger import _claim as claim_module
from resilient_pipeline.ledger._sql import _SHORT, listed, one_of
from resilient_pipeline.testing import FakeClock

from .test_bookkeeping import D1, ROW_STATES, ledger_rows, seeded_ledger

# NUL, the separator itself, empty text, prefixes of one another, long text, non-ASCII.
texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=8) | st.sampled_from(
    ["", "\x00", "\x1f", "a\x1fb", "a", "ab", "b", "1", "10", "x" * 3000, "é", "\x1f\x1f"]
)


def selected(condition: str, param: object, stored: list[str]) -> list[str]:
    """The stored values a condition on ``key`` keeps."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (key TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [(v,) for v in stored])
    rows = db.execute(f"SELECT key FROM t WHERE 1 = 1{condition} ORDER BY rowid", (param,))
    found = [row[0] for row in rows]
    db.close()
    return found


@given(st.lists(texts, max_size=6), st.lists(texts, max_size=8))
@example(["a"], ["a", "ab", "b", "a\x1fb", "\x1fa", "a\x00"])
@example(["a", "b"], ["a\x1fb", "b\x1fa"])
@example(["a\x1fb"], ["a", "b", "a\x1fb"])
@example(["a\x00b"], ["a", "a\x00b", "a\x00"])
@example([""], ["", "\x1f", "a"])
@example([], [""])
@example(["x" * 3000, "y" * 2000], ["x" * 3000, "y" * 2000])
def test_the_short_form_keeps_the_rows_json_each_keeps(
    wanted: list[str], stored: list[str]
) -> None:
    """Whatever the values, both conditions keep exactly the same rows."""
    expected = selected(*one_of("key", wanted, "sqlite", "?"), stored)
    assert expected == selected(*listed("key", wanted, "sqlite", "?"), stored)
    if not any("\x00" in v for v in [*wanted, *stored]):  # json_each itself stops at NUL
        assert sorted(v for v in stored if v in wanted) == sorted(expected)


def test_which_lists_take_the_short_form() -> None:
    """Short lists of plain text search one text; long ones and hostile ones keep json_each."""
    forms: dict[str, Any] = {
        "short": ["1", "2"],
        "empty": [],
        "separator": ["a\x1fb"],
        "nul": ["a\x00"],
        "long": ["k" * 100] * (_SHORT // 100 + 1),
    }
    kinds = {
        name: "instr" if "instr" in listed("key", values, "sqlite", "?")[0] else "json_each"
        for name, values in forms.items()
    }
    assert {
        "short": "instr",
        "empty": "json_each",
        "separator": "json_each",
        "nul": "json_each",
        "long": "json_each",
    } == kinds
    assert one_of("key", ["1"], "postgres", "%s") == listed("key", ["1"], "postgres", "%s")


# States a claim may meet, as in test_bookkeeping, plus a pending row that names an owner
# (this library never leaves one; a row edited by hand may).
STATES = {**ROW_STATES, "pending_held": ("pending", "B", 60.0, "other", None)}


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    states=st.lists(st.sampled_from(sorted(STATES)), max_size=6),
    limit=st.integers(1, 4),
    include_exhausted=st.booleans(),
    recheck=st.booleans(),
    after=st.booleans(),
)
def test_the_one_statement_claim_is_the_find_then_lease_claim(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    states: list[str],
    limit: int,
    include_exhausted: bool,
    recheck: bool,
    after: bool,
) -> None:
    """SQLite's UPDATE ... RETURNING of unheld pending rows: the same claims, rows and counts."""
    store = SQLiteStore(tmp_path / f"{uuid.uuid4().hex}.db")
    clock = FakeClock()
    outcomes = []
    try:
        for returning in (True, False):
            monkeypatch.setattr(claim_module, "SQLITE_RETURNING", returning)
            ledger = seeded_ledger(store, clock, ["ours", *states], table_states=STATES)
            first = Claimed(partition=Partition("ads", 0, D1), fingerprint=None, row_count=None)
            success = ledger._success_of(first, 2, "fp-new", 0.5, "run", 4.0) if after else None
            periods = [D1.isoformat()] if recheck else None
            args = ("ads", "", "\uffff", "run", limit, None, None, include_exhausted, periods)
            with unit_of_work(store) as tx:
                taken = ledger._claim(tx, *args, after=success)
            # The held pending row comes after the unheld ones: compare claims as sets there.
            claims = sorted(taken, key=repr) if "pending_held" in states else taken
            outcomes.append((claims, ledger_rows(store, ledger)))
    finally:
        store.close()
    if "pending_held" not in states or limit > len(states):  # then every claimable row is taken
        assert outcomes[1] == outcomes[0]
