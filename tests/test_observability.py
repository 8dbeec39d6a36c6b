"""Events to operators: the JSON log formatter and the Prometheus / OpenTelemetry bridges."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from resilient_pipeline import (
    CircuitBreaker,
    CircuitOpenError,
    ConsecutiveFailures,
    SQLiteStore,
    idempotent_upsert,
    retry_with_backoff,
    subscribe,
    unit_of_work,
)
from resilient_pipeline.observability import JsonFormatter, OpenTelemetryMetrics, PrometheusMetrics
from resilient_pipeline.testing import FakeClock


def run_workload() -> None:
    """One retry, one breaker that opens, one upsert: a little of everything."""
    clock = FakeClock()
    outcomes = iter([OSError("reset"), None])

    @retry_with_backoff(base_delay=0, clock=clock, name="fetch")
    def fetch() -> None:
        error = next(outcomes)
        if error is not None:
            raise error

    fetch()
    breaker = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=1), clock=clock)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    with pytest.raises(CircuitOpenError):
        breaker.call(print)
    store = SQLiteStore(":memory:")
    with unit_of_work(store) as tx:
        tx.execute("CREATE TABLE kpi (day TEXT PRIMARY KEY, clicks INTEGER)")
    rows = [{"day": "2026-11-27", "clicks": 1}, {"day": "2026-11-28", "clicks": 2}]
    idempotent_upsert(store, "kpi", rows, key="day")
    idempotent_upsert(store, "kpi", rows, key="day")
    store.close()


def test_prometheus_metrics_follow_events() -> None:
    """Counters for events and rows, and a gauge per circuit, from one workload."""
    registry = CollectorRegistry()
    with subscribe(PrometheusMetrics(registry=registry)):
        run_workload()

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert 1.0 == value("resilient_pipeline_events_total", event="RetryScheduled", source="fetch")
    assert 1.0 == value("resilient_pipeline_events_total", event="CallRejected", source="ads")
    assert 2.0 == value("resilient_pipeline_circuit_state", circuit="ads")
    assert 2.0 == value("resilient_pipeline_rows_total", table="kpi", outcome="inserted")
    assert 2.0 == value("resilient_pipeline_rows_total", table="kpi", outcome="unchanged")
    assert value("resilient_pipeline_rows_total", table="kpi", outcome="updated") is None


@pytest.fixture
def otel() -> Iterator[tuple[OpenTelemetryMetrics, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield OpenTelemetryMetrics(meter=provider.get_meter("test")), reader
    provider.shutdown()


def test_opentelemetry_metrics_follow_events(
    otel: tuple[OpenTelemetryMetrics, InMemoryMetricReader],
) -> None:
    """The same metrics through the OpenTelemetry API."""
    metrics, reader = otel
    with subscribe(metrics):
        run_workload()
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        (metric.name, tuple(sorted(point.attributes.items()))): point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    }
    key = (("event", "RetryScheduled"), ("source", "fetch"))
    assert 1 == points[("resilient_pipeline.events", key)]
    assert 2 == points[("resilient_pipeline.circuit_state", (("circuit", "ads"),))]
    assert 2 == points[("resilient_pipeline.rows", (("outcome", "inserted"), ("table", "kpi")))]


def test_json_formatter_carries_event_fields_and_masks_secrets() -> None:
    """Library records become JSON lines with every event field; secrets are masked."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("resilient_pipeline")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        outcomes = iter([OSError("GET /v1?access_token=SECRET9 failed"), None])

        @retry_with_backoff(base_delay=0, clock=FakeClock(), name="fetch")
        def fetch() -> None:
            error = next(outcomes)
            if error is not None:
                raise error

        fetch()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert ["RetryScheduled", "RetrySucceeded"] == [line["event"] for line in lines]
    first = lines[0]
    assert ("WARNING", "resilient_pipeline.retry", "fetch", 1) == (
        first["level"],
        first["logger"],
        first["source"],
        first["attempt"],
    )
    assert "SECRET9" not in stream.getvalue()


def test_json_formatter_renders_exceptions_and_odd_values() -> None:
    """Tracebacks are included (masked) and non-JSON values become strings."""
    try:
        raise RuntimeError("password=hunter2")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, None)
        record.exc_info = __import__("sys").exc_info()
    record.when = object()
    record.items = (1, {"a": 2.5})
    line = json.loads(JsonFormatter().format(record))
    assert "password=***" in line["exception"]
    assert "hunter2" not in line["exception"]
    assert [1, {"a": 2.5}] == line["items"]
    assert line["when"].startswith("<object object")
