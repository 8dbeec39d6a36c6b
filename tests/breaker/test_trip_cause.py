"""CircuitOpenError.opened_by: the failure that opened the breaker, kept once when it tripped."""

from __future__ import annotations

import anyio
import pytest

from resilient_pipeline import CircuitBreaker
from resilient_pipeline.breaker import ConsecutiveFailures
from resilient_pipeline.exceptions import CircuitOpenError
from resilient_pipeline.testing import FakeClock


def test_circuit_open_error_carries_the_failure_that_tripped_it() -> None:
    """Each rejection names the failure that opened that breaker (masked), and when."""
    clock = FakeClock()
    breaker = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=2), clock=clock)

    def failing(text: str) -> None:
        raise ConnectionError(text)

    for text in ("first https://u:pw@api.example/x", "second https://u:pw@api.example/y"):
        clock.advance(1)
        with pytest.raises(ConnectionError):
            breaker.call(failing, text)
    tripped_at = clock.time()
    clock.advance(5)
    for _ in range(2):
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(failing, "never runs")
        assert (
            "ConnectionError: second https://u:***@api.example/y",
            "ConnectionError",
            tripped_at,
        ) == (info.value.opened_by, info.value.opened_by_class, (info.value.trip_cause or "")[2])
    # Forced open by an operator: no failure opened it.
    breaker.reset()
    breaker.force_open()
    with pytest.raises(CircuitOpenError) as forced:
        breaker.call(failing, "never runs")
    assert (None, None) == (forced.value.opened_by, forced.value.opened_by_class)


def test_keyed_breakers_each_carry_their_own_cause() -> None:
    """breaker.for_key(k): a rejection by key b's breaker names b's failure, not a's."""
    clock = FakeClock()
    template = CircuitBreaker(name="ads", trip=ConsecutiveFailures(threshold=1), clock=clock)

    def failing(key: str) -> None:
        raise TimeoutError(f"{key} timed out")

    for key in ("a", "b"):
        with pytest.raises(TimeoutError):
            template.for_key(key).call(failing, key)
    seen = {}
    for key in ("b", "a"):
        with pytest.raises(CircuitOpenError) as info:
            template.for_key(key).call(failing, key)
        seen[key] = info.value.opened_by
    assert {"a": "TimeoutError: a timed out", "b": "TimeoutError: b timed out"} == seen


def test_the_cause_is_kept_by_the_async_and_context_manager_forms() -> None:
    """acall and the with-form record the tripping failure too."""
    clock = FakeClock()
    breakers = [
        CircuitBreaker(name=n, trip=ConsecutiveFailures(threshold=1), clock=clock) for n in "xy"
    ]

    async def afailing() -> None:
        raise OSError("async boom")

    async def main() -> str | None:
        with pytest.raises(OSError, match="async boom"):
            await breakers[0].acall(afailing)
        with pytest.raises(CircuitOpenError) as info:
            await breakers[0].acall(afailing)
        return info.value.opened_by

    assert "OSError: async boom" == anyio.run(main)
    with pytest.raises(OSError, match="with boom"), breakers[1]:
        raise OSError("with boom")
    with pytest.raises(CircuitOpenError) as info, breakers[1]:
        pass
    assert "OSError: with boom" == info.value.opened_by
