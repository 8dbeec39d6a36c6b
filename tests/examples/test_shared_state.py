"""Collector processes share their breakers and their quota through the real Redis.

Every worker is a process of its own (``tests/helpers/job_worker.py``) running
``collector_job`` with ``redis_url``; the fake API logs every request, which
is what the assertions count.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from examples.kpi_collector.cli import _settings as settings_of
from examples.kpi_collector.cli import parse_args
from examples.kpi_collector.fakeapi import FakeAdsAPI, Faults, GroundTruth, Served
from examples.kpi_collector.pipeline import run as run_collector
from examples.kpi_collector.settings import TOKEN_ENV, Settings
from examples.kpi_collector.suite import open_store
from resilient_pipeline import PartitionLedger
from resilient_pipeline.breaker import CircuitBreaker, RedisBreakerStore
from resilient_pipeline.exceptions import ConfigurationError

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "helpers" / "job_worker.py"
REF = "examples.kpi_collector.jobs:collector_job"
# Seconds from the limiter's admission to the API's log: the fake API, a thread of the
# test process, takes up to ~0.2 s to log a burst of 25 requests arriving at once.
JITTER = 0.25
START, END = dt.date(2026, 11, 27), dt.date(2026, 11, 30)


class TimedAPI(FakeAdsAPI):
    """The fake API, which also notes when each request arrived (monotonic seconds)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[float, Served]] = []

    def record(self, served: Served) -> None:
        now = time.monotonic()
        super().record(served)
        with self._lock:
            self.arrivals.append((now, served))

    def data(self, client: int | None = None) -> list[tuple[float, Served]]:
        """Data requests (token refreshes aside), of one account or all."""
        return [
            (t, s)
            for t, s in self.arrivals
            if s.endpoint.startswith("meta.")
            and s.endpoint != "meta.oauth"
            and client in (None, s.client)
        ]


@pytest.fixture
def api() -> Iterator[TimedAPI]:
    """A fake API with account meta_ads/2 down (503 to everything)."""
    running = TimedAPI(GroundTruth(seed=9), Faults(down={("meta_ads", 2)}))
    with running:
        yield running


@pytest.fixture(autouse=True)
def _no_worker_left() -> Iterator[None]:
    """A worker a failed test left behind is killed, its pipes closed."""
    yield
    for worker in _started:
        if worker.poll() is None:
            worker.kill()
        worker.wait()
        for pipe in (worker.stdin, worker.stdout):
            if pipe is not None:
                pipe.close()
    _started.clear()


_started: list[subprocess.Popen[str]] = []


def params(api: FakeAdsAPI, db: Path, redis_url: str, prefix: str, **changes: Any) -> str:
    """The job's JSON params: meta_ads, the shared Redis, no waiting between retries."""
    base = {
        "platform": "meta_ads",
        "db": str(db),
        "base_url": api.base_url,
        "clients": "1,2",
        "start": START.isoformat(),
        "end": END.isoformat(),
        "redis_url": redis_url,
        "redis_prefix": prefix,
        "concurrency": 2,
        "retry_delay": 0.0,
        "fetch_timeout": 2.0,
        "rate_limit": 1000.0,
        "breaker_open": 600.0,  # never half-opens during the test
        "lease": 5.0,
    }
    return json.dumps({**base, **changes})


def start(api: FakeAdsAPI, job_params: str) -> subprocess.Popen[str]:
    """A worker process, built and waiting for a line on stdin."""
    env = {k: v for k, v in os.environ.items() if k not in ("KPI_REDIS_URL", "KPI_DB")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for platform, variable in TOKEN_ENV.items():
        env[variable] = api.tokens[platform]
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), REF, job_params, "--wait-for-go"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    _started.append(worker)
    assert worker.stdout is not None
    assert "ready\n" == worker.stdout.readline()
    return worker


def run(workers: Sequence[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """Say go to every worker at once; each one's JSON line."""
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.close()
    outcomes = []
    for worker in workers:
        assert worker.stdout is not None
        out = worker.stdout.read()
        worker.stdout.close()
        assert 0 == worker.wait(timeout=60)
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    return outcomes


def test_an_account_outage_opens_one_breaker_for_every_process(
    api: TimedAPI, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """The first process opens account 2's circuit once; the second never calls account 2."""
    job = params(api, tmp_path / "kpi.sqlite3", redis_url, redis_prefix)
    first, second = start(api, job), start(api, job)
    [one] = run([first])
    asked_by_first = len(api.data(client=2))
    [two] = run([second])

    assert (1, 0) == (one["opened"], two["opened"])
    assert 5 <= asked_by_first <= 5 + 2  # 5 failures in a row, plus those in flight then
    assert asked_by_first == len(api.data(client=2))  # the second asked account 2 nothing
    assert two["rejected"] >= 1
    days = {(START + dt.timedelta(days=n)).isoformat() for n in range(4)}
    assert {("1", d) for d in days} == {(k, p) for k, p, _ in one["result"]["collected"]}
    assert [] == two["result"]["collected"]
    assert {("2", d) for d in days} == {(k, p) for k, p, *_ in two["result"]["failed"]}
    store = open_store(str(tmp_path / "kpi.sqlite3"))
    try:
        records = PartitionLedger(store).records("meta_ads", START, END)
    finally:
        store.close()
    assert {"1": {"succeeded"}, "2": {"failed"}} == {
        key: {r.status for r in records if r.partition.key == key} for key in ("1", "2")
    }


def test_two_processes_keep_to_one_quota_per_token(
    api: TimedAPI, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Two processes at once on one token: in no window do they exceed rate x window + burst."""
    rate = 25.0
    burst = 25  # the limiter's default: one second's worth
    job = params(
        api, tmp_path / "kpi.sqlite3", redis_url, redis_prefix, clients="1,3-6", rate_limit=rate
    )
    outcomes = run([start(api, job), start(api, job)])

    assert all(len(o["result"]["collected"]) >= 1 for o in outcomes)  # both took part
    assert 20 == sum(len(o["result"]["collected"]) for o in outcomes)
    times = sorted(t for t, _ in api.data())
    assert len(times) > 2 * burst  # enough for two private quotas to overshoot one
    assert [] == overshoots(times, rate=rate, burst=burst)


def test_the_quota_check_catches_two_private_quotas(
    api: TimedAPI, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Control: two fleets (two prefixes) on one token overshoot, and the check above says so."""
    db = tmp_path / "kpi.sqlite3"
    jobs = [
        params(api, db, redis_url, f"{redis_prefix}{n}:", clients="1,3-6", rate_limit=25.0)
        for n in (1, 2)
    ]
    run([start(api, job) for job in jobs])
    assert [] != overshoots(sorted(t for t, _ in api.data()), rate=25.0, burst=25)


def overshoots(times: Sequence[float], *, rate: float, burst: int) -> list[str]:
    """Windows of the request log holding more than ``burst + rate x window`` requests.

    A request reaches the API's log a little after the limiter admitted it (a
    new connection, a handler thread): ``JITTER`` seconds are allowed on top.
    """
    found = []
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            window = times[j] - first
            if j - i + 1 > burst + rate * (window + JITTER):
                found.append(f"{j - i + 1} requests in {window:.3f} s")
    return found


def test_the_collector_run_keeps_its_breakers_and_quota_in_redis(
    api: TimedAPI, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """`collect` with a Redis URL: account 2's open circuit and the token's bucket are in Redis."""
    import redis

    config = Settings(
        db=str(tmp_path / "kpi.sqlite3"),
        base_url=api.base_url,
        tokens=dict(api.tokens),
        platforms=("meta_ads",),
        clients=(1, 2),
        end=END,
        days=2,
        lookback=0,
        recovery_rounds=0,
        retry_delay=0.0,
        breaker_open=600.0,
        wait_for_others=0.0,
        progress=False,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
    )
    summary = run_collector(config)
    [stats] = summary.platforms
    assert (2, 2, 1) == (stats.collected, stats.failed, stats.breaker_openings)
    client = redis.Redis.from_url(redis_url)
    try:
        shared = CircuitBreaker(
            name="meta_ads[2]", store=RedisBreakerStore(client, prefix=f"{redis_prefix}breaker:")
        )
        assert "open" == shared.statistics().state
        assert 1 == len(list(client.scan_iter(match=f"{redis_prefix}ratelimit:*")))
    finally:
        client.close()


def test_redis_url_from_the_command_line_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--redis-url, else KPI_REDIS_URL, reaches the settings; a password there is never shown."""
    argv = ["backfill", "--clients", "1", "--base-url", "http://127.0.0.1:9", "--days", "1"]
    monkeypatch.delenv("KPI_REDIS_URL", raising=False)
    assert None is settings_of(parse_args(argv)).redis_url
    monkeypatch.setenv("KPI_REDIS_URL", "redis://:s3cret@cache:6379/0")
    from_env = settings_of(parse_args(argv))
    assert "redis://:s3cret@cache:6379/0" == from_env.redis_url
    assert "s3cret" not in repr(from_env)
    given = settings_of(parse_args([*argv, "--redis-url", "redis://cache:6380/1"]))
    assert "redis://cache:6380/1" == given.redis_url


def test_a_redis_url_that_is_not_one_is_named_not_shown() -> None:
    """A wrong Redis URL names the option and hides the value (it may hold a password)."""
    with pytest.raises(ConfigurationError) as caught:
        Settings(db=":memory:", redis_url="http://:s3cret@cache:6379")
    assert "redis_url" == caught.value.option
    assert "s3cret" not in str(caught.value)
