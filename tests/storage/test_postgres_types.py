"""PostgreSQL's value rules: the column-at-a-time shortcut agrees with the rules value by value."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline.exceptions import InvalidBatchError
from resilient_pipeline.storage._postgres_types import _NAN, PgColumn, PgValues

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
