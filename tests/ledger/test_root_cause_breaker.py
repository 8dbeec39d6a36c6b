"""A partition its breaker turned away records the failure that opened *its* breaker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from resilient_pipeline import CircuitBreaker, Partition, PartitionLedger, RetryPolicy, backfill
from resilient_pipeline.breaker import ConsecutiveFailures
from resilient_pipeline.exceptions import CircuitOpenError
from resilient_pipeline.storage import Store, Transaction
from resilient_pipeline.testing import FakeClock

D1, D2 = dt.date(2026, 11, 27), dt.date(2026, 11, 28)


class UpstreamError(Exception):
    """The upstream's own error."""


def noop_write(tx: Transaction, partition: Partition, rows: Any) -> None:
    """Write nothing (the ledger is what is looked at)."""


def test_a_rejected_partition_records_what_opened_its_own_keys_breaker(any_store: Store) -> None:
    """Per-key breakers: key 1's day-2 rejection records key 1's 503, not key 2's later error.

    Claims go by period then key: (1, D1) fails and opens breaker[1], (2, D1)
    fails and opens breaker[2] (the run's last upstream error), then (1, D2)
    is turned away by breaker[1] before its fetch runs.
    """
    clock = FakeClock()
    ledger = PartitionLedger(any_store, clock=clock, max_attempts=3)
    template = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=1), clock=clock)
    retry = RetryPolicy(
        max_attempts=2,
        base_delay=0.5,
        jitter=None,
        clock=clock,
        retry_if=lambda e: not isinstance(e, CircuitOpenError),
    )
    errors = {
        "1": "503 Service Unavailable ?access_token=s3cret",
        "2": "read timed out",
    }
    raised: list[tuple[str, str, float]] = []

    def fetch(partition: Partition) -> list[dict[str, Any]]:
        clock.advance(1)
        raised.append((partition.key, partition.period, clock.time()))
        raise UpstreamError(errors[partition.key])

    def per_key(fn: Callable[[Partition], Any]) -> Callable[[Partition], Any]:
        def call(partition: Partition) -> Any:
            return template.for_key(partition.key).call(fn, partition)

        return call

    report = backfill(
        ledger,
        source="ads",
        keys=[1, 2],
        start=D1,
        end=D2,
        fetch=fetch,
        write=noop_write,
        concurrency=1,
        policies=(retry, per_key),
        progress=False,
    )
    # Only day 1 reached upstream, once per key: each key's breaker opened on its first 503.
    assert [("1", "2026-11-27"), ("2", "2026-11-27")] == [(k, p) for k, p, _ in raised]
    opened_at = {k: at for k, _, at in raised}
    described = {
        "1": "UpstreamError: 503 Service Unavailable ?access_token=***",
        "2": "UpstreamError: read timed out",
    }
    kind = f"{__name__}.UpstreamError"
    records = {(r.key, r.period): r for r in ledger.records("ads")}
    for key in ("1", "2"):
        own = records[(key, "2026-11-27")]
        assert ("failed", 1, described[key], kind, opened_at[key]) == (
            own.status,
            own.attempts,
            own.last_error,
            own.error_class,
            own.error_at,
        )
        rejected = records[(key, "2026-11-28")]
        assert ("failed", 0, kind, opened_at[key]) == (
            rejected.status,
            rejected.attempts,
            rejected.error_class,
            rejected.error_at,
        )
        assert rejected.last_error is not None
        assert rejected.last_error.startswith(
            f"{described[key]} (not attempted: CircuitOpenError: circuit 'ads[{key}]' is open"
        )
    assert [(f.partition.key, f.partition.period, f.counted) for f in report.failures] == [
        ("1", "2026-11-27", True),
        ("2", "2026-11-27", True),
        ("1", "2026-11-28", False),
        ("2", "2026-11-28", False),
    ]
    assert all("s3cret" not in (r.last_error or "") for r in records.values())
