"""Flag definitions: precedence of kill switch, deny, allow, percentage; bad input refused."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.flags import Flag, Flags, MemorySource, bucket

KEYS = ["a", "b", "c", "d", "7"]


@st.composite
def flags_and_key(draw: st.DrawFn) -> tuple[Flag, object]:
    flag = Flag(
        name="beta",
        enabled=draw(st.booleans()),
        percentage=draw(st.sampled_from([0, 0.01, 10, 50, 99.99, 100])),
        allow=draw(st.sets(st.sampled_from(KEYS))),
        deny=draw(st.sets(st.sampled_from(KEYS))),
    )
    return flag, draw(st.sampled_from([*KEYS, 7, None]))


def model(flag: Flag, key: object) -> tuple[bool, str]:
    """Precedence as documented, written out plainly."""
    if not flag.enabled:
        return False, "kill_switch"
    text = None if key is None else str(key)
    if text is not None and text in flag.deny:
        return False, "deny_list"
    if text is not None and text in flag.allow:
        return True, "allow_list"
    if flag.percentage in (0, 100):
        return flag.percentage == 100, "percentage"
    if key is None:
        return False, "no_key"
    return bucket("beta", key) < flag.percentage * 100, "percentage"


@given(flags_and_key())
def test_precedence_kill_switch_deny_allow_percentage(case: tuple[Flag, object]) -> None:
    """Flag.evaluate and Flags.evaluate both follow kill switch > deny > allow > percentage."""
    flag, key = case
    expected = model(flag, key)
    assert expected == flag.evaluate(key)
    event = Flags([MemorySource([flag])]).evaluate("beta", key=key)
    assert expected == (event.enabled, event.reason)


def test_kill_switch_beats_the_allow_list() -> None:
    """enabled=False is off even for an allowed key at 100 %."""
    flags = Flags([MemorySource([Flag(name="beta", percentage=100, enabled=False, allow=["a"])])])
    assert [False, False] == [flags.enabled("beta", key="a"), flags.enabled("beta")]


def test_deny_beats_allow() -> None:
    """A key on both lists is off."""
    flags = Flags([MemorySource([Flag(name="beta", percentage=100, allow=["a"], deny=["a"])])])
    event = flags.evaluate("beta", key="a")
    assert (False, "deny_list") == (event.enabled, event.reason)


@pytest.mark.parametrize("bad", [-0.1, 100.5, math.nan, math.inf, True, "25", None])
def test_bad_percentage_names_the_flag_and_option(bad: object) -> None:
    """A percentage out of range, NaN, a bool or text is refused with the flag's name."""
    with pytest.raises(ConfigurationError, match=r"flag 'beta': percentage=") as info:
        Flag(name="beta", percentage=bad)  # type: ignore[arg-type]
    assert "percentage" == info.value.option


@pytest.mark.parametrize("bad", ["New-Flag", "", "1st", "a" * 64, "has space", 7])
def test_bad_names_are_refused(bad: object) -> None:
    """A flag name is lower-case snake_case of at most 63 characters."""
    with pytest.raises(ConfigurationError, match="snake_case"):
        Flag(name=bad, percentage=10)  # type: ignore[arg-type]


@pytest.mark.parametrize(("option", "bad"), [("allow", "qa"), ("deny", 5), ("enabled", 1)])
def test_bad_lists_and_switch_are_refused(option: str, bad: object) -> None:
    """A lone string is not a list of keys; enabled must be a bool."""
    with pytest.raises(ConfigurationError, match=rf"flag 'beta': {option}=") as info:
        Flag(name="beta", percentage=10, **{option: bad})  # type: ignore[arg-type]
    assert option == info.value.option


def test_keys_in_lists_are_normalised_as_text() -> None:
    """allow=[7] allows the key "7" and the key 7."""
    flag = Flag(name="beta", percentage=0, allow=[7])
    assert frozenset({"7"}) == flag.allow
    assert (True, True) == (flag.evaluate(7)[0], flag.evaluate("7")[0])


def test_to_dict_round_trips_through_memory_source() -> None:
    """A flag written as its dict reads back equal."""
    flag = Flag(name="beta", percentage=12.5, enabled=False, allow=["x"], deny=["y", "z"])
    assert flag == MemorySource({"beta": flag.to_dict()}).load()["beta"]
