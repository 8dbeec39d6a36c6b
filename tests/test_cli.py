"""The command-line runner and monitor(): exit codes a scheduler can act on, and alerts."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from resilient_pipeline import Alerter, CheckSuite, checks, monitor
from resilient_pipeline._cli import main
from resilient_pipeline.checks import CheckExitCode, amonitor
from resilient_pipeline.exceptions import AlertDeliveryError
from resilient_pipeline.testing import MemoryNotifier

SUITES = """
from resilient_pipeline import Check, CheckSuite, checks

rows = [{"client_id": 1, "clicks": 5, "impressions": 9, "spend": 3.0, "conversions": 0}]

def passing():
    return CheckSuite(checks=[checks.clicks_exceed_impressions()], datasets={"rows": rows})

warning = CheckSuite(checks=[checks.spend_without_conversions()], datasets={"rows": rows})
error = CheckSuite(checks=[checks.completeness(expected=[1, 2])], datasets={"rows": rows})
broken = CheckSuite(checks=[Check.rows("crash", lambda rows: 1 / 0)], datasets={"rows": rows})
day = CheckSuite(checks=[Check.rows("day", lambda rows: [])])

def explode():
    raise RuntimeError("cannot connect")
"""


@pytest.fixture
def suites(tmp_path: Path) -> Path:
    """A file of suites, one per outcome."""
    path = tmp_path / "suites.py"
    path.write_text(SUITES)
    return path


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("passing", CheckExitCode.PASSED),
        ("warning", CheckExitCode.WARNINGS),
        ("error", CheckExitCode.ERRORS),
        ("broken", CheckExitCode.NOT_RUN),
        ("explode", CheckExitCode.NOT_RUN),
        ("no_such_suite", CheckExitCode.NOT_RUN),
    ],
)
def test_exit_codes(suites: Path, target: str, code: CheckExitCode) -> None:
    """Each outcome has its own exit code; nothing that failed exits 0."""
    assert code == main(["check", f"{suites}:{target}"], out=io.StringIO())


def test_json_output(suites: Path) -> None:
    """--format json prints the report with the offending keys."""
    out = io.StringIO()
    main(["check", f"{suites}:error", "--format", "json", "-p", "day=2026-11-28"], out=out)
    report = json.loads(out.getvalue())
    assert {"day": "2026-11-28"} == report["params"]
    assert [{"client_id": 2}] == report["results"][0]["offending"]


def test_bad_param_is_a_usage_error(suites: Path) -> None:
    """A --param without '=' exits 64, never 0."""
    assert CheckExitCode.USAGE == main(["check", f"{suites}:day", "-p", "oops"], out=io.StringIO())


def test_module_entry_point_exits_with_the_code(suites: Path) -> None:
    """``python -m resilient_pipeline check`` exits 2 for a failed error-level check."""
    proc = subprocess.run(
        [sys.executable, "-m", "resilient_pipeline", "check", f"{suites}:error"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 2 == proc.returncode
    assert "missing 2" in proc.stdout
    usage = subprocess.run(
        [sys.executable, "-m", "resilient_pipeline", "nonsense"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert 64 == usage.returncode


ROWS = [{"client_id": 1, "clicks": 9, "impressions": 3}]


def test_monitor_alerts_once_per_failure_and_period() -> None:
    """Two runs for the same day alert once; a new day alerts again."""
    pager = MemoryNotifier()
    alerter = Alerter([pager])
    suite = CheckSuite(
        checks=[checks.clicks_exceed_impressions(), checks.completeness(expected=[1])],
        name="daily",
    )
    for day in ("2026-11-28", "2026-11-28", "2026-11-29"):
        report = monitor(suite, params={"day": day}, alerter=alerter, datasets={"rows": ROWS})
        assert CheckExitCode.ERRORS == report.exit_code
    assert [
        "daily/clicks_exceed_impressions/day=2026-11-28",
        "daily/clicks_exceed_impressions/day=2026-11-29",
    ] == [a.key for a in pager.alerts]


def test_monitor_success_notice_and_failed_delivery() -> None:
    """notify_success sends an info alert; a delivery failure is raised, not swallowed."""
    pager = MemoryNotifier()
    monitor(
        [checks.completeness(expected=[1])],
        alerter=pager,
        datasets={"rows": ROWS},
        notify_success=True,
    )
    assert ["info"] == [a.severity for a in pager.alerts]
    pager.fail_next(1)
    with pytest.raises(AlertDeliveryError):
        monitor([checks.clicks_exceed_impressions()], alerter=pager, datasets={"rows": ROWS})


@pytest.mark.anyio
async def test_amonitor() -> None:
    """amonitor runs under asyncio and trio and alerts."""
    pager = MemoryNotifier()
    report = await amonitor(
        [checks.clicks_exceed_impressions()], alerter=pager, datasets={"rows": ROWS}
    )
    assert (False, 1) == (report.passed, len(pager.alerts))
    await anyio.lowlevel.checkpoint()


def test_gaps_command_lists_missing_partitions(tmp_path: Path) -> None:
    """``gaps`` prints each gap with its status and exits 2 while any remain."""
    import datetime as dt

    from resilient_pipeline import Partition, PartitionLedger, SQLiteStore, unit_of_work

    db = tmp_path / "ledger.db"
    store = SQLiteStore(db)
    ledger = PartitionLedger(store)
    with unit_of_work(store) as tx:
        ledger.succeed(tx, Partition("meta", "1", dt.date(2026, 11, 28)), rows=[])
    ledger.start(Partition("meta", "2", dt.date(2026, 11, 28)))
    ledger.fail(Partition("meta", "2", dt.date(2026, 11, 28)), "HTTPStatusError: 429")
    store.close()
    args = ["gaps", "--db", str(db), "--source", "meta", "--keys", "1,2,3"]
    args += ["--start", "2026-11-28", "--end", "2026-11-28", "--format", "json"]
    out = io.StringIO()
    assert CheckExitCode.ERRORS == main(args, out=out)
    assert [("2", "failed", 1), ("3", "missing", 0)] == [
        (r["key"], r["status"], r["attempts"]) for r in json.loads(out.getvalue())
    ]


def test_ledger_completeness_check_in_monitor(tmp_path: Path) -> None:
    """monitor() with the ledger's completeness check alerts with the missing partitions."""
    from resilient_pipeline import PartitionLedger, SQLiteStore

    store = SQLiteStore(tmp_path / "ledger.db")
    pager = MemoryNotifier()
    check = PartitionLedger(store).completeness_check("meta", [1, 2])
    report = monitor([check], params={"day": "2026-11-28"}, alerter=pager)
    assert CheckExitCode.ERRORS == report.exit_code
    assert [{"source": "meta", "key": "1", "period": "2026-11-28"}] == pager.alerts[0].details[
        "offending"
    ][:1]
    store.close()
