"""The optional structlog bridge: events and bound fields through structlog."""

from __future__ import annotations

import pytest

structlog = pytest.importorskip("structlog")

from resilient_pipeline import retry_with_backoff, subscribe  # noqa: E402
from resilient_pipeline.observability import (  # noqa: E402
    StructlogSink,
    add_bound_context,
    bind_context,
)
from resilient_pipeline.testing import FakeClock  # noqa: E402


def test_events_go_through_structlog_with_fields_and_context() -> None:
    """Each event is one structlog entry: message, level, type, fields and bound context."""
    outcomes = iter([OSError("GET /x?access_token=SECRET1 failed"), None])

    @retry_with_backoff(base_delay=0, jitter=None, clock=FakeClock(), name="fetch")
    def fetch() -> None:
        error = next(outcomes)
        if error is not None:
            raise error

    with (
        structlog.testing.capture_logs() as logs,
        subscribe(StructlogSink()),
        bind_context(run_id="r1"),
    ):
        fetch()
    assert [
        ("RetryScheduled", "warning"),
        ("RetrySucceeded", "info"),
        ("CallFinished", "debug"),
    ] == [(entry["event_type"], entry["log_level"]) for entry in logs]
    first = logs[0]
    assert (
        "fetch: attempt 1 failed (OSError: GET /x?access_token=*** failed); retrying in 0.00 s"
        == (first["event"])
    )
    assert (1, "fetch", {"run_id": "r1"}) == (first["attempt"], first["source"], first["context"])
    assert "SECRET1" not in repr(logs)


def test_processor_adds_bound_fields_to_your_own_lines() -> None:
    """add_bound_context puts bind_context's fields on the user's structlog lines."""
    structlog.configure(processors=[add_bound_context, structlog.testing.LogCapture()])
    try:
        capture = structlog.get_config()["processors"][-1]
        with bind_context(partition_key="act_1"):
            structlog.get_logger().info("collected", rows=3)
        structlog.get_logger().info("outside")
    finally:
        structlog.reset_defaults()
    assert [
        {
            "event": "collected",
            "rows": 3,
            "context": {"partition_key": "act_1"},
            "log_level": "info",
        },
        {"event": "outside", "log_level": "info"},
    ] == capture.entries
