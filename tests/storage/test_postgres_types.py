"""PostgreSQL's value rules: the column-at-a-time shortcut agrees with the rules value by value."""

from __future__ import annotations

import decimal
import enum
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline.exceptions import InvalidBatchError
from resilient_pipeline.storage._postgres_types import _NAN, PgColumn, PgValues, _Refused

FLOAT8 = PgColumn("v", "double precision", "double precision", "float8", -1)
INT4 = PgColumn("v", "integer", "integer", "int4", -1)
TEXT = PgColumn("v", "text", "text", "text", -1)

floats = st.none() | st.floats() | st.sampled_from([math.inf, -math.inf, math.nan, 1e308])


def one_column(column: PgColumn, values: list[Any]) -> Any:
    """The converted values of a one-column batch, or the refused row indexes."""
    convert = PgValues("t", {"v": column})
    try:
        return [v for (v,) in convert(("v",), [(v,) for v in values])]
    except InvalidBatchError as exc:
        return sorted(p.index for p in exc.problems)


@given(st.lists(floats, max_size=8))
def test_every_nan_becomes_the_one_nan_whatever_else_the_column_holds(values: list[Any]) -> None:
    """inf and -inf together (a NaN sum) or 1e308s (an inf sum) do not hide or invent a NaN."""
    out = one_column(FLOAT8, values)
    assert len(values) == len(out)
    for given_value, stored in zip(values, out, strict=True):
        if given_value is not None and math.isnan(given_value):
            assert _NAN is stored
        else:
            assert given_value == stored


def test_a_column_of_infinities_is_kept_as_given() -> None:
    """inf + -inf sums to NaN, yet no value is NaN: nothing to convert."""
    values = [math.inf, -math.inf, None, 1.5]
    assert values == one_column(FLOAT8, values)


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        (INT4, [1, None, 2**31, None, -(2**31) - 1], [2, 4]),
        (INT4, [None, None], [None, None]),
        (TEXT, ["a", None, "b\x00"], [2]),
        (TEXT, [None, "é", None], [None, "é", None]),
    ],
)
def test_nulls_do_not_hide_a_refused_value(
    column: PgColumn, values: list[Any], expected: Any
) -> None:
    """NULLs among the values: the others are still checked (and NULLs kept)."""
    assert expected == one_column(column, values)


def test_an_empty_batch_is_returned_as_is() -> None:
    """No rows: nothing to transpose."""
    rows: list[tuple[Any, ...]] = []
    assert rows is PgValues("t", {"v": INT4})(("v",), rows)


class Level(enum.IntEnum):
    """An int subclass: kept as a plain int."""

    HIGH = 3


COLUMNS = {
    "int2": PgColumn("v", "smallint", "smallint", "int2", -1),
    "int8": PgColumn("v", "bigint", "bigint", "int8", -1),
    "float8": FLOAT8,
    "float4": PgColumn("v", "real", "real", "float4", -1),
    "numeric": PgColumn("v", "numeric(5,2)", "numeric", "numeric", (5 << 16 | 2) + 4),
    "text": TEXT,
    "varchar": PgColumn("v", "character varying(3)", "character varying", "varchar", 3 + 4),
    "bpchar": PgColumn("v", "character(3)", "character", "bpchar", 3 + 4),
    "date": PgColumn("v", "date", "date", "date", -1),
    "timestamp": PgColumn("v", "timestamp without time zone", "timestamp", "timestamp", -1),
    "timestamptz": PgColumn("v", "timestamp with time zone", "timestamptz", "timestamptz", -1),
    "bool": PgColumn("v", "boolean", "boolean", "bool", -1),
}
moments = st.datetimes(timezones=st.none() | st.timezones())
VALUES = {
    "int2": st.integers() | st.integers(-(2**15), 2**15) | st.just(Level.HIGH),
    "int8": st.integers(-(2**64), 2**64) | st.just(Level.HIGH),
    "float8": floats | st.integers(-(2**60), 2**60),
    "float4": floats | st.integers(),
    "numeric": floats | st.decimals() | st.integers(-(10**4), 10**4),
    "text": st.text(st.characters(exclude_categories=())),
    "varchar": st.text(st.characters(exclude_categories=()), max_size=5),
    "bpchar": st.text(" ab", max_size=5),
    "date": st.dates() | st.datetimes(),
    "timestamp": moments,
    "timestamptz": moments,
    "bool": st.booleans(),
}


def rule_by_rule(column: PgColumn, values: list[Any]) -> tuple[list[Any], list[int]]:
    """Every value through the column's rule, no shortcut: the values kept, the rows refused."""
    rule = PgValues("t", {"v": column})._rules.get("v", lambda v: v)
    kept: list[Any] = []
    refused: list[int] = []
    for index, value in enumerate(values):
        try:
            kept.append(None if value is None else rule(value))
        except _Refused:
            refused.append(index)
    return kept, refused


def same(expected: Any, actual: Any) -> bool:
    """Equal, the one NaN object where there was a NaN, and of the same type."""
    if isinstance(expected, float) and math.isnan(expected):
        return expected is actual
    if isinstance(expected, decimal.Decimal) and expected.is_nan():
        return expected is actual
    return type(expected) is type(actual) and expected == actual


@pytest.mark.parametrize("typname", sorted(COLUMNS))
@given(data=st.data())
def test_the_shortcut_given_the_types_keeps_and_refuses_what_the_rules_do(
    data: st.DataObject, typname: str
) -> None:
    """with_kinds (the types from the type check) agrees with every value through its rule."""
    column = COLUMNS[typname]
    values = data.draw(st.lists(st.none() | VALUES[typname], max_size=8))
    # A second column around it: the shortcut reads the right position.
    rows = [(index, value, None) for index, value in enumerate(values)]
    kinds: list[set[type]] = [{int}, set(map(type, values)), {type(None)}]
    convert = PgValues("t", {"i": COLUMNS["int8"], "v": column, "n": TEXT})
    kept, refused = rule_by_rule(column, values)
    if refused:
        with pytest.raises(InvalidBatchError) as raised:
            convert.with_kinds(("i", "v", "n"), rows, kinds)
        assert refused == [p.index for p in raised.value.problems]
        assert {"v"} == {p.column for p in raised.value.problems}
        return
    out = convert.with_kinds(("i", "v", "n"), rows, kinds)
    assert list(range(len(values))) == [row[0] for row in out]
    assert all(same(k, row[1]) for k, row in zip(kept, out, strict=True)), (kept, out)
    assert [None] * len(values) == [row[2] for row in out]
    called = convert(("i", "v", "n"), rows)  # without the types: the same
    assert all(same(a[1], b[1]) for a, b in zip(out, called, strict=True))


def test_packing_puts_the_widest_alignment_first_and_variable_lengths_last() -> None:
    """The staging table's column order: no padding between fixed-size columns, text at the end."""
    columns = [
        PgColumn("name", "text", "text", "text", -1, length=-1, align="i"),
        PgColumn("day", "date", "date", "date", -1, length=4, align="i"),
        PgColumn("flag", "boolean", "boolean", "bool", -1, length=1, align="c"),
        PgColumn("total", "bigint", "bigint", "int8", -1, length=8, align="d"),
        PgColumn("small", "smallint", "smallint", "int2", -1, length=2, align="s"),
    ]
    ordered = sorted(columns, key=lambda c: c.packing)
    assert ["total", "day", "small", "flag", "name"] == [c.name for c in ordered]
