"""The option-check vocabulary: each check accepts exactly what its requirement says."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline._core import (
    callable_or_none,
    exception_types,
    in_,
    integer,
    non_empty_str,
    number,
)
from resilient_pipeline.exceptions import ConfigurationError

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.just(print),
    st.tuples(st.integers()),
)


def oracle_number(value: object, *, ge: float, finite: bool, optional: bool) -> bool:
    """What ``number(ge=..., finite=..., optional=...)`` must accept, written out plainly."""
    if value is None:
        return optional
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and (math.isnan(value) or (finite and math.isinf(value))):
        return False
    return value >= ge


@given(ANYTHING, st.booleans(), st.booleans())
def test_number_accepts_exactly_the_numbers_in_range(
    value: object, finite: bool, optional: bool
) -> None:
    """Bools, NaN, non-numbers and out-of-range values fail; huge ints are compared exactly."""
    check = number(ge=0, finite=finite, optional=optional)
    expected = oracle_number(value, ge=0, finite=finite, optional=optional)
    if expected:
        assert value is check.check("delay", value)
    else:
        with pytest.raises(ConfigurationError) as info:
            check.check("delay", value)
        assert ("delay", value) == (info.value.option, info.value.value)


@given(ANYTHING)
def test_integer_refuses_floats_and_bools(value: object) -> None:
    """integer(ge=1) takes ints >= 1 only, never 1.0 or True."""
    accepted = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    assert accepted == integer(ge=1).accepts(value)


def test_bounds_are_exclusive_or_inclusive_as_named() -> None:
    """gt excludes its bound, ge and le include theirs."""
    assert [False, True] == [number(gt=0).accepts(v) for v in (0, 1e-300)]
    assert [True, True, False] == [number(ge=0, le=1).accepts(v) for v in (0, 1, 1.0000001)]


def test_requirements_read_the_same_everywhere() -> None:
    """The error text is built from the check, so one wording serves every option."""
    with pytest.raises(
        ConfigurationError, match=r"^max_attempts=0 is invalid: must be an int >= 1$"
    ):
        integer(ge=1).check("max_attempts", 0)
    assert "<option check: must be a finite number > 0 or None>" == repr(
        number(gt=0, finite=True, optional=True)
    )
    assert "<option check: must be 'wait' or 'reject'>" == repr(in_("wait", "reject"))


def test_in_compares_type_as_well_as_value() -> None:
    """in_(None, 'full') refuses 0 and False, which == would let through for some choices."""
    check = in_(1, "full", None)
    assert [True, False, False, True] == [check.accepts(v) for v in (1, True, 1.0, None)]


@pytest.mark.parametrize(
    ("blank", "value", "accepted"),
    [(True, " ", True), (False, " ", False), (True, "", False), (False, "a", True)],
)
def test_non_empty_str_blank_option(blank: bool, value: str, accepted: bool) -> None:
    """blank=False also refuses white space only."""
    assert accepted == non_empty_str(blank=blank).accepts(value)


def test_exception_types_returns_a_tuple_and_refuses_base_exceptions() -> None:
    """A single type becomes a tuple; KeyboardInterrupt (BaseException only) is refused."""
    assert (ValueError,) == exception_types().types("on", ValueError)
    assert () == exception_types().types("on", ())
    with pytest.raises(ConfigurationError, match="never caught"):
        exception_types().types("on", (ValueError, KeyboardInterrupt))


def test_checks_are_attrs_validators_naming_the_public_option() -> None:
    """As a validator the option is the attribute's alias: ``_limit`` is reported as ``limit``."""

    @attrs.define
    class Limited:
        _limit: int = attrs.field(validator=integer(ge=1))
        hook: object = attrs.field(default=None, validator=callable_or_none())

    with pytest.raises(ConfigurationError) as info:
        Limited(limit=0)
    assert "limit" == info.value.option
    with pytest.raises(ConfigurationError, match="must be callable or None"):
        Limited(limit=1, hook=3)
