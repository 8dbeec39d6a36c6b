"""Short claim lists on SQLite: the ``instr`` search keeps the rows ``json_each`` keeps."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from resilient_pipeline import PartitionLedger, SQLiteStore, backfill
from resilient_pipeline.ledger._sql import _SHORT, listed, one_of

D1 = dt.date(2026, 11, 1)

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


def test_the_work_is_counted_only_for_a_progress_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a bar no read of the whole range; with one, the bar counts every partition."""
    store = SQLiteStore(tmp_path / "progress.db")
    counted: list[str] = []
    original = PartitionLedger._statuses

    def spy(self: PartitionLedger, *args: Any) -> Any:
        counted.append(args[0])
        return original(self, *args)

    monkeypatch.setattr(PartitionLedger, "_statuses", spy)
    options: dict[str, Any] = {
        "keys": [1, 2],
        "start": D1,
        "end": D1,
        "fetch": lambda p: [{"n": 1}],
        "write": lambda tx, p, rows: None,
        "policies": (),
    }
    try:
        ledger = PartitionLedger(store)
        assert 2 == backfill(ledger, source="quiet", progress=False, **options).count("new")
        assert [] == counted
        assert 2 == backfill(ledger, source="shown", progress=True, **options).count("new")
        assert ["shown"] == counted
    finally:
        store.close()
