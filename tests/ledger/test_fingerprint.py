"""The second fingerprint format: the same answers as the first, and stored digests recognised."""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from resilient_pipeline import Partition, PartitionLedger, backfill, unit_of_work
from resilient_pipeline.ledger._fingerprint import V2, digest, fingerprint, previous
from resilient_pipeline.storage import Store

from .test_bookkeeping import make_data, write_rows

D1 = dt.date(2026, 11, 1)

# Every scalar the second format takes, hostile ones included: NaN (left to the first
# format), infinities, -0.0, NUL, lone surrogates, ints beyond 64 bits, long text.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats()
    | st.sampled_from([0.0, -0.0, math.inf, -math.inf, 1.0, 1])
    | st.text()
    | st.sampled_from(["\x00", "\ud800", "a\udfffb", "x" * 5000, "1", "1.0", "true"])
)
names = st.text(max_size=6)


@st.composite
def tables(draw: st.DrawFn, max_rows: int = 8) -> list[dict[str, Any]]:
    """Rows of one key set (the second format's data), keys in each row's own order."""
    keys = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    count = draw(st.integers(min_value=0, max_value=max_rows))
    rows = []
    for _ in range(count):
        order = draw(st.permutations(keys))
        rows.append({key: draw(scalars) for key in order})
    return rows


@st.composite
def variants(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two tables that are often the same rows (reordered), sometimes one value apart."""
    rows = draw(tables())
    other = [dict(draw(st.permutations(list(row.items())))) for row in rows]
    other = list(draw(st.permutations(other)))
    change: bool = draw(st.booleans())
    if other and change:
        row = draw(st.sampled_from(other))
        row[draw(st.sampled_from(sorted(row)))] = draw(scalars)
    return rows, other


def has_nan(rows: list[dict[str, Any]]) -> bool:
    """A NaN anywhere, or a column holding both infinities (whose sum is NaN)."""
    if any(type(v) is float and math.isnan(v) for row in rows for v in row.values()):
        return True
    columns = {key for row in rows for key in row}
    infinite = {math.inf, -math.inf}
    return any(infinite <= {row.get(key) for row in rows} for key in columns)


@given(variants())
@example(([{"a": 1}], [{"a": 1.0}]))
@example(([{"a": 1}], [{"a": True}]))
@example(([{"a": 0.0}], [{"a": -0.0}]))
@example(([{"a": "1"}], [{"a": 1}]))
@example(([{"a": None}], [{"a": "null"}]))
@example(([{"a": 1, "b": 2}, {"a": 2, "b": 1}], [{"a": 1, "b": 1}, {"a": 2, "b": 2}]))
@example(([{"a": "\ud800"}], [{"a": "\udc00"}]))
@example(([{"a": 2**64}], [{"a": 2**64 + 1}]))
def test_the_second_format_tells_rows_apart_as_the_first_does(
    pair: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> None:
    """On its data, two tables have equal v2 digests exactly when their v1 digests are equal."""
    a, b = pair
    assert (fingerprint(a) == fingerprint(b)) == (digest(a) == digest(b))


@given(tables(max_rows=12))
@example([{"a": math.inf, "b": None}, {"a": -math.inf, "b": None}])
@example([{"a": math.inf}, {"a": math.inf}])
def test_the_second_format_applies_to_its_data_and_only_there(rows: list[dict[str, Any]]) -> None:
    """Rows without NaN get ``v2:``; NaN, both infinities in a column, no rows keep the first."""
    if rows and not has_nan(rows) and rows[0]:
        assert digest(rows).startswith(V2)
        assert len(digest(rows)) == len(V2) + 32
    else:
        assert fingerprint(rows) == digest(rows)


@given(tables())
def test_a_stored_first_format_digest_is_recognised(rows: list[dict[str, Any]]) -> None:
    """Stored before the upgrade, the same rows are the same data; others are not."""
    fresh = digest(rows)
    assert fresh == previous(fingerprint(rows), rows, fresh)
    assert fresh == previous(fresh, rows, fresh)
    assert previous(None, rows, fresh) is None
    changed = [*rows, {"another": "row"}]
    assert fingerprint(changed) == previous(fingerprint(changed), rows, fresh)


@given(tables())
def test_the_rows_are_left_as_they_were(rows: list[dict[str, Any]]) -> None:
    """Fingerprinting reads the rows only: no key added, none reordered."""
    before = copy.deepcopy(rows)
    digest(rows)
    assert [list(r.items()) for r in before] == [list(r.items()) for r in rows]


class Text(str):
    """A str subclass: marshal refuses it, so the first format takes it."""


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [{}],
        [{"a": float("nan")}],
        [{"a": 1.0, "b": "x"}, {"a": float("nan"), "b": None}],
        [{"a": math.inf}, {"a": -math.inf}],  # their sum is NaN: the first format, still exact
        [{"a": 1}, {"b": 1}],
        [{"a": 1}, {"a": 1, "b": 2}],
        [{1: "int key"}],
        [{"a": [1, 2]}],
        [{"a": {"b": 1}}],
        [{"a": Decimal("1.5")}],
        [{"a": D1}],
        [{"a": Text("x")}],
        [{"a": b"bytes"}],
        [OrderedDict(a=1)],
        [{"a": 1}, OrderedDict(a=2)],
    ],
    ids=repr,
)
def test_other_data_keeps_the_first_format(rows: list[Any]) -> None:
    """Anything but plain dicts of one key set and non-NaN scalars is fingerprinted as before."""
    assert fingerprint(rows) == digest(rows)
    assert fingerprint(rows) == digest(iter(rows))


def test_mixed_columns_and_large_ints_take_the_second_format() -> None:
    """An int beyond a float's range beside floats in one column does not break the NaN check."""
    rows: list[dict[str, Any]] = [
        {"a": 10**400, "b": None},
        {"a": 1.5, "b": "x"},
        {"a": None, "b": 2.5},
    ]
    assert digest(rows).startswith(V2)
    assert digest(rows) == digest(list(reversed(rows)))


def test_a_ledger_written_before_the_upgrade_reports_unchanged(any_store: Store) -> None:
    """First-format digests in the ledger: a look-back finds the same data unchanged, once."""
    make_data(any_store)
    ledger = PartitionLedger(any_store)
    upstream: dict[str, list[dict[str, Any]]] = {
        "1": [{"n": 1, "spend": 1.5}, {"n": 2, "spend": 2}],
        "2": [{"n": 3, "spend": 3.0}],
    }
    options: dict[str, Any] = {
        "source": "ads",
        "keys": ["1", "2"],
        "start": D1,
        "end": D1,
        "fetch": lambda p: [dict(r) for r in upstream[p.key]],
        "write": write_rows,
        "progress": False,
        "policies": (),
        "lookback": 1,
    }
    assert 2 == backfill(ledger, **options).count("new")
    # What an older version recorded: the first-format digests of the same rows.
    with unit_of_work(any_store) as tx:
        p = tx.placeholder
        for key, rows in upstream.items():
            tx.execute(
                f"UPDATE {tx.table(ledger.table)} SET fingerprint = {p} WHERE key = {p}",
                (fingerprint(rows), key),
            )
    upstream["2"] = [{"n": 3, "spend": 4.0}]
    second = backfill(ledger, **options)
    assert {"1": "unchanged", "2": "restated"} == {p.key: o for p, o in second.collected}
    [restated] = ledger.restatements("ads")
    assert fingerprint([{"n": 3, "spend": 3.0}]) == restated.before_fingerprint
    assert digest(upstream["2"]) == restated.after_fingerprint
    # The success recorded the new digests: the next run compares them directly.
    assert {"1": digest(upstream["1"]), "2": digest(upstream["2"])} == {
        r.key: r.fingerprint for r in ledger.records("ads")
    }
    third = backfill(ledger, **options)
    assert {"1": "unchanged", "2": "unchanged"} == {p.key: o for p, o in third.collected}
    with unit_of_work(any_store) as tx:
        assert (3 + 1,) == tx.fetchone(f"SELECT count(*) FROM {tx.table('data')}")


def test_succeed_recognises_a_first_format_digest(any_store: Store) -> None:
    """``succeed(rows=...)`` compares with a stored first-format digest by the rows too."""
    ledger = PartitionLedger(any_store)
    partition = Partition("ads", 1, D1)
    rows = [{"spend": 1.5}, {"spend": 2.5}]
    with unit_of_work(any_store) as tx:
        assert "new" == ledger.succeed(tx, partition, rows=rows, fingerprint=fingerprint(rows))
    with unit_of_work(any_store) as tx:
        assert "unchanged" == ledger.succeed(tx, partition, rows=list(reversed(rows)))
    with unit_of_work(any_store) as tx:
        assert "restated" == ledger.succeed(tx, partition, rows=[{"spend": 1.5}])
    assert [digest([{"spend": 1.5}])] == [r.fingerprint for r in ledger.records("ads")]
