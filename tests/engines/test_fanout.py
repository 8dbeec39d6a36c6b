"""The fan-out every engine shares: its option checks and the keys' shares."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import ConfigurationError
from resilient_pipeline.engines._fanout import FanOut, split

REF = "tests.engines.jobs:numbers_job"


@given(st.lists(st.integers(), max_size=40), st.integers(min_value=1, max_value=12))
def test_split_is_contiguous_and_balanced(keys: list[int], chunks: int) -> None:
    """Chunks are the keys in order, sizes differ by one at most."""
    chunks = min(chunks, max(len(keys), 1))
    runs = split(keys, chunks)
    assert chunks == len(runs)
    assert keys == [k for run in runs for k in run]
    assert max(map(len, runs)) - min(map(len, runs)) <= 1


@given(
    keys=st.lists(st.integers(0, 99), min_size=1, max_size=30),
    chunks=st.integers(1, 12),
)
def test_chunks_cover_every_key_once_as_str(keys: list[int], chunks: int) -> None:
    """``chunks=n``: at most n shares, none empty, each key (as str, once) in exactly one."""
    shares = FanOut.of(REF, keys=keys).shares(chunks=chunks)
    unique = list(dict.fromkeys(str(k) for k in keys))
    assert min(chunks, len(unique)) == len(shares)
    assert unique == [k for share in shares if share for k in share]
    assert all(shares)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, [None]),
        ({"slots": 3}, [None, None, None]),
        ({"default": lambda: 2}, [None, None]),
        ({"slots": 1, "default": lambda: 2}, [None]),
    ],
)
def test_slots_give_every_task_every_key(options: dict[str, Any], expected: list[None]) -> None:
    """``slots=n`` (or the engine's default): n shares of every key."""
    assert expected == FanOut.of(REF).shares(**options)


def test_every_task_gets_the_same_run() -> None:
    """One run id (new unless given), the same params, limit and concurrency for every task."""
    fan = FanOut.of(REF, params={"days": 3}, keys=[1, 2], limit=4, concurrency=2)
    assert 12 == len(fan.run_id)
    assert fan.run_id != FanOut.of(REF).run_id
    assert {
        "params": {"days": 3},
        "keys": ["1"],
        "limit": 4,
        "run_id": fan.run_id,
        "concurrency": 2,
    } == fan.task(["1"])


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"ref": "no-colon"}, "ref"),
        ({"ref": ":factory"}, "ref"),
        ({"ref": 42}, "ref"),
        ({"params": {"token": "EAAB1234567890abcdefghij"}}, "params"),
        ({"keys": "123"}, "keys"),
        ({"keys": b"123"}, "keys"),
        ({"limit": 0}, "limit"),
        ({"limit": True}, "limit"),
        ({"concurrency": 1.5}, "concurrency"),
        ({"run_id": ""}, "run_id"),
        ({"run_id": 7}, "run_id"),
    ],
)
def test_a_wrong_option_is_named(options: dict[str, Any], option: str) -> None:
    """Every option every engine takes is checked here, the error naming it."""
    with pytest.raises(ConfigurationError) as caught:
        FanOut.of(**{"ref": REF, **options})
    assert option == caught.value.option


@pytest.mark.parametrize(
    ("keys", "options", "option"),
    [
        (None, {"slots": 0}, "slots"),
        (None, {"chunks": 0}, "chunks"),
        (["1"], {"slots": 2, "chunks": 2}, "chunks"),
        (None, {"chunks": 2}, "chunks"),
        ([], {"chunks": 2}, "chunks"),
    ],
)
def test_a_wrong_share_is_named(
    keys: list[str] | None, options: dict[str, Any], option: str
) -> None:
    """slots or chunks (not both); chunks needs keys to cut."""
    with pytest.raises(ConfigurationError) as caught:
        FanOut.of(REF, keys=keys).shares(**options)
    assert option == caught.value.option
