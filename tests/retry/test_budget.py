"""RetryBudget: retries limited to a share of calls, with a per-second reserve."""

from __future__ import annotations

import threading

import pytest

from resilient_pipeline import ConfigurationError, RetryBudget, retry_with_backoff
from resilient_pipeline.testing import FakeClock


@pytest.mark.parametrize(
    ("option", "value"),
    [("ratio", -0.1), ("min_per_second", -1), ("ttl", 0), ("ratio", "x"), ("ttl", float("inf"))],
)
def test_bad_options(option: str, value: object) -> None:
    """Invalid budget options name themselves."""
    with pytest.raises(ConfigurationError) as info:
        RetryBudget(**{option: value})  # type: ignore[arg-type]
    assert option == info.value.option


def test_retries_are_limited_to_the_ratio_of_calls() -> None:
    """With no reserve, 100 calls buy 10 retries at ratio 0.1."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_per_second=0, clock=clock)
    for _ in range(100):
        budget.deposit()
    granted = sum(budget.try_spend() for _ in range(50))
    stats = budget.statistics()
    assert 10 == granted
    assert (100, 10, 40) == (stats.calls, stats.retries, stats.refused)


def test_reserve_allows_retries_without_traffic_and_renews_each_window() -> None:
    """min_per_second x ttl retries are allowed per window, even with no calls."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0, min_per_second=2, ttl=5, clock=clock)
    assert [True] * 10 + [False] == [budget.try_spend() for _ in range(11)]
    clock.advance(3)
    assert not budget.try_spend()
    clock.advance(3)
    assert 10 == budget.statistics().available


def test_old_calls_leave_the_window() -> None:
    """Calls older than ttl no longer buy retries."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, min_per_second=0, ttl=10, clock=clock)
    for _ in range(10):
        budget.deposit()
    assert 5 == budget.statistics().available
    clock.advance(11)
    assert 0 == budget.statistics().available


def test_empty_budget_stops_retrying_with_a_note() -> None:
    """When the budget is empty the original error is raised at once, with a note saying why."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, min_per_second=0, clock=clock)
    calls = []

    @retry_with_backoff(budget=budget, max_attempts=5, base_delay=0, clock=clock)
    def fetch() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError) as info:
        fetch()
    # the call deposited 0.5: not enough for one retry
    assert 1 == len(calls)
    assert "retry budget exhausted: retries are limited to 50% of calls" == info.value.__notes__[-1]


def test_budget_is_thread_safe() -> None:
    """Concurrent spending never grants more retries than the balance allows."""
    budget = RetryBudget(ratio=1.0, min_per_second=0, clock=FakeClock())
    for _ in range(200):
        budget.deposit()
    granted: list[bool] = []
    lock = threading.Lock()

    def spend() -> None:
        for _ in range(100):
            ok = budget.try_spend()
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 200 == sum(granted)
