"""deadline_scope() and remaining_time(): one deadline, only ever tightened."""

from __future__ import annotations

import pytest

from resilient_pipeline import ConfigurationError
from resilient_pipeline.limits import deadline_scope, remaining_time
from resilient_pipeline.testing import FakeClock


def test_no_deadline_outside_scopes() -> None:
    """remaining_time() is None when no scope is open."""
    assert remaining_time() is None


def test_inner_scope_cannot_extend_outer() -> None:
    """A longer inner scope keeps the outer deadline; a shorter one tightens it."""
    clock = FakeClock()
    with deadline_scope(10, clock=clock):
        with deadline_scope(100, clock=clock) as available:
            assert 10.0 == available
        with deadline_scope(3, clock=clock) as available:
            assert 3.0 == available
            clock.advance(1)
            assert 2.0 == remaining_time()
        assert 9.0 == remaining_time()
    assert remaining_time() is None


def test_scopes_on_different_clocks_compare_by_remaining_time() -> None:
    """Scopes opened with different clocks compose by time left on each."""
    a, b = FakeClock(start=1000), FakeClock(start=5)
    with deadline_scope(4, clock=a), deadline_scope(50, clock=b) as available:
        assert 4.0 == available
    with deadline_scope(40, clock=a), deadline_scope(5, clock=b) as available:
        assert 5.0 == available


@pytest.mark.parametrize("seconds", [-1, float("nan")])
def test_invalid_seconds(seconds: float) -> None:
    """A negative or NaN budget is a configuration error naming the option."""
    with pytest.raises(ConfigurationError) as info, deadline_scope(seconds):
        pass
    assert "seconds" == info.value.option
