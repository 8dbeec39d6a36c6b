"""Hypothesis: the breaker agrees with a deliberately naive model under random calls and time."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from resilient_pipeline import CircuitBreaker, CircuitOpenError, ConsecutiveFailures, OpenDuration
from resilient_pipeline.breaker import HalfOpen
from resilient_pipeline.testing import FakeClock


class Model:
    """The breaker's rules, written as plainly as possible."""

    def __init__(self, threshold: int, open_for: float, permits: int, needed: int, ttl: float):
        self.threshold, self.open_for, self.permits, self.needed, self.ttl = (
            threshold,
            open_for,
            permits,
            needed,
            ttl,
        )
        self.state = "closed"
        self.failures = 0
        self.open_until = 0.0
        self.leases: dict[int, float] = {}
        self.next_lease = 1
        self.trial_successes = 0

    def admit(self, now: float) -> int | None:
        if self.state == "open" and now >= self.open_until:
            self.state, self.leases, self.trial_successes = "half_open", {}, 0
        if self.state == "closed":
            return 0
        if self.state == "open":
            return None
        self.leases = {k: v for k, v in self.leases.items() if v > now}
        if len(self.leases) >= self.permits:
            return None
        lease, self.next_lease = self.next_lease, self.next_lease + 1
        self.leases[lease] = now + self.ttl
        return lease

    def record(self, ticket: int, failed: bool, now: float) -> None:
        if ticket == 0:
            if self.state == "closed":
                self.failures = self.failures + 1 if failed else 0
                if self.failures >= self.threshold:
                    self.open(now)
            return
        if self.leases.pop(ticket, None) is None or self.state != "half_open":
            return
        if failed:
            self.open(now)
        else:
            self.trial_successes += 1
            if self.trial_successes >= self.needed:
                self.state, self.failures, self.leases = "closed", 0, {}

    def open(self, now: float) -> None:
        self.state, self.open_until, self.failures, self.leases = "open", now + self.open_for, 0, {}

    def visible_state(self, now: float) -> str:
        return "half_open" if self.state == "open" and now >= self.open_until else self.state


class BreakerVersusModel(RuleBasedStateMachine):
    """Random calls, in-flight trials, outcomes and clock advances."""

    inflight = Bundle("inflight")

    @initialize(
        threshold=st.integers(1, 4),
        open_for=st.sampled_from([1.0, 5.0]),
        permits=st.integers(1, 3),
        needed=st.integers(1, 3),
        ttl=st.sampled_from([2.0, 100.0]),
    )
    def build(self, threshold: int, open_for: float, permits: int, needed: int, ttl: float) -> None:
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(
            name="model",
            clock=self.clock,
            trip=ConsecutiveFailures(threshold=threshold),
            open_duration=OpenDuration(seconds=open_for),
            half_open=HalfOpen(permits=permits, success_threshold=needed, permit_ttl=ttl),
        )
        self.model = Model(threshold, open_for, permits, needed, ttl)

    @rule(failed=st.booleans())
    def call(self, failed: bool) -> None:
        """A whole call through the public API."""
        expected = self.model.admit(self.clock.monotonic())

        def upstream() -> str:
            if failed:
                raise ConnectionError("down")
            return "ok"

        try:
            self.breaker.call(upstream)
            ran = True
        except ConnectionError:
            ran = True
        except CircuitOpenError:
            ran = False
        assert (expected is not None) == ran
        if expected is not None:
            self.model.record(expected, failed, self.clock.monotonic())

    @rule(target=inflight)
    def begin(self) -> Any:
        """A call that starts now and ends later."""
        expected = self.model.admit(self.clock.monotonic())
        ticket = self.breaker._backend.admit(self.clock)
        assert (expected is not None) == isinstance(ticket, int)
        return (ticket, expected)

    @rule(pair=consumes(inflight), failed=st.booleans())
    def finish(self, pair: tuple[Any, int | None], failed: bool) -> None:
        """An in-flight call ends."""
        ticket, expected = pair
        if expected is None:
            return
        self.breaker._backend.record(ticket, int(failed), self.clock, None)
        self.model.record(expected, failed, self.clock.monotonic())

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 5.0]))
    def advance(self, seconds: float) -> None:
        """Time passes."""
        self.clock.advance(seconds)

    @invariant()
    def same_state(self) -> None:
        """The breaker and the model agree on the state the next call sees."""
        if hasattr(self, "model"):
            stats = self.breaker.statistics()
            assert self.model.visible_state(self.clock.monotonic()) == stats.state
            assert stats.permits_in_use <= self.model.permits


BreakerVersusModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
test_breaker_matches_model = BreakerVersusModel.TestCase
