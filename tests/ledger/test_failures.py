"""Failures that mean something: root causes, attempts, exhausted partitions, reset, alerts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from resilient_pipeline import (
    CircuitBreaker,
    ConfigurationError,
    Partition,
    PartitionLedger,
    RetryPolicy,
    backfill,
    unit_of_work,
)
from resilient_pipeline.breaker import ConsecutiveFailures
from resilient_pipeline.exceptions import BackfillError, CircuitOpenError, TransientStoreError
from resilient_pipeline.storage import Store, Transaction
from resilient_pipeline.testing import FakeClock, set_testing

D1, D2 = dt.date(2026, 11, 27), dt.date(2026, 11, 28)


class UpstreamError(Exception):
    """The upstream's own error (what an HTTP 503 becomes)."""


def noop_write(tx: Transaction, partition: Partition, rows: Any) -> None:
    """Write nothing (the tests here look at the ledger)."""


def test_the_upstream_error_is_recorded_not_the_breakers_rejection(any_store: Store) -> None:
    """Retry + a real breaker: last_error keeps the upstream's 503, its class and time.

    Partition 1 fails twice with the 503 (the breaker opens), then is rejected;
    partition 2 is rejected before its fetch ever runs: its root cause is the
    503 that opened the circuit, and it is not an attempt.
    """
    clock = FakeClock()
    ledger = PartitionLedger(any_store, clock=clock, max_attempts=3)
    breaker = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=2), clock=clock)
    retry = RetryPolicy(
        max_attempts=3,
        base_delay=0.1,
        jitter=None,
        clock=clock,
        retry_if=lambda e: not isinstance(e, CircuitOpenError),
    )
    raised: list[tuple[str, float]] = []

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        clock.advance(1)
        raised.append((partition.key, clock.time()))
        raise UpstreamError("503 Service Unavailable for /insights?access_token=s3cret")

    report = backfill(
        ledger,
        source="ads",
        keys=[1, 2],
        start=D1,
        end=D1,
        fetch=fetch,
        write=noop_write,
        concurrency=1,
        policies=(retry, breaker),
        progress=False,
    )
    upstream = "UpstreamError: 503 Service Unavailable for /insights?access_token=***"
    kind = f"{__name__}.UpstreamError"
    assert [("1", clock.wall_start + 1), ("1", clock.wall_start + 2.1)] == raised
    records = {r.key: r for r in ledger.records("ads")}
    first, second = records["1"], records["2"]
    assert ("failed", 1, upstream, kind, raised[-1][1]) == (
        first.status,
        first.attempts,
        first.last_error,
        first.error_class,
        first.error_at,
    )
    rejection = "CircuitOpenError: circuit 'ads' is open"
    assert ("failed", 0, kind, raised[-1][1]) == (
        second.status,
        second.attempts,
        second.error_class,
        second.error_at,
    )
    assert second.last_error is not None
    assert second.last_error.startswith(f"{upstream} (not attempted: {rejection}")
    assert [(f.partition.key, f.counted, f.error_class) for f in report.failures] == [
        ("1", True, kind),
        ("2", False, kind),
    ]
    assert all("s3cret" not in (r.last_error or "") for r in records.values())


def test_a_claim_is_not_an_attempt_and_exhausted_is_retried_explicitly(any_store: Store) -> None:
    """Attempts count failures only; exhausted partitions wait for include_exhausted=True."""
    clock = FakeClock()
    ledger = PartitionLedger(any_store, clock=clock, max_attempts=2, lease=30)
    partition = Partition("ads", 1, D1)
    ledger.plan("ads", [1], D1, D1)
    for run in ("killed-1", "killed-2", "killed-3"):  # claimed, then the worker dies
        assert partition == ledger.claim("ads", run_id=run)
        clock.advance(31)
    [record] = ledger.records("ads")
    assert ("running", 0, 2) == (record.status, record.attempts, record.crashes)
    fetched: list[str] = []

    def failing(p: Partition) -> list[dict[str, Any]]:
        fetched.append(p.key)
        raise UpstreamError("boom")

    options: dict[str, Any] = {
        "source": "ads",
        "keys": [1],
        "start": D1,
        "end": D1,
        "write": noop_write,
        "policies": (),
        "progress": False,
    }
    statuses = []
    for _ in range(3):
        report = backfill(ledger, fetch=failing, **options)
        statuses.append([f.status for f in report.failures])
    assert [["failed"], ["exhausted"], []] == statuses
    assert ["1", "1"] == fetched  # the third run leaves the exhausted partition alone
    [gap] = ledger.gaps("ads", [1], D1, D1)
    assert ("exhausted", 2, 3) == (gap.status, gap.attempts, gap.crashes)
    report = backfill(ledger, fetch=lambda p: [{"n": 1}], include_exhausted=True, **options)
    assert [(partition, "new")] == list(report.collected)
    assert [] == ledger.gaps("ads", [1], D1, D1)


def test_alerts_give_the_action_that_applies(any_store: Store) -> None:
    """Exhausted: the retry command; failed: re-run; each alert lists its partitions."""
    ledger = PartitionLedger(any_store, max_attempts=1)
    ledger.plan("ads", [1], D1, D1)
    ledger.fail(Partition("ads", 1, D1), "earlier", counted=False)  # failed, not exhausted

    def fetch(p: Partition) -> list[dict[str, Any]]:
        raise UpstreamError(f"down for {p.key}")

    report = backfill(
        ledger,
        source="ads",
        keys=[1, 2],
        start=D1,
        end=D2,
        fetch=fetch,
        write=noop_write,
        policies=(),
        progress=False,
    )
    exhausted, *rest = report.alerts(db="kpi.db")
    assert [] == rest
    assert "error" == exhausted.severity
    assert (
        "Read the errors, fix the cause, then: python -m resilient_pipeline retry --db kpi.db "
        "--source ads --keys 1,2 --start 2026-11-27 --end 2026-11-28; "
        "see docs/runbooks/daily-collection-incomplete.md"
    ) == exhausted.action
    expected = [
        (p.key, p.period) for p in (Partition("ads", k, d) for d in (D1, D2) for k in (1, 2))
    ]
    assert expected == [(p["key"], p["period"]) for p in exhausted.details["partitions"]]
    assert {"UpstreamError: down for 1", "UpstreamError: down for 2"} == {
        p["error"] for p in exhausted.details["partitions"]
    }
    retryable = PartitionLedger(any_store, max_attempts=5, table="other")
    report = backfill(
        retryable,
        source="ads",
        keys=[1],
        start=D1,
        end=D1,
        fetch=fetch,
        write=noop_write,
        policies=(),
        progress=False,
    )
    [failed] = report.alerts()
    assert failed.title == "ads: 1 partition(s) failed (will be retried)"
    assert failed.action.startswith("Re-run the collector")


def test_reset_sets_exhausted_partitions_back_to_pending(any_store: Store) -> None:
    """reset() selects by status, keys and range, keeps last_error, and dry_run changes nothing."""
    ledger = PartitionLedger(any_store, max_attempts=1)
    for key, day in [(1, D1), (2, D1), (1, D2)]:
        partition = Partition("ads", key, day)
        ledger.start(partition)
        ledger.fail(partition, UpstreamError(f"503 for {key}"))
    ok = Partition("ads", 3, D1)
    with unit_of_work(any_store) as tx:
        ledger.succeed(tx, ok, rows=[{"n": 1}])
    dry = ledger.reset("ads", keys=[1, 3], start=D1, end=D2, dry_run=True)
    assert [("1", "2026-11-27"), ("1", "2026-11-28")] == [(r.key, r.period) for r in dry]
    assert {"exhausted"} == {r.status for r in ledger.records("ads") if r.key != "3"}
    done = ledger.reset("ads", keys=[1, 3], start=D2)
    assert [("1", "2026-11-28", "exhausted", 1)] == [
        (r.key, r.period, r.status, r.attempts) for r in done
    ]
    after = {(r.key, r.period): (r.status, r.attempts, r.last_error) for r in ledger.records("ads")}
    assert {
        ("1", "2026-11-27"): ("exhausted", 1, "UpstreamError: 503 for 1"),
        ("2", "2026-11-27"): ("exhausted", 1, "UpstreamError: 503 for 2"),
        ("1", "2026-11-28"): ("pending", 0, "UpstreamError: 503 for 1"),
        ("3", "2026-11-27"): ("succeeded", 0, None),
    } == after
    assert [("3", "succeeded")] == [
        (r.key, r.status) for r in ledger.reset("ads", periods=[D1], statuses=["succeeded"])
    ]


@pytest.mark.parametrize("statuses", [("running",), ("nonsense",)])
def test_reset_refuses_other_statuses(any_store: Store, statuses: tuple[str, ...]) -> None:
    """A running partition is leased; reset names the option instead of breaking the lease."""
    with pytest.raises(ConfigurationError) as info:
        PartitionLedger(any_store).reset("ads", statuses=statuses)
    assert "statuses" == info.value.option


def test_an_old_database_keeps_working(any_store: Store) -> None:
    """A ledger made by the previous version: columns are added; quarantined reads as exhausted."""
    with unit_of_work(any_store) as tx:
        text = 'TEXT COLLATE "C"' if tx.dialect == "postgres" else "TEXT"
        tx.execute(
            f"CREATE TABLE {tx.table('rp_partitions')} ("
            f" source {text} NOT NULL, key {text} NOT NULL, period {text} NOT NULL,"
            " status TEXT NOT NULL DEFAULT 'pending',"
            " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
            " row_count BIGINT, fingerprint TEXT, duration DOUBLE PRECISION, run_id TEXT,"
            " lease_owner TEXT, lease_expires DOUBLE PRECISION,"
            " updated_at DOUBLE PRECISION NOT NULL DEFAULT 0,"
            " restatements INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (source, period, key))"
        )
        tx.execute(
            f"CREATE TABLE {tx.table('rp_partitions_restatements')} ("
            " source TEXT NOT NULL, key TEXT NOT NULL, period TEXT NOT NULL,"
            " run_id TEXT, restated_at DOUBLE PRECISION NOT NULL,"
            " before_rows BIGINT, after_rows BIGINT,"
            " before_fingerprint TEXT, after_fingerprint TEXT)"
        )
        p = tx.placeholder
        tx.execute(
            f"INSERT INTO {tx.table('rp_partitions')} (source, key, period, status, attempts,"
            f" last_error) VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
            ("ads", "1", "2026-11-27", "quarantined", 5, "circuit 'ads' is open"),
        )
    ledger = PartitionLedger(any_store)
    [gap] = ledger.gaps("ads", [1], D1, D1)
    assert ("exhausted", 5, 0, None) == (gap.status, gap.attempts, gap.crashes, gap.error_class)
    assert [("1", "2026-11-27", "exhausted")] == ledger._statuses("ads", D1, D1)
    assert ledger.claim("ads", run_id="r") is None
    assert [("1", "exhausted")] == [(r.key, r.status) for r in ledger.reset("ads")]
    report = backfill(
        ledger,
        source="ads",
        keys=[1],
        start=D1,
        end=D1,
        fetch=lambda p: [{"spend": 2.0}],
        write=noop_write,
        measure="spend",
        progress=False,
    )
    assert [(Partition("ads", 1, D1), "new")] == list(report.collected)
    assert [2.0] == [r.measure for r in ledger.records("ads")]


def test_a_breaker_inside_the_fetch_keeps_the_recorded_upstream_error(any_store: Store) -> None:
    """A rejection by the fetch's own breaker is not an attempt and does not hide the 503."""
    clock = FakeClock()
    ledger = PartitionLedger(any_store, clock=clock)
    breaker = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=1), clock=clock)

    def upstream(partition: Partition) -> list[dict[str, Any]]:
        raise UpstreamError(f"503 for {partition.key}")

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        return breaker.call(upstream, partition)

    options: dict[str, Any] = {
        "source": "ads",
        "keys": [1],
        "start": D1,
        "end": D1,
        "fetch": fetch,
        "write": noop_write,
        "policies": (),
        "progress": False,
    }
    first = backfill(ledger, **options)
    at = clock.time()
    clock.advance(1)  # still open: the next run is turned away before reaching upstream
    second = backfill(ledger, **options)
    assert [(1, True)] == [(f.attempts, f.counted) for f in first.failures]
    assert [(1, False)] == [(f.attempts, f.counted) for f in second.failures]
    [record] = ledger.records("ads")
    assert ("failed", 1, "UpstreamError: 503 for 1", f"{__name__}.UpstreamError", at) == (
        record.status,
        record.attempts,
        record.last_error,
        record.error_class,
        record.error_at,
    )


@pytest.mark.parametrize(
    ("answer", "measure", "option"),
    [
        ({"spend": 1.0}, None, "fetch"),
        ("spend", None, "fetch"),
        ([{"spend": "12"}], "spend", "measure"),
    ],
    ids=["a-dict", "a-str", "text-measure"],
)
def test_a_bad_answer_fails_the_partition_and_writes_nothing(
    any_store: Store, answer: object, measure: str | None, option: str
) -> None:
    """A fetch answering one mapping (or text), or a measure that is not a number, is a failure."""
    written: list[object] = []
    ledger = PartitionLedger(any_store)
    report = backfill(
        ledger,
        source="ads",
        keys=[1],
        start=D1,
        end=D1,
        fetch=lambda p: answer,
        write=lambda tx, p, rows: written.append(rows),
        measure=measure,
        policies=(),
        progress=False,
    )
    [failure] = report.failures
    assert ([], "failed") == (written, failure.status)
    assert failure.error.startswith(f"ConfigurationError: {option}=")
    assert "failed" == ledger.records("ads")[0].status


class UnreachableLedger(PartitionLedger):
    """A ledger whose database goes away after planning."""

    def claim_many(self, *args: Any, **kwargs: Any) -> Any:
        raise TransientStoreError("connection refused by postgresql://etl:pw@db/kpi")


def test_a_ledger_outage_mid_run_is_reported_not_raised(any_store: Store) -> None:
    """Claims failing after their retries stop the run with a report and a critical alert."""
    with set_testing():
        report = backfill(
            UnreachableLedger(any_store),
            source="ads",
            keys=[1, 2],
            start=D1,
            end=D1,
            fetch=lambda p: [{"n": 1}],
            write=noop_write,
            concurrency=2,
            progress=False,
        )
    error = "claiming a partition failed: TransientStoreError: connection refused by "
    assert ((error + "postgresql://etl:***@db/kpi",), ()) == (report.errors, report.collected)
    [alert] = report.alerts()
    assert ("critical", "ads: backfill " + report.run_id + " stopped early") == (
        alert.severity,
        alert.title,
    )
    with pytest.raises(BackfillError):
        report.raise_for_failures()
