"""The engines' shared entry point: job references, parameters, results."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import sqlite3
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import ConfigurationError, PartitionLedger, SQLiteStore
from resilient_pipeline.engines import Job, WorkResult, check_params, load_job, run_job
from resilient_pipeline.ledger import Partition

SPEND = {"1": 12.5, "2": 0.0}


def fixed_job(*, db: str, days: int = 2) -> Job:
    """A module-level factory, as engines import it: ``tests.engines.test_job:fixed_job``."""

    def write(tx: Any, p: Partition, rows: list[dict[str, Any]]) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS spend (key TEXT, day TEXT, spend REAL)")
        for row in rows:
            tx.execute("INSERT INTO spend VALUES (?, ?, ?)", (row["key"], row["day"], row["spend"]))

    return Job(
        ledger=PartitionLedger(SQLiteStore(db)),
        source="meta",
        keys=[1, 2],
        start=dt.date(2026, 11, 1),
        end=dt.date(2026, 11, days),
        fetch=lambda p: [{"key": p.key, "day": p.period, "spend": SPEND[p.key]}],
        write=write,
    )


NOT_A_JOB = 42

WRITES: dict[str, int] = {"rows_written": 100, "never_moves": 7}
"""A per-process counter a cached job keeps counting in, across runs."""


def counting_job(*, db: str) -> Job:
    """fixed_job, counting rows written in ``WRITES`` (as a factory that caches its job would)."""
    job = fixed_job(db=db)
    inner = job.write

    def write(tx: Any, p: Partition, rows: list[dict[str, Any]]) -> None:
        inner(tx, p, rows)
        WRITES["rows_written"] += len(rows)

    return attrs.evolve(job, write=write, counters=lambda: WRITES)


def badly_counting_job(*, db: str) -> Job:
    """A job whose counters are not ``{str: int}``."""
    return attrs.evolve(fixed_job(db=db), counters=lambda: {"rows": 1.5})


def test_two_workers_share_the_partitions_and_write_each_once(tmp_path: Any) -> None:
    db = str(tmp_path / "jobs.sqlite3")
    ref = "tests.engines.test_job:fixed_job"
    first = run_job(ref, params={"db": db, "days": 3}, limit=4)
    second = run_job(ref, params={"db": db, "days": 3})
    again = run_job(ref, params={"db": db, "days": 3})
    assert (4, 2, 0) == (first.counts["new"], second.counts["new"], again.counts["new"])
    assert [True, True, True] == [first.ok, second.ok, again.ok]
    assert not {c[:2] for c in first.collected} & {c[:2] for c in second.collected}
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        rows = conn.execute("SELECT key, day, spend FROM spend ORDER BY day, key").fetchall()
    expected = [(key, f"2026-11-0{day}", SPEND[key]) for day in (1, 2, 3) for key in ("1", "2")]
    assert expected == rows


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("no-colon", "package.module:name"),
        (":fixed_job", "package.module:name"),
        ("tests.engines.test_job:", "package.module:name"),
        ("tests.engines.nowhere:fixed_job", "cannot be imported"),
        ("tests.engines.test_job:missing", "cannot be imported"),
        ("tests.engines.test_job:NOT_A_JOB", "not a resilient_pipeline.engines.Job"),
        ("tests.engines.test_job:SPEND", "not a resilient_pipeline.engines.Job"),
    ],
)
def test_a_bad_reference_names_the_job_option(ref: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match="job=") as info:
        load_job(ref)
    assert "job" == info.value.option
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "params",
    [
        {"db": "postgresql://etl:hunter2@db.internal/prod"},
        {"access_token": "hunter2"},
        {"nested": {"url": "https://api.example/v1?api_key=hunter2"}},
        {"headers": ["Authorization: Bearer hunter2"]},
    ],
)
def test_params_carrying_a_secret_are_refused_and_the_error_masks_it(
    params: dict[str, Any],
) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_params(params)
    assert "params" == info.value.option
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value.value)
    assert "environment" in str(info.value)


@pytest.mark.parametrize(
    "params",
    [
        {"day": dt.date(2026, 11, 1)},
        {"keys": (1, 2)},
        {"spend": math.nan},
        {"spend": [math.inf]},
        {1: "one"},
        ["db", "x"],
    ],
    ids=["date", "tuple", "nan", "inf", "int-key", "list"],
)
def test_params_that_are_not_exact_json_are_refused(params: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_params(params)
    assert "params" == info.value.option


def test_params_the_factory_does_not_take_are_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="do not fit") as info:
        load_job("tests.engines.test_job:fixed_job", {"db": ":memory:", "dayz": 3})
    assert "params" == info.value.option


def test_limit_and_keys_belong_to_the_run_not_the_job(tmp_path: Any) -> None:
    job = fixed_job(db=str(tmp_path / "x.sqlite3"))
    bad = Job(**{**_fields(job), "options": {"limit": 3}})
    with pytest.raises(ConfigurationError, match="options"):
        bad.run()


@pytest.mark.parametrize("name", ["concurrency", "run_id", "source", "fetch", "progress"])
def test_an_option_that_has_its_own_place_is_refused_not_dropped(tmp_path: Any, name: str) -> None:
    job = fixed_job(db=str(tmp_path / "x.sqlite3"))
    bad = Job(**{**_fields(job), "options": {name: None}})
    with pytest.raises(ConfigurationError, match=name) as info:
        bad.run()
    assert "options" == info.value.option


def _fields(job: Job) -> dict[str, Any]:
    return {
        name: getattr(job, name)
        for name in ("ledger", "source", "keys", "fetch", "write", "start", "end", "periods")
    }


texts = st.text(max_size=20)
results = st.builds(
    WorkResult,
    run_id=texts,
    source=texts,
    worker=texts,
    counts=st.dictionaries(texts, st.integers(0, 10**9), max_size=4),
    collected=st.lists(st.tuples(texts, texts, texts), max_size=4).map(tuple),
    failed=st.lists(st.tuples(texts, texts, texts, texts), max_size=4).map(tuple),
    errors=st.lists(texts, max_size=3).map(tuple),
    duration=st.floats(0, 1e6),
    counters=st.dictionaries(texts, st.integers(-(10**9), 10**9), max_size=4),
)


@given(results)
def test_a_result_survives_the_json_round_trip_exactly(result: WorkResult) -> None:
    import json

    assert result == WorkResult.from_dict(json.loads(json.dumps(result.to_dict())))


def test_a_result_carries_what_the_jobs_counters_grew_by_in_this_run(tmp_path: Any) -> None:
    """counters: after minus before, so counts from earlier runs in the process are not resent."""
    db = str(tmp_path / "ledger.sqlite3")
    first = run_job("tests.engines.test_job:counting_job", params={"db": db})
    second = run_job(
        "tests.engines.test_job:counting_job",
        params={"db": str(tmp_path / "other.sqlite3")},
        keys=[1],
    )
    assert {"rows_written": 4} == dict(first.counters)  # 2 keys x 2 days, a row each
    assert {"rows_written": 2} == dict(second.counters)  # "never_moves" is left out
    assert 106 == WRITES["rows_written"]


def test_counters_that_are_not_str_to_int_are_named(tmp_path: Any) -> None:
    """A job's counters returning a float is refused, naming the option, before any run."""
    with pytest.raises(ConfigurationError, match="counters") as caught:
        run_job("tests.engines.test_job:badly_counting_job", params={"db": str(tmp_path / "x")})
    assert "1.5" in str(caught.value)
