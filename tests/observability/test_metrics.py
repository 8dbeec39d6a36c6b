"""Metrics from real primitives: every metric of METRICS, values checked exactly, labels bounded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from prometheus_client import CollectorRegistry

from resilient_pipeline import (
    Alert,
    Alerter,
    Bulkhead,
    Check,
    CheckSuite,
    CircuitBreaker,
    CircuitOpenError,
    ConfigurationError,
    ConsecutiveFailures,
    Field,
    PartitionLedger,
    PermanentError,
    RateLimiter,
    SQLiteStore,
    Validator,
    backfill,
    idempotent_upsert,
    retry_with_backoff,
    subscribe,
    unit_of_work,
)
from resilient_pipeline.exceptions import BulkheadFullError, RateLimitedError
from resilient_pipeline.observability import METRICS, OpenTelemetryMetrics, PrometheusMetrics
from resilient_pipeline.testing import FakeClock, MemoryNotifier, set_testing

NS = "resilient_pipeline"
DAYS = (dt.date(2026, 11, 27), dt.date(2026, 11, 28))


def run_workload(clock: FakeClock) -> None:
    """A little of everything, through the real primitives (no event built by hand)."""
    outcomes = iter([OSError("reset"), None])

    @retry_with_backoff(base_delay=0.5, jitter=None, clock=clock, name="fetch")
    def fetch() -> None:
        error = next(outcomes)
        if error is not None:
            raise error

    fetch()

    @retry_with_backoff(max_attempts=2, base_delay=1.0, jitter=None, clock=clock, name="doomed")
    def doomed() -> None:
        raise OSError("down")

    with pytest.raises(OSError):
        doomed()

    breaker = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=1), clock=clock)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    with pytest.raises(CircuitOpenError):
        breaker.call(print)

    limiter = RateLimiter(rate=1, burst=1, on_limit="reject", clock=clock, name="quota")
    limiter.acquire()
    with pytest.raises(RateLimitedError):
        limiter.acquire()
    bulkhead = Bulkhead(max_concurrent=1, name="slots")
    with bulkhead, pytest.raises(BulkheadFullError):
        bulkhead.acquire()

    store = SQLiteStore(":memory:")
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE kpi (day TEXT PRIMARY KEY, clicks INTEGER)")
    rows = [{"day": "2026-11-27", "clicks": 1}, {"day": "2026-11-28", "clicks": 2}]
    idempotent_upsert(store, "kpi", rows, key="day")
    idempotent_upsert(store, "kpi", [*rows[:1], {"day": "2026-11-28", "clicks": 3}], key="day")
    store.close()

    Validator(fields={"clicks": Field(int)}, name="kpi_rows").partition(
        [{"clicks": 1}, {"clicks": "x"}, {"clicks": None}]
    )

    suite = CheckSuite(
        checks=[
            Check.rows("no_negative", lambda rows: [r for r in rows if r["n"] < 0]),
            Check.rows("spend_sane", lambda rows: rows, severity="critical"),
            Check.rows("broken", lambda rows: [r["missing"] for r in rows]),
        ],
        datasets={"rows": [{"n": -1}]},
    )
    suite.run()

    notifier = MemoryNotifier(name="chat")
    alerter = Alerter([notifier], raise_on_failure=False)
    alerter.send(Alert(severity="error", title="late"))
    alerter.send(Alert(severity="error", title="late"))  # a duplicate: suppressed
    notifier.fail_next(1)
    alerter.send(Alert(severity="critical", title="down"))


def run_backfill(clock: FakeClock) -> None:
    """Two backfills: 3 partitions collected and 1 failed, then a look-back restating one."""
    store = SQLiteStore(":memory:")
    ledger = PartitionLedger(store, clock=clock)
    spend = {("1", "2026-11-27"): 1.0, ("1", "2026-11-28"): 2.0, ("2", "2026-11-27"): 3.0}

    def fetch(partition: Any) -> list[dict[str, object]]:
        if partition.key == "2" and partition.period == "2026-11-28":
            raise PermanentError("no such account")
        return [{"spend": spend[(partition.key, partition.period)]}]

    def run(**options: Any) -> None:
        backfill(
            ledger,
            source="meta_ads",
            keys=["1", "2"],
            start=DAYS[0],
            end=DAYS[1],
            fetch=fetch,
            write=lambda tx, partition, rows: None,
            progress=False,
            concurrency=1,
            **options,
        )

    run()
    spend["1", "2026-11-28"] = 2.5  # the platform revised a day
    run(lookback=1)
    store.close()


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    clock = FakeClock(wall_start=1_800_000_000.0)
    with set_testing(clock=clock):
        yield clock


def test_prometheus_metrics_from_real_primitives(clock: FakeClock) -> None:
    """Each metric of the post-mortem's set, value by value, from one workload."""
    registry = CollectorRegistry()
    with subscribe(PrometheusMetrics(registry=registry)):
        run_workload(clock)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"{NS}_{name}", labels)

    assert 1.0 == value("call_duration_seconds_count", source="fetch", outcome="success")
    assert 0.5 == value("call_duration_seconds_sum", source="fetch", outcome="success")
    assert 1.0 == value("call_duration_seconds_count", source="doomed", outcome="failure")
    assert 1.0 == value("call_duration_seconds_sum", source="doomed", outcome="failure")
    assert 2.0 == value("attempts_total", source="fetch")
    assert 2.0 == value("attempts_total", source="doomed")
    assert 1.0 == value("retries_total", source="fetch")
    assert 1.0 == value("retries_total", source="doomed")
    assert 1.0 == value("giveups_total", source="doomed", reason="attempts")
    assert value("giveups_total", source="fetch", reason="attempts") is None
    assert 2.0 == value("breaker_state", breaker="ads")
    assert 1.0 == value("breaker_transitions_total", breaker="ads", state="open")
    assert 1.0 == value("rejected_calls_total", policy="breaker", source="ads")
    assert 1.0 == value("rejected_calls_total", policy="rate_limit", source="quota")
    assert 1.0 == value("rejected_calls_total", policy="bulkhead", source="slots")
    assert 2.0 == value("rows_total", source="kpi", outcome="inserted")
    assert 1.0 == value("rows_total", source="kpi", outcome="unchanged")
    assert 1.0 == value("rows_total", source="kpi", outcome="updated")
    assert 2.0 == value("rows_total", source="kpi_rows", outcome="quarantined")
    assert 1.0 == value(
        "check_results_total", check="no_negative", severity="error", outcome="failed"
    )
    assert 1.0 == value(
        "check_results_total", check="spend_sane", severity="critical", outcome="failed"
    )
    assert 1.0 == value(
        "check_results_total", check="broken", severity="unknown", outcome="errored"
    )
    assert 1.0 == value("alerts_total", severity="error", outcome="sent")
    assert 1.0 == value("alerts_total", severity="error", outcome="suppressed")
    assert 1.0 == value("alerts_total", severity="critical", outcome="failed")
    assert 1.0 == value("events_total", event="CircuitOpened", source="ads")


def test_ledger_metrics_from_a_real_backfill(clock: FakeClock) -> None:
    """Partitions by outcome, gaps, restatements and freshness per source (not per table)."""
    registry = CollectorRegistry()
    with subscribe(PrometheusMetrics(registry=registry)):
        run_backfill(clock)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"{NS}_{name}", labels)

    # run 1: 3 new, 1 failed; run 2 (look-back over the last day): 1 restated, 1 failed again
    assert 3.0 == value("partitions_total", source="meta_ads", outcome="new")
    assert 1.0 == value("partitions_total", source="meta_ads", outcome="restated")
    assert 2.0 == value("partitions_total", source="meta_ads", outcome="failed")
    assert 1.0 == value("restatements_total", source="meta_ads")
    assert 1.0 == value("ledger_gaps", source="meta_ads")
    assert clock.time() == value("last_success_timestamp_seconds", source="meta_ads")


def test_rows_of_a_quarantined_unit_count_as_quarantined(tmp_path: Any) -> None:
    """A contract's whole-unit quarantine is counted in rows_total{outcome="quarantined"}."""
    from resilient_pipeline.validation import (
        Collection,
        JSONLQuarantine,
        PartitionContract,
        quarantine_unit,
    )

    contract = PartitionContract(
        collections={"campaigns": Collection(), "conversions": Collection()}
    )
    unit = contract.check(
        {"campaigns": [{"spend": 1}, {"spend": 2}, {"spend": 3}], "conversions": []},
        unit_id="meta_ads/7/2026-11-28",
    )
    registry = CollectorRegistry()
    with subscribe(PrometheusMetrics(registry=registry)):
        quarantine_unit(JSONLQuarantine(tmp_path / "q.jsonl"), unit, source="meta_ads")
    assert 3.0 == registry.get_sample_value(
        f"{NS}_rows_total", {"source": "meta_ads", "outcome": "quarantined"}
    )


def test_keyed_breakers_roll_up_to_one_label_value(clock: FakeClock) -> None:
    """1000 keys through a keyed breaker make one label value; the gauge is the worst key's."""
    registry = CollectorRegistry()
    template = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=1), clock=clock)
    with subscribe(PrometheusMetrics(registry=registry)):
        for key in range(1000):
            breaker = template.for_key(f"act_{key}")
            with pytest.raises(ZeroDivisionError):
                breaker.call(lambda: 1 / 0)
        opened = registry.get_sample_value(f"{NS}_breaker_state", {"breaker": "ads"})
        for key in range(1000):
            template.for_key(f"act_{key}").reset()
        closed = registry.get_sample_value(f"{NS}_breaker_state", {"breaker": "ads"})
    labels = {
        sample.labels.get("breaker", sample.labels.get("source"))
        for metric in registry.collect()
        for sample in metric.samples
        if sample.labels
    }
    assert (2.0, 0.0) == (opened, closed)
    assert {"ads"} == labels
    assert 1000.0 == registry.get_sample_value(
        f"{NS}_breaker_transitions_total", {"breaker": "ads", "state": "open"}
    )


def test_breaker_gauge_stays_open_while_any_key_is_open(clock: FakeClock) -> None:
    """A key closing does not hide another key that is still open."""
    registry = CollectorRegistry()
    template = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=1), clock=clock)
    with subscribe(PrometheusMetrics(registry=registry)):
        for key in ("a", "b"):
            with pytest.raises(ZeroDivisionError):
                template.for_key(key).call(lambda: 1 / 0)
        template.for_key("a").reset()
        still_open = registry.get_sample_value(f"{NS}_breaker_state", {"breaker": "ads"})
    assert 2.0 == still_open


def test_business_gauge_from_rows_with_bounded_labels() -> None:
    """A declared gauge computes its value from rows; labels are checked and bounded."""
    metrics = PrometheusMetrics(registry=CollectorRegistry())
    spend = metrics.business_gauge(
        "spend_collected",
        description="Spend collected.",
        labels=("platform",),
        unit="euros",
        value=lambda rows: sum(row["spend"] for row in rows),
        max_series=2,
    )
    spend.observe([{"spend": 1.5}, {"spend": 2.0}], platform="meta")
    spend.observe([{"spend": 4.0}], platform="google")
    spend.observe([{"spend": 5.0}], platform="meta")  # a gauge: the latest value

    def value(platform: str) -> float | None:
        return metrics.registry.get_sample_value(
            f"{NS}_spend_collected_euros", {"platform": platform}
        )

    assert (5.0, 4.0) == (value("meta"), value("google"))
    with pytest.raises(ConfigurationError, match="max_series=2"):
        spend.observe([{"spend": 1.0}], platform="act_123")
    with pytest.raises(ConfigurationError, match=r"takes labels \['platform'\]"):
        spend.set(1.0, client="act_123")
    with pytest.raises(ConfigurationError, match="must be a number"):
        spend.set("12", platform="meta")  # type: ignore[arg-type]
    assert value("act_123") is None
    with pytest.raises(ConfigurationError, match="already a metric"):
        metrics.business_gauge("retries", description="clash")
    with pytest.raises(ConfigurationError, match="name='spend-eur'"):
        metrics.business_gauge("spend-eur", description="bad name")


@pytest.fixture
def otel() -> Iterator[tuple[OpenTelemetryMetrics, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield OpenTelemetryMetrics(meter=provider.get_meter("test")), reader
    provider.shutdown()


def test_opentelemetry_metrics_from_real_primitives(
    clock: FakeClock, otel: tuple[OpenTelemetryMetrics, InMemoryMetricReader]
) -> None:
    """The same mapping through the OpenTelemetry API: names, units and values."""
    metrics, reader = otel
    with subscribe(metrics):
        run_workload(clock)
        run_backfill(clock)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[tuple[str, tuple[tuple[str, Any], ...]], Any] = {}
    units = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                units[metric.name] = metric.unit
                for point in metric.data.data_points:
                    key = (metric.name, tuple(sorted((point.attributes or {}).items())))
                    if isinstance(point, HistogramDataPoint):
                        points[key] = (point.count, point.sum)
                    elif isinstance(point, NumberDataPoint):
                        points[key] = point.value
    assert (1, 0.5) == points[
        (f"{NS}.call_duration", (("outcome", "success"), ("source", "fetch")))
    ]
    assert 1 == points[(f"{NS}.giveups", (("reason", "attempts"), ("source", "doomed")))]
    assert 2 == points[(f"{NS}.breaker_state", (("breaker", "ads"),))]
    assert 2 == points[(f"{NS}.rows", (("outcome", "inserted"), ("source", "kpi")))]
    assert clock.time() == points[(f"{NS}.last_success_timestamp", (("source", "meta_ads"),))]
    assert "s" == units[f"{NS}.call_duration"]
    assert {f"{NS}.{spec.name}" for spec in METRICS} == set(units)
