"""Operating the reference collector: LOG_LEVEL and JSON logs, /metrics and /readyz, a flag."""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from examples.kpi_collector.cli import main
from examples.kpi_collector.demo import run_demo
from examples.kpi_collector.fakeapi import FakeAdsAPI, Faults, GroundTruth
from examples.kpi_collector.monitoring import RunMonitor
from examples.kpi_collector.pipeline import run
from examples.kpi_collector.platforms import PLATFORMS, UnexpectedAnswerError
from examples.kpi_collector.platforms.meta import NEW_CONVERSIONS_FLAG, transform_v20
from examples.kpi_collector.settings import Settings
from examples.kpi_collector.summary import RunSummary
from resilient_pipeline import SQLiteStore, unit_of_work
from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.flags import bucket
from resilient_pipeline.ledger import BackfillReport
from resilient_pipeline.storage import Store
from resilient_pipeline.testing import set_testing

END = dt.date(2026, 12, 2)
SEED = 5
FLAG_ENV = "RP_FLAG_NEW_CONVERSIONS_ENDPOINT"
# Every fault but hangs (real seconds): a flaky API, fast.
FAST_FAULTS = ("server_error", "throttle", "drop", "token_expiry", "empty", "partial", "illogical")


def settings(db: str, api: FakeAdsAPI, **changes: Any) -> Settings:
    """A small run against ``api``: no real waiting between retries."""
    base = Settings(
        db=db,
        base_url=api.base_url,
        tokens=dict(api.tokens),
        clients=(1, 2, 3, 4),
        end=END,
        days=3,
        lookback=1,
        concurrency=4,
        retry_delay=0.0,
        fetch_timeout=0.5,
        progress=False,
    )
    return attrs.evolve(base, **changes)


def flaky(rate: float = 0.35) -> Faults:
    return Faults(rate=rate, seed=SEED, kinds=FAST_FAULTS, retry_after=1)


@pytest.fixture
def fast() -> Iterator[None]:
    """Retry, Retry-After and breaker waits are instant."""
    with set_testing():
        yield


@pytest.fixture(autouse=True)
def no_flag_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flag comes only from what each test sets."""
    monkeypatch.delenv(FLAG_ENV, raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)


def run_cli(*argv: str, **hooks: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err, **hooks)
    return code, out.getvalue(), err.getvalue()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value; 0 when the series does not exist (a counter never incremented)."""
    return metrics.get((name, frozenset(labels.items())), 0.0)


def total(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **match: Any
) -> float:
    """The sum of ``name``'s samples whose labels pass ``match`` (values or predicates)."""
    found = 0.0
    for (sample, labels), amount in metrics.items():
        given = dict(labels)
        if sample == name and all(
            (want(given.get(k, "")) if callable(want) else given.get(k) == want)
            for k, want in match.items()
        ):
            found += amount
    return found


def db_spend(store: Store, start: dt.date, end: dt.date) -> dict[str, int]:
    """Spend per platform in ``daily_kpi_data`` for the days, summed by the database."""
    with unit_of_work(store) as tx:
        rows = tx.fetchall(
            f"SELECT platform, SUM(spend_micros) FROM {tx.table('daily_kpi_data')} "
            f"WHERE date >= {tx.placeholder} AND date <= {tx.placeholder} GROUP BY platform",
            [start.isoformat(), end.isoformat()],
        )
    return {platform: int(amount) for platform, amount in rows}


# --------------------------------------------------------------- LOG_LEVEL, JSON logs
def test_log_level_and_json_logs(
    tmp_path: Path, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LOG_LEVEL sets the level, --log-level wins over it, --log-format json: one object a line."""
    truth = GroundTruth(seed=SEED)
    with FakeAdsAPI(truth, flaky()) as api:
        monkeypatch.setenv("KPI_META_TOKEN", api.tokens["meta_ads"])
        common = ["--platform", "meta_ads", "--clients", "1-2", "--days", "2", "--lookback", "1"]
        common += ["--end", END.isoformat(), "--base-url", api.base_url, "--log-format", "json"]

        def collect(db: str, *extra: str) -> list[dict[str, Any]]:
            code, out, err = run_cli("collect", *common, "--db", str(tmp_path / db), *extra)
            assert 0 == code, out + err
            assert api.tokens["meta_ads"] not in out + err
            return [json.loads(line) for line in err.splitlines() if line.strip()]

        monkeypatch.setenv("LOG_LEVEL", "info")
        info = collect("a.sqlite3")
        overridden = collect("b.sqlite3", "--log-level", "ERROR")
        monkeypatch.setenv("LOG_LEVEL", "warning")
        warning = collect("c.sqlite3")
    levels = {line["level"] for line in info}
    assert "INFO" in levels
    assert "DEBUG" not in levels
    for line in info:
        assert {"time", "level", "logger", "message"} <= set(line)
    # the retries of the flaky API are INFO lines with their event and bound context
    retried = [line for line in info if line.get("event") == "RetryScheduled"]
    assert retried
    assert all(line["context"]["source"] == "meta_ads" for line in retried)
    assert [] == [line for line in overridden if line["level"] in ("DEBUG", "INFO", "WARNING")]
    assert [] == [line for line in warning if line["level"] in ("DEBUG", "INFO")]


def test_bad_log_level_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOG_LEVEL that is not a level: exit 64, one line naming LOG_LEVEL."""
    monkeypatch.setenv("LOG_LEVEL", "loud")
    code, out, err = run_cli("aggregate", "--db", ":memory:")
    assert (64, "") == (code, out)
    assert 1 == len(err.strip().splitlines())
    assert "LOG_LEVEL='LOUD'" in err


# --------------------------------------------------------------- /metrics, /readyz, /healthz
COLLECTED = ("new", "unchanged", "restated")


@attrs.define
class Monitored:
    """One run with its monitor: the summary, its passes, what was scraped during and at the end."""

    summary: RunSummary
    passes: list[BackfillReport]
    during: dict[str, Any]
    at_end: dict[str, Any]


def monitored_run(truth: GroundTruth, store: Store) -> Monitored:
    """A run against a flaky API, with a monitor scraped after the first pass and at the end."""
    passes: list[BackfillReport] = []
    during: dict[str, Any] = {}
    at_end: dict[str, Any] = {}
    with FakeAdsAPI(truth, flaky()) as api, RunMonitor(cache_ttl=0) as monitor:
        url = monitor.serve("127.0.0.1", 0)

        def on_pass(kind: str, report: BackfillReport) -> None:
            passes.append(report)
            if not during:  # mid-run: the server answers, the counts are on their way
                scraped = samples(httpx.get(f"{url}/metrics").text)
                during["healthz"] = httpx.get(f"{url}/healthz").json()
                during["report"] = report
                during["collected"] = total(
                    scraped,
                    "resilient_pipeline_partitions_total",
                    source=report.source,
                    outcome=lambda o: o in COLLECTED,
                )

        def scrape(url: str | None) -> None:
            assert url is not None
            at_end["metrics"] = samples(httpx.get(f"{url}/metrics").text)
            ready = httpx.get(f"{url}/readyz")
            at_end["ready"] = (ready.status_code, ready.json())
            at_end["spend"] = db_spend(store, END - dt.timedelta(days=2), END)

        monitor.at_end.append(scrape)
        summary = run(settings(":memory:", api), store=store, monitor=monitor, on_pass=on_pass)
    return Monitored(summary, passes, during, at_end)


def test_metrics_and_health_match_the_run(any_store: Store, fast: None) -> None:
    """/metrics during and at the end of two runs equals what the runs did; /readyz is green."""
    truth = GroundTruth(seed=SEED)
    restated = [("meta_ads", 2, END), ("google_ads", 3, END)]  # in the look-back
    for run_number in range(2):
        if run_number:
            for partition in restated:
                truth.restate(*partition)
        done = monitored_run(truth, any_store)
        summary, passes, during, at_end = done.summary, done.passes, done.during, done.at_end
        assert 0 == summary.exit_code, summary.alerts
        assert {"status": "ok"} == during["healthz"]
        first = during["report"].counts()
        assert during["collected"] >= sum(first[o] for o in COLLECTED) > 0

        metrics = at_end["metrics"]
        stats = {s.platform: s for s in summary.platforms}
        assert sum(s.rows_inserted for s in stats.values()) == total(
            metrics,
            "resilient_pipeline_rows_total",
            source=lambda s: s in ("campaign_daily", "daily_kpi_data"),
            outcome="inserted",
        )
        # restatements change spend only: no campaign is deleted, every update is an upsert's
        assert sum(s.rows_updated for s in stats.values()) == total(
            metrics,
            "resilient_pipeline_rows_total",
            source=lambda s: s in ("campaign_daily", "daily_kpi_data"),
            outcome="updated",
        )
        for platform, s in stats.items():
            by_outcome: dict[str, int] = {}
            for report in passes:
                if report.source == platform:
                    for outcome, count in report.counts().items():
                        by_outcome[outcome] = by_outcome.get(outcome, 0) + count
            for outcome in ("new", "unchanged", "restated", "failed", "exhausted"):
                assert by_outcome[outcome] == value(
                    metrics, "resilient_pipeline_partitions_total", source=platform, outcome=outcome
                ), (platform, outcome)
            assert s.collected == by_outcome["new"]
            assert s.retries == total(
                metrics,
                "resilient_pipeline_retries_total",
                source=lambda src, p=platform: src.startswith(f"{p} "),
            )
            assert 0 == value(metrics, "resilient_pipeline_ledger_gaps", source=platform)
        if run_number:
            assert 2 == sum(s.restated for s in stats.values())
            assert sum(s.rows_updated for s in stats.values()) > 0
        else:
            assert sum(s.retries for s in stats.values()) > 0  # the faults did happen
        spend = at_end["spend"]
        assert set(spend) == {"meta_ads", "google_ads"}
        for platform, micros in spend.items():
            assert micros == value(
                metrics, "resilient_pipeline_spend_collected_micros", platform=platform
            )
            truth_spend = sum(
                truth.daily_kpi(platform, c, END - dt.timedelta(days=n))["spend_micros"]
                for c in (1, 2, 3, 4)
                for n in range(3)
            )
            assert truth_spend == micros
        # no client label anywhere: a series per client would not scale
        assert [] == [k for k in metrics if any(label == "client_id" for label, _ in k[1])]

        status, ready = at_end["ready"]
        assert 200 == status
        checks = ready["checks"]
        assert {
            "checks",
            "database",
            "meta_ads_breakers",
            "meta_ads_fresh",
            "google_ads_breakers",
            "google_ads_fresh",
        } == set(checks)
        assert {"ok"} == {c["status"] for c in checks.values()}, checks
        assert "4 closed" == checks["meta_ads_breakers"]["detail"]  # one per account


def test_readyz_fails_on_an_open_breaker_and_failed_checks(tmp_path: Path, fast: None) -> None:
    """An account that never answers: its breaker named open, the checks failing, 503."""
    truth = GroundTruth(seed=SEED)
    at_end: dict[str, Any] = {}

    def scrape(url: str | None) -> None:
        ready = httpx.get(f"{url}/readyz")
        at_end["ready"] = (ready.status_code, ready.json()["checks"])

    faults = Faults(down={("google_ads", 3)})
    with FakeAdsAPI(truth, faults) as api, RunMonitor(cache_ttl=0) as monitor:
        monitor.serve()
        monitor.at_end.append(scrape)
        summary = run(
            settings(str(tmp_path / "kpi.sqlite3"), api, recovery_rounds=0, breaker_open=60.0),
            monitor=monitor,
        )
    assert 2 == summary.exit_code
    status, checks = at_end["ready"]
    assert 503 == status
    assert "failing" == checks["google_ads_breakers"]["status"]
    assert "google_ads[3]" in checks["google_ads_breakers"]["detail"]
    assert "ok" == checks["meta_ads_breakers"]["status"]
    assert "failing" == checks["checks"]["status"]
    assert "ok" == checks["database"]["status"]


def test_serve_metrics_from_the_command_line(tmp_path: Path, fast: None) -> None:
    """--serve-metrics 0 prints its URL on stderr; the spend gauge equals the database's."""
    db = tmp_path / "kpi.sqlite3"
    scraped: dict[str, Any] = {}

    def scrape(url: str | None) -> None:
        assert url is not None
        scraped["url"] = url
        scraped["healthz"] = httpx.get(f"{url}/healthz").status_code
        scraped["metrics"] = samples(httpx.get(f"{url}/metrics").text)

    argv = ["demo", "--clients", "3", "--days", "2", "--end", END.isoformat(), "--seed", "5"]
    argv += ["--fault-rate", "0", "--db", str(db), "--out", str(tmp_path / "r.html")]
    code, out, err = run_cli(*argv, "--serve-metrics", "0", "--no-progress", at_run_end=scrape)
    assert 0 == code, out + err
    assert f"serving {scraped['url']}/metrics, " in err
    assert scraped["url"].startswith("http://127.0.0.1:")
    assert 200 == scraped["healthz"]
    store = SQLiteStore(db)
    try:
        spend = db_spend(store, END - dt.timedelta(days=1), END)
    finally:
        store.close()
    assert {"meta_ads", "google_ads"} == set(spend)
    for platform, micros in spend.items():
        assert micros == value(
            scraped["metrics"], "resilient_pipeline_spend_collected_micros", platform=platform
        )
    with pytest.raises(httpx.ConnectError):  # stopped with the run
        httpx.get(f"{scraped['url']}/healthz")


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_bad_metrics_port_is_a_usage_error(port: str) -> None:
    """A port that is not one: exit 64 naming --serve-metrics, before anything runs."""
    code, _, err = run_cli("demo", "--serve-metrics", port)
    assert 64 == code
    assert "--serve-metrics" in err
    assert 1 == len(err.strip().splitlines())


def test_metrics_port_in_use_stops_before_anything_runs(tmp_path: Path) -> None:
    """A port another process listens on: exit 64 naming it, no database written."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        db = tmp_path / "kpi.sqlite3"
        code, _, err = run_cli("demo", "--serve-metrics", port, "--db", str(db), "--days", "1")
    assert 64 == code
    assert f"port={port} is invalid: cannot listen" in err
    assert 1 == len(err.strip().splitlines())
    assert not db.exists()


# --------------------------------------------------------------- the feature flag
def conversion_clients(api: FakeAdsAPI, start: int = 0) -> dict[str, set[int]]:
    """The clients that asked each Meta conversions version (from request ``start`` on)."""
    found: dict[str, set[int]] = {"meta.conversions": set(), "meta.conversions_v20": set()}
    for served in api.served[start:]:
        if served.endpoint in found:
            found[served.endpoint].add(served.client)
    return found


CLIENTS = tuple(range(1, 9))


@pytest.mark.parametrize("rollout", ["0%", "25%", "100%"])
def test_rollout_uses_the_new_endpoint_for_exactly_the_flagged_clients(
    rollout: str, tmp_path: Path, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RP_FLAG_NEW_CONVERSIONS_ENDPOINT: the clients its buckets pick ask v20.0; data unchanged."""
    monkeypatch.setenv(FLAG_ENV, rollout)
    percentage = float(rollout.rstrip("%"))
    flagged = {c for c in CLIENTS if bucket(NEW_CONVERSIONS_FLAG, c) < percentage * 100}
    truth = GroundTruth(seed=SEED)
    with FakeAdsAPI(truth, flaky(0.3)) as api:
        local = settings(
            str(tmp_path / "kpi.sqlite3"), api, platforms=("meta_ads",), clients=CLIENTS, days=2
        )
        summary = run_demo(local, api=api)
        asked = conversion_clients(api)
    assert 0 == summary.exit_code, summary.alerts
    assert () == summary.mismatches
    assert flagged == asked["meta.conversions_v20"]
    assert set(CLIENTS) - flagged == asked["meta.conversions"]
    if rollout == "25%":
        assert 0 < len(flagged) < len(CLIENTS)  # a real split
    assert api.injected["partial"] + api.injected["empty"] > 0


def test_rollback_between_runs_with_the_flags_file(
    tmp_path: Path, fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100% in the flags file, then "off": the next run asks v19.0 only; the data stays true."""
    flags_file = tmp_path / "flags.toml"
    flags_file.write_text(f'{NEW_CONVERSIONS_FLAG} = "100%"\n')
    truth = GroundTruth(seed=SEED)
    db = str(tmp_path / "kpi.sqlite3")
    with FakeAdsAPI(truth, flaky(0.3)) as api:
        local = settings(db, api, platforms=("meta_ads",), flags_file=flags_file, lookback=2)
        first = run_demo(local, api=api)
        asked = conversion_clients(api)
        assert (0, ()) == (first.exit_code, first.mismatches)
        assert (set(), set(local.clients)) == (
            asked["meta.conversions"],
            asked["meta.conversions_v20"],
        )

        # Roll back: a new file renamed over the old one, as the runbook says.
        fresh = tmp_path / "flags.toml.new"
        fresh.write_text(f'{NEW_CONVERSIONS_FLAG} = "off"\n')
        fresh.replace(flags_file)
        truth.restate("meta_ads", 2, END)  # the look-back re-collects it through v19.0
        seen = len(api.served)
        second = run_demo(local, api=api)
        asked = conversion_clients(api, seen)
        assert (0, ()) == (second.exit_code, second.mismatches)
        assert (set(local.clients), set()) == (
            asked["meta.conversions"],
            asked["meta.conversions_v20"],
        )
        assert 1 == second.platforms[0].restated

        # An environment variable wins over the file: it pins one worker.
        monkeypatch.setenv(FLAG_ENV, "100%")
        seen = len(api.served)
        third = run_demo(local, api=api)
        assert (0, ()) == (third.exit_code, third.mismatches)
        assert set(local.clients) == conversion_clients(api, seen)["meta.conversions_v20"]


def test_bad_flags_fail_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare number in RP_FLAG_*, or a flags file missing: exit 64 naming it, nothing written."""
    db = tmp_path / "kpi.sqlite3"
    with FakeAdsAPI(GroundTruth(seed=SEED)) as api:
        monkeypatch.setenv("KPI_META_TOKEN", api.tokens["meta_ads"])
        common = ["collect", "--platform", "meta_ads", "--clients", "1", "--days", "1"]
        common += ["--base-url", api.base_url, "--db", str(db)]
        monkeypatch.setenv(FLAG_ENV, "25")
        code, _, err = run_cli(*common)
        assert 64 == code
        assert FLAG_ENV in err
        assert 1 == len(err.strip().splitlines())
        monkeypatch.delenv(FLAG_ENV)
        code, _, err = run_cli(*common, "--flags-file", str(tmp_path / "nowhere.toml"))
        assert 64 == code
        assert "nowhere.toml" in err
        assert 1 == len(err.strip().splitlines())
        assert 0 == sum(api.requests.values())
    assert not db.exists()


def test_v20_answers_that_cannot_be_read() -> None:
    """v20.0 rows that are not objects, or actions not an object: a clear UnexpectedAnswerError."""
    with pytest.raises(UnexpectedAnswerError, match=r"conversions\[1\] is not an object"):
        transform_v20([{"campaign_id": "1", "actions": {}}, "oops"])
    with pytest.raises(UnexpectedAnswerError, match="actions is not an object"):
        transform_v20([{"campaign_id": "1", "actions": [{"action_type": "reservation"}]}])
    # a span of days is passed on as a span: the contract refuses it, naming the field
    (row,) = transform_v20(
        [{"campaign_id": "1", "date_start": "2026-11-27", "date_stop": "2026-11-28", "actions": {}}]
    )
    assert "2026-11-27..2026-11-28" == row["date"]  # type: ignore[index]


def test_fetcher_refuses_what_is_not_flags() -> None:
    """flags= must be a Flags: a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="flags"):
        PLATFORMS["meta_ads"].fetcher(
            base_url="http://127.0.0.1:9",
            token="t",
            flags={"new_conversions_endpoint": "100%"},  # type: ignore[arg-type]
        )
