"""The collector with --workers N --engine local|celery|dask: a fleet's passes, one run's truth."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from examples.kpi_collector import fleet
from examples.kpi_collector.cli import main
from examples.kpi_collector.demo import truth_differences
from examples.kpi_collector.fakeapi import FakeAdsAPI, Faults, GroundTruth
from examples.kpi_collector.pipeline import run
from examples.kpi_collector.settings import TOKEN_ENV, Settings
from examples.kpi_collector.suite import open_store
from resilient_pipeline import PartitionLedger, unit_of_work
from resilient_pipeline.engines import WorkResult
from resilient_pipeline.engines import local as local_engine
from resilient_pipeline.exceptions import ConfigurationError

END = dt.date(2026, 12, 1)  # 2026-11-29 .. 2026-12-01: two months
CLIENTS = (1, 2, 3)
FAULTS = ("server_error", "throttle", "drop", "token_expiry", "empty", "partial", "illogical")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAdsAPI]:
    """The fake API with transient faults (illogical units included: quarantined, then
    fetched whole by a recovery pass); no token, database or Redis in this environment."""
    for variable in (*TOKEN_ENV.values(), "KPI_DB", "KPI_REDIS_URL", "KPI_DASK_SCHEDULER"):
        monkeypatch.delenv(variable, raising=False)
    faults = Faults(rate=0.25, seed=8, kinds=FAULTS, retry_after=0)
    with FakeAdsAPI(GroundTruth(seed=8), faults) as running:
        yield running


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[list[WorkResult]]:
    """Every pass's results from local processes, as the collector received them."""
    passes: list[list[WorkResult]] = []
    real = local_engine.run_processes

    def recorded(*args: Any, **kwargs: Any) -> list[WorkResult]:
        results = real(*args, **kwargs)
        passes.append(results)
        return results

    monkeypatch.setattr(local_engine, "run_processes", recorded)
    return passes


def config(api: FakeAdsAPI, db: Path, **changes: Any) -> Settings:
    """Three clients, three days, both platforms; no waiting between retries."""
    base = Settings(
        db=str(db),
        base_url=api.base_url,
        tokens=dict(api.tokens),
        clients=CLIENTS,
        end=END,
        days=3,
        lookback=1,
        concurrency=2,
        retry_delay=0.0,
        fetch_timeout=2.0,
        rate_limit=1000.0,
        adaptive_quota=False,
        wait_for_others=0.0,
        progress=False,
    )
    return attrs.evolve(base, **changes)


def stored_rows(db: Path) -> int:
    """Rows in the two tables the collector inserts into."""
    store = open_store(str(db))
    try:
        with unit_of_work(store) as tx:
            return sum(
                int(tx.fetchall(f"SELECT count(*) FROM {tx.table(name)}")[0][0])
                for name in ("campaign_daily", "daily_kpi_data")
            )
    finally:
        store.close()


def assert_truth(db: Path, api: FakeAdsAPI, settings: Settings) -> None:
    """Every partition succeeded and every table equals the API's truth, value by value."""
    store = open_store(str(db))
    try:
        assert [] == truth_differences(store, api.truth, settings)
        ledger = PartitionLedger(store)
        for platform in settings.platforms:
            records = ledger.records(platform, settings.start, settings.end)
            assert (9, {"succeeded"}) == (len(records), {r.status for r in records})
    finally:
        store.close()


@pytest.mark.slow
def test_three_local_processes_recover_and_store_the_truth(
    api: FakeAdsAPI, tmp_path: Path, dispatched: list[list[WorkResult]]
) -> None:
    """slots=3: each pass runs in three processes; recovery passes mend the faults; exit 0."""
    settings = config(api, tmp_path / "kpi.sqlite3", slots=3, platforms=("google_ads",))
    summary = run(settings)
    assert 0 == summary.exit_code, summary.exit_meaning
    assert_truth(tmp_path / "kpi.sqlite3", api, settings)
    assert all(3 == len({r.worker for r in results}) for results in dispatched)
    main_passes = [p for p in dispatched if p[0].counts["new"] or p[0].counts["unchanged"]]
    collected = [(r.source, k, d) for p in main_passes for r in p for k, d, _ in r.collected]
    assert len(collected) == len(set(collected))  # no partition twice in one pass
    assert 9 == sum(s.collected for s in summary.platforms)
    assert len(dispatched) >= 2  # the main pass, and at least one recovery pass
    # The workers' counts come back: rows inserted are the rows in the tables
    # (a fresh database, no restatement), and the injected faults were retried.
    stats = summary.platforms[0]
    assert stored_rows(tmp_path / "kpi.sqlite3") == stats.rows_inserted
    assert stats.retries > 0
    assert stats.retries == sum(r.counters.get("retries", 0) for p in dispatched for r in p)


@pytest.mark.slow
def test_the_command_line_runs_a_fleet(
    api: FakeAdsAPI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dispatched: list[list[WorkResult]],
) -> None:
    """`backfill --workers 2 --engine local`: two processes per pass, exit 0, the truth."""
    for platform, variable in TOKEN_ENV.items():
        monkeypatch.setenv(variable, api.tokens[platform])
    api.faults = Faults()  # one pass per platform: the recovery passes are proven above
    db = tmp_path / "kpi.sqlite3"
    argv = ["backfill", "--base-url", api.base_url, "--clients", "1-3", "--end", END.isoformat()]
    argv += ["--days", "3", "--db", str(db), "--workers", "2", "--engine", "local"]
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(fleet, "FLEET_TIMEOUT", 60.0)
    code = main([*argv, "--concurrency", "2", "--no-progress"], out=out, err=err)
    assert 0 == code, out.getvalue() + err.getvalue()
    assert_truth(db, api, config(api, db))
    assert all(2 == len({r.worker for r in results}) for results in dispatched)


def test_celery_passes_go_through_the_celery_engine(
    api: FakeAdsAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--engine celery dispatches to the collector's Celery app (eager here: no broker)."""
    from examples.kpi_collector.celery_app import app

    monkeypatch.setenv("KPI_CELERY_BROKER", "memory://")
    monkeypatch.setenv("KPI_CELERY_BACKEND", "cache+memory://")
    for platform, variable in TOKEN_ENV.items():
        monkeypatch.setenv(variable, api.tokens[platform])  # the (eager) workers' environment
    settings = config(api, tmp_path / "kpi.sqlite3", engine="celery", slots=2, tokens={})
    eager = {"task_always_eager": True, "broker_url": "memory://"}
    eager["result_backend"] = "cache+memory://"
    before = {name: app.conf.get(name) for name in eager}
    app.conf.update(eager)
    try:
        summary = run(settings)
    finally:
        app.conf.update(before)
    assert 0 == summary.exit_code, summary.exit_meaning
    assert_truth(tmp_path / "kpi.sqlite3", api, settings)


def test_celery_without_a_broker_is_one_line_naming_it(
    api: FakeAdsAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--engine celery without KPI_CELERY_BROKER: a usage error naming the variable."""
    monkeypatch.delenv("KPI_CELERY_BROKER", raising=False)
    argv = ["collect", "--base-url", api.base_url, "--clients", "1", "--days", "1"]
    argv += ["--db", str(tmp_path / "kpi.sqlite3"), "--engine", "celery", "--workers", "2"]
    err = io.StringIO()
    assert 64 == main(argv, out=io.StringIO(), err=err)
    assert "KPI_CELERY_BROKER is not set" in err.getvalue()


@pytest.mark.slow
def test_dask_passes_run_on_a_local_cluster(
    api: FakeAdsAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--engine dask without a scheduler: a local cluster of two worker processes per pass."""
    for platform, variable in TOKEN_ENV.items():
        monkeypatch.setenv(variable, api.tokens[platform])  # inherited by the cluster's workers
    api.faults = Faults()  # one pass: each starts a local cluster (seconds)
    settings = config(
        api, tmp_path / "kpi.sqlite3", engine="dask", slots=2, platforms=("meta_ads",)
    )
    summary = run(settings)
    assert 0 == summary.exit_code, summary.exit_meaning
    assert_truth(tmp_path / "kpi.sqlite3", api, settings)


@pytest.mark.parametrize(
    ("changes", "option"), [({"engine": "spark"}, "engine"), ({"slots": 0}, "slots")]
)
def test_a_wrong_engine_or_fleet_size_is_named(changes: dict[str, Any], option: str) -> None:
    """engine and slots are checked when the settings are built."""
    with pytest.raises(ConfigurationError) as caught:
        Settings(db=":memory:", **changes)
    assert option == caught.value.option


def test_job_params_never_carry_a_password() -> None:
    """A DSN or Redis URL with a password stays out of the params: the workers' environment."""
    settings = Settings(
        db="postgresql://kpi:s3cret@db/kpi",
        redis_url="redis://:s3cret@cache:6379/0",
        days=2,
        lookback=0,
    )
    params = fleet.job_params(settings, "meta_ads", periods=["2026-11-29"], lookback=1)
    assert "s3cret" not in repr(params)
    assert ("db", "redis_url") == tuple(k for k in ("db", "redis_url") if k not in params)
    assert (["2026-11-29"], 1) == (params["periods"], params["lookback"])
    assert {"KPI_DB", "KPI_REDIS_URL"} <= set(fleet._secrets(settings))
