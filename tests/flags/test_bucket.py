"""Bucketing: stable across calls and processes, monotone in the percentage, close to target."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline.flags import BUCKETS, Flag, Flags, MemorySource, bucket

names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
keys = st.one_of(st.text(max_size=30), st.integers())
percentages = st.floats(min_value=0, max_value=100, allow_nan=False)


def spec_bucket(flag: str, key: object) -> int:
    """The documented formula, written out independently of the library."""
    digest = hashlib.sha256(f"{flag}:{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def flags_at(name: str, percentage: float) -> Flags:
    return Flags([MemorySource([Flag(name=name, percentage=percentage)])])


@given(names, keys)
def test_bucket_is_the_documented_formula(name: str, key: object) -> None:
    """bucket() is sha256("<flag>:<key>")'s first 8 bytes mod 10 000, the same on every call."""
    assert spec_bucket(name, key) == bucket(name, key) == bucket(name, key)
    assert 0 <= bucket(name, key) < BUCKETS


def test_keys_that_are_not_valid_utf8_are_bucketed_not_refused() -> None:
    """A key holding a lone surrogate (from a badly decoded id) still gets a stable bucket."""
    flags = flags_at("beta", 50)
    assert spec_bucket("beta", "id-\ud800") == bucket("beta", "id-\ud800")
    assert (spec_bucket("beta", "id-\ud800") < 5000) == flags.enabled("beta", key="id-\ud800")


@given(names, st.integers())
def test_int_and_str_keys_are_one_client(name: str, key: int) -> None:
    """7 and "7" land in the same bucket and get the same answer."""
    flags = flags_at(name, 50)
    assert bucket(name, key) == bucket(name, str(key))
    assert flags.enabled(name, key=key) == flags.enabled(name, key=str(key))


@given(names, st.lists(keys, max_size=40), percentages, percentages)
def test_raising_the_percentage_never_turns_a_key_off(
    name: str, some_keys: list[object], p1: float, p2: float
) -> None:
    """p1 <= p2 implies on(p1) is a subset of on(p2)."""
    low, high = sorted((p1, p2))
    on_low = {str(k) for k in some_keys if flags_at(name, low).enabled(name, key=k)}
    on_high = {str(k) for k in some_keys if flags_at(name, high).enabled(name, key=k)}
    assert set() == on_low - on_high


@given(names, st.lists(keys, max_size=40), percentages)
def test_a_key_is_on_exactly_when_its_bucket_is_below_the_threshold(
    name: str, some_keys: list[object], percentage: float
) -> None:
    """Flags.enabled agrees with the bucket rule for every key (0 % none, 100 % all)."""
    flags = flags_at(name, percentage)
    for key in some_keys:
        assert (spec_bucket(name, key) < percentage * 100) == flags.enabled(name, key=key)


@pytest.mark.parametrize("percentage", [0.5, 1, 10, 33.3, 50, 90])
def test_share_of_100k_keys_is_within_one_point_of_the_target(percentage: float) -> None:
    """Over 100 000 keys the share that is on is the target percentage +- 1 point."""
    flags = flags_at("new_conversions_endpoint", percentage)
    on = sum(flags.enabled("new_conversions_endpoint", key=f"client-{i}") for i in range(100_000))
    assert abs(on / 1_000 - percentage) <= 1


def test_flags_are_bucketed_independently() -> None:
    """Two flags at 50 % share about a quarter of the keys, not half (salted by name)."""
    a, b = flags_at("flag_a", 50), flags_at("flag_b", 50)
    both = sum(a.enabled("flag_a", key=i) and b.enabled("flag_b", key=i) for i in range(20_000))
    assert abs(both / 20_000 - 0.25) < 0.02


@pytest.mark.slow
def test_buckets_are_the_same_in_another_process() -> None:
    """A fresh interpreter with another hash seed computes the same buckets for 1000 keys."""
    code = (
        "import json, sys\n"
        "from resilient_pipeline.flags import bucket\n"
        "keys = [f'client-{i}' for i in range(1000)]\n"
        "print(json.dumps([bucket('new_conversions_endpoint', k) for k in keys]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    ).stdout
    here = [bucket("new_conversions_endpoint", f"client-{i}") for i in range(1000)]
    assert here == json.loads(out)
