"""The collector as a fleet's job: two workers share the range and store the API's truth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.kpi_collector import repository
from examples.kpi_collector.demo import truth_differences
from examples.kpi_collector.fakeapi import FakeAdsAPI, Faults, GroundTruth
from examples.kpi_collector.jobs import collector_job
from examples.kpi_collector.platforms import Fetcher
from examples.kpi_collector.settings import TOKEN_ENV, Settings
from examples.kpi_collector.suite import open_store
from resilient_pipeline import PartitionLedger
from resilient_pipeline.engines import load_job, run_job
from resilient_pipeline.exceptions import ConfigurationError

REF = "examples.kpi_collector.jobs:collector_job"
CLIENTS = (1, 2, 3)
START, END = dt.date(2026, 11, 29), dt.date(2026, 12, 2)  # two months
PLATFORMS = ("meta_ads", "google_ads")
# Transient faults that one pass recovers from: each faulted page fails once, then answers.
FAULTS = ("server_error", "throttle", "drop", "token_expiry", "empty", "partial")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAdsAPI]:
    """The fake API with 20% transient faults; its tokens in the workers' environment."""
    monkeypatch.delenv("KPI_REDIS_URL", raising=False)  # each worker keeps its own breakers
    with FakeAdsAPI(
        GroundTruth(seed=5), Faults(rate=0.2, seed=3, kinds=FAULTS, retry_after=0)
    ) as a:
        for platform, variable in TOKEN_ENV.items():
            monkeypatch.setenv(variable, a.tokens[platform])
        yield a


def params(api: FakeAdsAPI, db: Path, platform: str, **changes: Any) -> dict[str, Any]:
    """Test-sized JSON params: no waiting between retries, a short lease."""
    base: dict[str, Any] = {
        "platform": platform,
        "db": str(db),
        "base_url": api.base_url,
        "clients": ",".join(str(c) for c in CLIENTS),
        "start": START.isoformat(),
        "end": END.isoformat(),
        "concurrency": 3,
        "retry_delay": 0.0,
        "fetch_timeout": 2.0,
        "rate_limit": 1000.0,
        "adaptive_quota": False,
        "lease": 5.0,
    }
    return {**base, **changes}


def every_partition(platform: str) -> set[tuple[str, str]]:
    days = [(START + dt.timedelta(days=n)).isoformat() for n in range((END - START).days + 1)]
    return {(str(c), d) for c in CLIENTS for d in days}


def test_two_workers_share_the_range_and_store_the_truth(api: FakeAdsAPI, tmp_path: Path) -> None:
    """Two workers (limit= each) collect every partition once, and the tables equal the truth."""
    db = tmp_path / "fleet.sqlite3"
    share = len(every_partition("meta_ads")) // 2
    for platform in PLATFORMS:
        first = run_job(REF, params=params(api, db, platform), limit=share)
        second = run_job(REF, params=params(api, db, platform), limit=share)
        assert (True, True) == (first.ok, second.ok)
        mine = {(k, p) for k, p, _ in first.collected}
        theirs = {(k, p) for k, p, _ in second.collected}
        assert (share, share) == (len(mine), len(theirs))
        assert set() == mine & theirs
        assert every_partition(platform) == mine | theirs
        assert {"new"} == {outcome for *_, outcome in first.collected + second.collected}
    store = open_store(str(db))
    try:
        repository.aggregate_months(store)  # what `aggregate` does once the fleet is done
        config = Settings(db=str(db), clients=CLIENTS, end=END, days=4, lookback=0)
        assert [] == truth_differences(store, api.truth, config)
        ledger = PartitionLedger(store)
        for platform in PLATFORMS:
            records = ledger.records(platform, START, END)
            assert {"succeeded"} == {r.status for r in records}
            assert every_partition(platform) == {
                (r.partition.key, r.partition.period) for r in records
            }
    finally:
        store.close()
    assert [] == api.errors


def test_a_duplicate_delivery_collects_nothing_again(api: FakeAdsAPI, tmp_path: Path) -> None:
    """The task delivered again once the range is done claims nothing, asks the API nothing."""
    db = tmp_path / "again.sqlite3"
    first = run_job(REF, params=params(api, db, "meta_ads"))
    asked = len(api.served)
    again = run_job(REF, params=params(api, db, "meta_ads"))
    assert len(every_partition("meta_ads")) == len(first.collected)
    assert ((), True, asked) == (again.collected, again.ok, len(api.served))


def test_lookback_collects_the_last_days_again(api: FakeAdsAPI, tmp_path: Path) -> None:
    """lookback=1 re-checks the last day of every client: unchanged, nothing written."""
    db = tmp_path / "lookback.sqlite3"
    run_job(REF, params=params(api, db, "google_ads"))
    again = run_job(REF, params=params(api, db, "google_ads", lookback=1))
    expected = {(str(c), END.isoformat(), "unchanged") for c in CLIENTS}
    assert expected == set(again.collected)


@pytest.mark.parametrize(
    "db", ["postgresql://kpi:s3cret@db.internal/kpi", "host=db.internal password=s3cret dbname=kpi"]
)
def test_a_password_in_the_params_is_refused(db: str) -> None:
    """A password in the params (which brokers store) is refused, and never shown."""
    with pytest.raises(ConfigurationError) as caught:
        collector_job(
            platform="meta_ads",
            base_url="http://127.0.0.1:9",
            clients="1",
            start="2026-11-28",
            end="2026-11-28",
            db=db,
        )
    assert "db" == caught.value.option
    assert "s3cret" not in str(caught.value)
    assert "KPI_DB" in str(caught.value)


def test_the_database_comes_from_kpi_db(
    api: FakeAdsAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without db, the worker's KPI_DB is the database; without either, the error names both."""
    config = params(api, tmp_path / "unused.sqlite3", "meta_ads")
    del config["db"]
    monkeypatch.delenv("KPI_DB", raising=False)
    with pytest.raises(ConfigurationError, match=r"give db .* or set KPI_DB"):
        collector_job(**config)
    monkeypatch.setenv("KPI_DB", str(tmp_path / "env.sqlite3"))
    result = run_job(REF, params=config, limit=2)
    assert 2 == len(result.collected)
    assert (tmp_path / "env.sqlite3").exists()


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"platform": "tiktok"}, "platform"),
        ({"start": "2026-12-03"}, "start"),
        ({"end": "yesterday"}, "end"),
        ({"clients": "a-b"}, "clients"),
        ({"concurrency": 0}, "concurrency"),
        ({"lookback": 5}, "lookback"),
        ({"periods": ["2026-11-29"]}, "periods"),  # and start, end: one or the other
        ({"start": None}, "start"),
    ],
)
def test_a_wrong_param_is_named(
    api: FakeAdsAPI, tmp_path: Path, changes: dict[str, Any], option: str
) -> None:
    """A wrong parameter fails before anything runs, naming the option."""
    with pytest.raises(ConfigurationError) as caught:
        run_job(REF, params={**params(api, tmp_path / "x.sqlite3", "meta_ads"), **changes})
    assert option == caught.value.option


def test_a_missing_token_names_its_variable(
    api: FakeAdsAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token comes from the worker's environment only; a missing one names the variable."""
    monkeypatch.delenv("KPI_GOOGLE_TOKEN")
    with pytest.raises(ConfigurationError) as caught:
        run_job(REF, params=params(api, tmp_path / "x.sqlite3", "google_ads"))
    assert "KPI_GOOGLE_TOKEN" == caught.value.option


def test_one_job_runs_in_one_event_loop_after_another(api: FakeAdsAPI, tmp_path: Path) -> None:
    """A job built once runs twice (each run in an event loop of its own): its fetcher's HTTP
    client is closed after each run and a new one opened in the next loop."""
    job = load_job(REF, params(api, tmp_path / "twice.sqlite3", "meta_ads", lookback=1))
    fetcher = getattr(job.fetch, "__self__", None)
    assert isinstance(fetcher, Fetcher)
    first = job.run(limit=6)
    assert (6, None) == (len(first.collected), fetcher._own_client)
    second = job.run()
    assert (6, None) == (second.count("new"), fetcher._own_client)
    assert {"new", "unchanged"} >= {outcome for _, outcome in second.collected}
    assert [] == job.ledger.gaps("meta_ads", [str(c) for c in CLIENTS], START, END)


def test_periods_collect_exactly_those_days(api: FakeAdsAPI, tmp_path: Path) -> None:
    """periods= (a recovery pass) collects those days of every client, nothing else."""
    config = params(api, tmp_path / "periods.sqlite3", "meta_ads")
    del config["start"], config["end"]
    wanted: list[Any] = ["2026-11-29", "2026-12-02"]
    result = run_job(REF, params={**config, "periods": wanted})
    assert {(str(c), d) for c in CLIENTS for d in wanted} == {
        (k, p) for k, p, _ in result.collected
    }
