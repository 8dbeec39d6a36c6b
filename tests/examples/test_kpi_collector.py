"""The reference KPI collector end to end: flaky local API, real SQLite file and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from examples.kpi_collector.__main__ import CLIENTS, main, run
from examples.kpi_collector.collector import SOURCE
from resilient_pipeline import PartitionLedger, unit_of_work
from resilient_pipeline.alerting import AlertSent
from resilient_pipeline.breaker import CircuitOpened
from resilient_pipeline.retry import RetryScheduled
from resilient_pipeline.storage import Store
from resilient_pipeline.testing import capture_events, set_testing

DAYS = [dt.date(2026, 11, 26), dt.date(2026, 11, 27), dt.date(2026, 11, 28)]


def table_counts(store: Store) -> dict[str, tuple[int, int]]:
    """(rows, distinct keys) per data table."""
    counts = {}
    with unit_of_work(store) as tx:
        for table in ("campaigns", "conversions"):
            rows = tx.fetchone(f"SELECT COUNT(*) FROM {tx.table(table)}")
            keys = tx.fetchone(
                "SELECT COUNT(*) FROM (SELECT DISTINCT client_id, date, platform, campaign_id"
                f" FROM {tx.table(table)}) AS k"
            )
            assert rows is not None
            assert keys is not None
            counts[table] = (rows[0], keys[0])
    return counts


def check_story(store: Store) -> None:
    """Run the collector twice on ``store`` and check every chapter of the story."""
    with set_testing(), capture_events() as events:
        assert 0 == run(store, DAYS)
    names = [type(e).__name__ for e in events]
    alerts = [e for e in events if isinstance(e, AlertSent)]
    # round 1 hit throttling, errors, a hang-up and an incomplete answer, all retried
    assert any(isinstance(e, RetryScheduled) and "429" in e.error for e in events)
    assert any(isinstance(e, RetryScheduled) and "retry_on_result" in e.error for e in events)
    # client 12's account was down: its breaker opened and a person was told
    assert any(isinstance(e, CircuitOpened) and "[12]" in e.source for e in events)
    assert any("meta_ads_complete" in a.title for a in alerts)
    assert any("rows_quarantined" in a.title for a in alerts)
    assert "RowsReplayed" in names
    # every partition succeeded, every row once, both tables complete
    ledger = PartitionLedger(store)
    assert [] == ledger.gaps(SOURCE, CLIENTS, DAYS[0], DAYS[-1])
    expected = (len(CLIENTS) * len(DAYS) * 3,) * 2
    assert {"campaigns": expected, "conversions": expected} == table_counts(store)
    # running again changes nothing and fetches nothing
    with set_testing(), capture_events() as again:
        assert 0 == run(store, DAYS)
    assert [] == [e for e in again if isinstance(e, RetryScheduled)]
    assert {"campaigns": expected, "conversions": expected} == table_counts(store)


def test_collector_story(any_store: Store) -> None:
    """The whole story on every backend: the embedded SQLite file and PostgreSQL."""
    check_story(any_store)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """python -m examples.kpi_collector exits 0 and says what happened."""
    with set_testing():
        code = main(["--db", str(tmp_path / "kpi.sqlite3"), "--days", "1", "--end", "2026-11-28"])
    out = capsys.readouterr().out
    assert 0 == code
    assert "round 1: collecting 16 clients x 1 days" in out
    assert "final checks: exit code 0" in out
    assert "demo-token" not in out  # the API token never reaches the log
