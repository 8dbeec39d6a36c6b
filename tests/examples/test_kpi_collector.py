"""The reference KPI collector end to end: a flaky local API, the database against its truth."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from examples.kpi_collector.cli import main
from examples.kpi_collector.demo import run_demo
from examples.kpi_collector.fakeapi import FakeAdsAPI, Faults, GroundTruth
from examples.kpi_collector.settings import Settings
from examples.kpi_collector.suite import prepare
from examples.kpi_collector.summary import RunSummary
from resilient_pipeline import Partition, PartitionLedger, SQLiteStore, unit_of_work
from resilient_pipeline.storage import PostgresStore, Store
from resilient_pipeline.testing import set_testing

ROOT = Path(__file__).resolve().parents[2]
END = dt.date(2026, 12, 2)  # 2026-11-29 .. 2026-12-02: two months
CLIENTS = (1, 2, 3)
DAYS = 4
SEED = 5


def settings(db: Path | str, **changes: Any) -> Settings:
    """A small demo run: 3 clients x 2 platforms x 4 days, no real waiting."""
    base = Settings(
        db=str(db),
        clients=CLIENTS,
        end=END,
        days=DAYS,
        lookback=2,
        concurrency=4,
        retry_delay=0.0,
        fetch_timeout=0.5,
        seed=SEED,
        progress=False,
    )
    return attrs.evolve(base, **changes)


def demo_faults(**changes: Any) -> Faults:
    """Every kind of fault on about a third of the first asks; short hangs."""
    return attrs.evolve(Faults(rate=0.35, seed=SEED, hang=1.5, retry_after=1), **changes)


@pytest.fixture
def fast() -> Iterator[None]:
    """Retry, Retry-After and breaker waits are instant (the server's hangs are real)."""
    with set_testing():
        yield


# --------------------------------------------------------------- the truth, read back
def stored(store: Store) -> dict[str, set[tuple[Any, ...]]]:
    """The three data tables, every row as a tuple of plain values."""
    queries = {
        "campaign_daily": "SELECT platform, client_id, date, campaign_id, campaign_name, "
        "impressions, clicks, spend_micros, calls, emails, reservations FROM {}",
        "daily_kpi_data": "SELECT client_id, date, platform, campaigns, impressions, clicks, "
        "spend_micros, calls, emails, reservations, conversions FROM {}",
        "campaign_summaries": "SELECT platform, client_id, month, campaign_id, days, "
        "impressions, clicks, spend_micros, calls, emails, reservations FROM {}",
    }
    tables: dict[str, set[tuple[Any, ...]]] = {}
    with unit_of_work(store) as tx:
        for table, sql in queries.items():
            rows = tx.fetchall(sql.format(tx.table(table)))
            tables[table] = {
                tuple(str(v) if isinstance(v, dt.date) else v for v in r) for r in rows
            }
    return tables


def expected(truth: GroundTruth, days: list[dt.date]) -> dict[str, set[tuple[Any, ...]]]:
    """The same three tables as the ground truth says they must be."""
    campaign_daily, daily, summaries = set(), set(), set()
    for platform in ("meta_ads", "google_ads"):
        for client in CLIENTS:
            for day in days:
                unit = truth.unit(platform, client, day)
                conv = {r["campaign_id"]: r for r in unit["conversions"]}
                for r in unit["campaigns"]:
                    c = conv.get(r["campaign_id"], {})
                    campaign_daily.add(
                        (
                            *(platform, client, day.isoformat(), r["campaign_id"]),
                            *(r["campaign_name"], r["impressions"], r["clicks"]),
                            *(r["spend_micros"], c.get("calls", 0), c.get("emails", 0)),
                            c.get("reservations", 0),
                        )
                    )
                k = truth.daily_kpi(platform, client, day)
                daily.add(
                    (
                        *(client, day.isoformat(), platform, k["campaigns"], k["impressions"]),
                        *(k["clicks"], k["spend_micros"], k["calls"], k["emails"]),
                        *(k["reservations"], k["conversions"]),
                    )
                )
            for month in sorted({d.isoformat()[:7] for d in days}):
                for campaign, m in truth.monthly(platform, client, month, days).items():
                    summaries.add(
                        (
                            *(platform, client, month, campaign, m["days"], m["impressions"]),
                            *(m["clicks"], m["spend_micros"], m["calls"], m["emails"]),
                            m["reservations"],
                        )
                    )
    return {
        "campaign_daily": campaign_daily,
        "daily_kpi_data": daily,
        "campaign_summaries": summaries,
    }


def the_days() -> list[dt.date]:
    return [END - dt.timedelta(days=n) for n in reversed(range(DAYS))]


def check_truth(store: Store, truth: GroundTruth) -> None:
    """Every table equals the ground truth, row by row and value by value."""
    got, want = stored(store), expected(truth, the_days())
    for table in want:
        assert want[table] == got[table], table


def totals(summary: RunSummary, field: str) -> int:
    return sum(getattr(p, field) for p in summary.platforms)


# --------------------------------------------------------------- the demo
def demo_story(store: Store, tmp_path: Path) -> None:
    """Faults of every kind, recovered; the data equals the truth; a re-run changes nothing."""
    truth = GroundTruth(seed=SEED)
    faults = demo_faults()
    config = settings(":memory:", report=tmp_path / "report.html")
    with FakeAdsAPI(truth, faults) as api:
        first = run_demo(config, api=api, store=store)
        injected = dict(api.injected)
    assert 0 == first.exit_code, first.checks.summary() if first.checks else first
    # the API did misbehave, in many ways, and the run saw it
    assert len([k for k, n in injected.items() if n]) >= 5, injected
    assert totals(first, "retries") > 0
    assert len(CLIENTS) * DAYS * 2 == totals(first, "collected")
    assert 0 == totals(first, "failed")
    assert first.checks is not None
    assert first.checks.passed
    check_truth(store, truth)
    assert first.report_path is not None
    assert Path(first.report_path).is_file()

    with FakeAdsAPI(truth, demo_faults(rate=0.0)) as api:
        second = run_demo(config, api=api, store=store)
    assert 0 == second.exit_code
    assert (0, 0, 0) == (
        totals(second, "collected"),
        totals(second, "restated"),
        totals(second, "failed"),
    )
    assert len(CLIENTS) * 2 * 2 == totals(second, "unchanged")  # the 2-day look-back
    assert (0, 0) == (totals(second, "rows_inserted"), totals(second, "rows_updated"))
    check_truth(store, truth)


def test_demo_on_sqlite(tmp_path: Path, fast: None) -> None:
    """The demo story on a SQLite file."""
    store = SQLiteStore(tmp_path / "kpi.sqlite3")
    try:
        demo_story(store, tmp_path)
    finally:
        store.close()


def test_demo_on_postgres(
    postgres_dsn: str, postgres_schema: str, tmp_path: Path, fast: None
) -> None:
    """The demo story on PostgreSQL."""
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    try:
        demo_story(store, tmp_path)
    finally:
        store.close()


def test_restatements_are_collected_by_the_lookback(tmp_path: Path, fast: None) -> None:
    """A day the platform restates inside the look-back is rewritten and reported."""
    truth = GroundTruth(seed=SEED)
    store = SQLiteStore(tmp_path / "kpi.sqlite3")
    try:
        with FakeAdsAPI(truth, Faults()) as api:
            assert 0 == run_demo(settings(":memory:"), api=api, store=store).exit_code
            truth.restate("meta_ads", 2, END)
            truth.restate("google_ads", 3, END - dt.timedelta(days=1))
            again = run_demo(settings(":memory:"), api=api, store=store)
        assert 0 == again.exit_code
        assert 2 == totals(again, "restated")
        assert any("restated" in a.title for a in again.alerts)
        check_truth(store, truth)
    finally:
        store.close()


def test_a_platform_that_stays_down_is_never_green(tmp_path: Path, fast: None) -> None:
    """An account down for the whole run: exit 2, its days reported missing, alerts sent."""
    truth = GroundTruth(seed=SEED)
    faults = Faults(down={("google_ads", 2)})
    store = SQLiteStore(tmp_path / "kpi.sqlite3")
    try:
        with FakeAdsAPI(truth, faults) as api:
            summary = run_demo(settings(":memory:"), api=api, store=store)
    finally:
        store.close()
    assert 2 == summary.exit_code
    google = {p.platform: p for p in summary.platforms}["google_ads"]
    assert DAYS == google.failed
    assert summary.checks is not None
    failed = {r.name for r in summary.checks.failed}
    assert {"google_ads_complete", "google_ads_daily_rows", "matches_ground_truth"} <= failed
    assert any(a.severity == "error" for a in summary.alerts)


def test_a_wrong_value_in_the_database_fails_the_run(tmp_path: Path, fast: None) -> None:
    """The demo's self-check compares every value: one changed cell is exit 2."""
    truth = GroundTruth(seed=SEED)
    store = SQLiteStore(tmp_path / "kpi.sqlite3")
    try:
        with FakeAdsAPI(truth, Faults()) as api:
            assert 0 == run_demo(settings(":memory:", lookback=0), api=api, store=store).exit_code
            with unit_of_work(store) as tx:
                tx.execute(
                    f"UPDATE {tx.table('campaign_daily')} SET clicks = clicks + 1 "
                    "WHERE client_id = 1 AND date = ? AND platform = 'meta_ads'",
                    (END.isoformat(),),
                )
            summary = run_demo(settings(":memory:", lookback=0), api=api, store=store)
    finally:
        store.close()
    assert 2 == summary.exit_code
    assert summary.mismatches
    assert all("meta_ads/1/" + END.isoformat() in m for m in summary.mismatches)


# --------------------------------------------------------------- the command line
def run_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    try:
        if env is not None:
            os.environ.update(env)
        code = main(list(argv), out=out, err=err)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return code, out.getvalue(), err.getvalue()


def test_demo_subprocess_from_another_directory(tmp_path: Path) -> None:
    """``python -m examples.kpi_collector demo`` runs anywhere; summary, then the report path."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("LOG_LEVEL", "PYTHONPATH")}
    importable = subprocess.run(
        [sys.executable, "-c", "import examples.kpi_collector"], cwd=elsewhere, env=env, check=False
    )
    if importable.returncode != 0:  # a venv installed before dev-mode-dirs: reinstall fixes it
        env["PYTHONPATH"] = str(ROOT)
    command = ["demo", "--clients", "2", "--days", "2", "--end", END.isoformat()]
    command += ["--concurrency", "4"]
    done = subprocess.run(
        [sys.executable, "-m", "examples.kpi_collector", *command],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    lines = done.stdout.strip().splitlines()
    report = elsewhere / "kpi-report.html"
    assert f"report: {report}" == lines[-1]
    assert report.is_file()
    assert (elsewhere / "kpi-demo.sqlite3").is_file()
    assert any(line.startswith("exit code 0:") for line in lines)
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["demo", "--days", "0"], "--days"),
        (["demo", "--days", "-3"], "--days"),
        (["demo", "--platform", "tiktok_ads"], "tiktok_ads"),
        (["demo", "--lookback", "-1"], "--lookback"),
        (["collect", "--clients", "1-3", "--base-url", "ftp://x"], "base_url"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], needle: str) -> None:
    """A wrong option: exit 64, one line on stderr naming it, no traceback."""
    code, out, err = run_cli(*argv, env={"KPI_META_TOKEN": "t", "KPI_GOOGLE_TOKEN": "t"})
    assert 64 == code
    assert 1 == len(err.strip().splitlines()), err
    assert needle in err
    assert "Traceback" not in err + out


def test_unreachable_api_is_one_line(tmp_path: Path) -> None:
    """Nothing listening at --base-url: exit 3 (nothing could run), one line, the URL named."""
    code, out, err = run_cli(
        "collect",
        "--clients",
        "1-2",
        "--base-url",
        "http://127.0.0.1:9",
        "--db",
        str(tmp_path / "kpi.sqlite3"),
        env={"KPI_META_TOKEN": "m-secret-1", "KPI_GOOGLE_TOKEN": "g-secret-2"},
    )
    assert 3 == code
    assert 1 == len(err.strip().splitlines()), err
    assert "cannot reach the API at http://127.0.0.1:9" in err
    assert "secret" not in err + out


def test_invalid_dsn_never_shows_its_password(tmp_path: Path) -> None:
    """A DSN libpq cannot parse: one line, non-zero, the password masked."""
    with FakeAdsAPI(GroundTruth(seed=SEED)) as api:
        code, out, err = run_cli(
            "collect",
            "--clients",
            "1",
            "--days",
            "1",
            "--base-url",
            api.base_url,
            "--db",
            "postgresql://etl:hunter2@db.internal:notaport/kpi",
            env={"KPI_META_TOKEN": "m", "KPI_GOOGLE_TOKEN": "g"},
        )
    assert code != 0
    assert 1 == len(err.strip().splitlines()), err
    assert "hunter2" not in err + out
    assert "Traceback" not in err


def test_missing_token_names_the_variable(tmp_path: Path) -> None:
    """No KPI_GOOGLE_TOKEN: a clear error before anything runs, never a default token."""
    env = {"KPI_META_TOKEN": "m"}
    saved = os.environ.pop("KPI_GOOGLE_TOKEN", None)
    try:
        code, _, err = run_cli(
            "collect",
            "--clients",
            "1",
            "--base-url",
            "http://127.0.0.1:9",
            "--db",
            str(tmp_path / "kpi.sqlite3"),
            env=env,
        )
    finally:
        if saved is not None:
            os.environ["KPI_GOOGLE_TOKEN"] = saved
    assert 64 == code
    assert "KPI_GOOGLE_TOKEN is not set" in err
    assert not (tmp_path / "kpi.sqlite3").exists()  # nothing ran


def test_collect_check_aggregate_report_commands(tmp_path: Path, fast: None) -> None:
    """The commands for real use, against the API: exit 0, data equals the truth, no token shown."""
    truth = GroundTruth(seed=SEED)
    db = str(tmp_path / "kpi.sqlite3")
    with FakeAdsAPI(truth, demo_faults()) as api:
        env = {
            "KPI_META_TOKEN": api.tokens["meta_ads"],
            "KPI_GOOGLE_TOKEN": api.tokens["google_ads"],
        }
        common = ["--clients", "1-3", "--db", db, "--days", str(DAYS), "--end", END.isoformat()]
        code, out, err = run_cli(
            "collect",
            "--base-url",
            api.base_url,
            "--lookback",
            "2",
            *common,
            "--log-level",
            "DEBUG",
            "--log-format",
            "json",
            env=env,
        )
    assert 0 == code, out + err
    assert "exit code 0:" in out.splitlines()[-1]
    secrets = [*api.tokens.values(), *env.values()]
    assert [] == [s for s in secrets if s in out + err]
    assert all(line.startswith("{") for line in err.splitlines() if line.strip()), err[:500]
    store = SQLiteStore(db)
    try:
        check_truth(store, truth)
    finally:
        store.close()

    assert (0, "") == run_cli("check", *common)[::2]
    code, out, _ = run_cli("aggregate", "--db", db)
    assert (0, "aggregated months: none; 0 inserted, 0 updated, 0 deleted, 0 unchanged\n") == (
        code,
        out,
    )
    report = tmp_path / "out" / "report.html"
    code, out, _ = run_cli("report", "--db", db, "--out", str(report))
    assert (0, f"report: {report}\n") == (code, out)
    assert 'data-platform="google_ads"' in report.read_text()


def test_check_command_fails_on_a_missing_day(tmp_path: Path, fast: None) -> None:
    """``check`` over a range the database does not fully hold: exit 2, the gap named."""
    truth = GroundTruth(seed=SEED)
    store = SQLiteStore(tmp_path / "kpi.sqlite3")
    try:
        with FakeAdsAPI(truth) as api:
            assert 0 == run_demo(settings(":memory:"), api=api, store=store).exit_code
    finally:
        store.close()
    later = (END + dt.timedelta(days=1)).isoformat()
    code, out, _ = run_cli(
        "check",
        "--clients",
        "1-3",
        "--db",
        str(tmp_path / "kpi.sqlite3"),
        "--days",
        "2",
        "--end",
        later,
    )
    assert 2 == code
    assert f"1/{later}" in out


def test_a_killed_workers_partition_is_taken_over(tmp_path: Path) -> None:
    """A partition a dead worker still leases: the run waits for its lease, then collects it."""
    truth = GroundTruth(seed=SEED)
    store = SQLiteStore(tmp_path / "kpi.sqlite3")
    try:
        prepare(store, ["meta_ads", "google_ads"])
        dead = PartitionLedger(store, lease=3.0)
        dead.plan("meta_ads", ["2"], END, END)
        assert Partition("meta_ads", "2", END.isoformat()) == dead.claim(
            "meta_ads", END, END, run_id="killed"
        )
        with FakeAdsAPI(truth) as api:
            summary = run_demo(settings(":memory:", lease=3.0), api=api, store=store)
        assert 0 == summary.exit_code, summary.checks.summary() if summary.checks else summary
        records = PartitionLedger(store).records("meta_ads", END, END)
        [record] = [r for r in records if r.partition.key == "2"]
        assert ("succeeded", 1) == (record.status, record.crashes)
        check_truth(store, truth)
    finally:
        store.close()


def test_editable_install_puts_the_repository_root_on_the_path() -> None:
    """pip install -e makes ``examples`` importable from any directory (hatch dev-mode-dirs)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[tool.hatch.build.targets.wheel]", 1)[1].split("\n[", 1)[0]
    [line] = [x for x in section.splitlines() if x.startswith("dev-mode-dirs")]
    assert {'"."', '"src"'} <= {d.strip() for d in line.split("[", 1)[1].rstrip("]").split(",")}
