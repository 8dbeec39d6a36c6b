"""run_processes: a job in N spawned processes of this machine, one ledger run."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from examples.kpi_collector import repository
from examples.kpi_collector.demo import truth_differences
from examples.kpi_collector.fakeapi import FakeAdsAPI, Faults, GroundTruth
from examples.kpi_collector.settings import TOKEN_ENV, Settings
from examples.kpi_collector.suite import open_store
from resilient_pipeline.engines import Job, WorkResult
from resilient_pipeline.engines.local import _example_job, run_processes
from resilient_pipeline.exceptions import ConfigurationError

EXAMPLE = "resilient_pipeline.engines.local:_example_job"
COLLECTOR = "examples.kpi_collector.jobs:collector_job"
START, END = dt.date(2026, 11, 28), dt.date(2026, 12, 1)


def _dies(db: str) -> Job:
    """A job factory whose worker process dies (SIGKILL-like) before the job is built."""
    os._exit(9)


def collected(results: list[WorkResult]) -> list[tuple[str, str]]:
    """Every (key, period) any worker collected, as often as collected."""
    return [(key, period) for r in results for key, period, _ in r.collected]


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(workers=st.integers(1, 3), limit=st.none() | st.integers(1, 3))
def test_workers_share_one_run_and_take_each_partition_once(
    tmp_path_factory: pytest.TempPathFactory, workers: int, limit: int | None
) -> None:
    """N processes, limit= each: min(4, N x limit) partitions, none twice, one run id."""
    db = str(tmp_path_factory.mktemp("local") / "ledger.sqlite3")
    results = run_processes(EXAMPLE, params={"db": db}, workers=workers, limit=limit)
    every = collected(results)
    assert min(4, workers * (limit or 4)) == len(every)
    assert len(every) == len(set(every))
    assert 1 == len({r.run_id for r in results})
    assert workers == len({r.worker for r in results})  # N processes, not N tasks in one
    assert all(limit is None or len(r.collected) <= limit for r in results)
    gaps = _example_job(db).ledger.gaps(
        "example", [1, 2], dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    )
    assert 4 - len(every) == len(gaps)


@pytest.mark.slow
def test_three_collector_processes_store_the_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three collector workers (tokens given through environ only) store the API's truth."""
    for variable in (*TOKEN_ENV.values(), "KPI_REDIS_URL", "KPI_DB"):
        monkeypatch.delenv(variable, raising=False)  # the workers get them from environ=
    faults = Faults(rate=0.2, seed=4, kinds=("server_error", "throttle", "empty"), retry_after=0)
    db = tmp_path / "kpi.sqlite3"
    with FakeAdsAPI(GroundTruth(seed=4), faults) as api:
        environ = {TOKEN_ENV[p]: token for p, token in api.tokens.items()}
        params: dict[str, Any] = {
            "platform": "meta_ads",
            "db": str(db),
            "base_url": api.base_url,
            "clients": "1-3",
            "start": START.isoformat(),
            "end": END.isoformat(),
            "retry_delay": 0.0,
            "rate_limit": 1000.0,
            "concurrency": 2,
        }
        results = run_processes(COLLECTOR, params=params, workers=3, environ=environ)
    every = collected(results)
    assert 12 == len(every) == len(set(every))
    assert all(r.ok for r in results)
    assert 3 == len({r.worker for r in results})
    store = open_store(str(db))
    try:
        repository.aggregate_months(store)
        config = Settings(
            db=str(db), platforms=("meta_ads",), clients=(1, 2, 3), end=END, days=4, lookback=0
        )
        assert [] == truth_differences(store, api.truth, config)
    finally:
        store.close()


def test_the_workers_error_is_raised_here(tmp_path: Path) -> None:
    """A job that cannot be built raises its own error in the caller, option named."""
    params = {"platform": "tiktok", "db": str(tmp_path / "kpi.sqlite3"), "clients": "1"}
    params |= {"base_url": "http://127.0.0.1:9", "start": "2026-11-28", "end": "2026-11-28"}
    with pytest.raises(ConfigurationError) as caught:
        run_processes(COLLECTOR, params=params, workers=2)
    assert "platform" == caught.value.option


def test_a_worker_that_dies_is_reported(tmp_path: Path) -> None:
    """A worker process that dies is a ChildProcessError naming it and its exit code."""
    with pytest.raises(ChildProcessError, match=r"worker 1 of 2 \(pid \d+\) died with exit code 9"):
        run_processes("tests.engines.test_local:_dies", params={"db": "x"}, workers=2)


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"workers": 0}, "workers"),
        ({"workers": True}, "workers"),
        ({"workers": 2, "limit": 0}, "limit"),
        ({"workers": 2, "concurrency": 0}, "concurrency"),
        ({"workers": 2, "run_id": ""}, "run_id"),
        ({"workers": 2, "keys": "1,2"}, "keys"),
        ({"workers": 2, "environ": {"KPI_META_TOKEN": 7}}, "environ"),
        ({"workers": 2, "params": {"db": "postgresql://etl:hunter2@db/kpi"}}, "params"),
    ],
)
def test_a_wrong_option_is_named_before_any_process_starts(
    options: dict[str, Any], option: str
) -> None:
    """Options are checked here, before anything is spawned; a secret is shown masked."""
    with pytest.raises(ConfigurationError) as caught:
        run_processes(EXAMPLE, **options)
    assert option == caught.value.option
    assert "hunter2" not in str(caught.value)


def test_a_malformed_reference_is_named() -> None:
    """A reference without module:factory is refused, naming ref."""
    with pytest.raises(ConfigurationError) as caught:
        run_processes("no-colon", workers=1)
    assert "ref" == caught.value.option
