"""``RetryBudget``: a shared limit on retries that stops retry storms."""

from __future__ import annotations

import math
import threading
from collections import deque

import attrs

from resilient_pipeline._core import Clock, number, resolve_clock

__all__ = ["RetryBudget", "RetryBudgetStatistics"]


@attrs.frozen
class RetryBudgetStatistics:
    """A snapshot of a :class:`RetryBudget`.

    Attributes:
        available: Retries that may be spent right now.
        calls: Calls recorded since the budget was made.
        retries: Retries granted since the budget was made.
        refused: Retries refused because the budget was spent.
    """

    available: int
    calls: int
    retries: int
    refused: int


@attrs.define(eq=False)
class RetryBudget:
    """Limits retries to a share of recent calls, shared by many decorated functions.

    Over any ``ttl``-second window, retries may number at most
    ``ratio * calls`` in that window plus ``min_per_second * ttl`` (a
    reserve so that low-traffic callers can still retry). When an upstream
    is down for everyone, retries stay a small multiple of real traffic
    instead of multiplying it.

    When the budget is spent, ``retry_with_backoff`` raises the original error
    at once, with a note saying the budget was exhausted.

    Examples:
        >>> from resilient_pipeline import retry_with_backoff
        >>> budget = RetryBudget(ratio=0.1, min_per_second=0.0)
        >>> @retry_with_backoff(budget=budget, base_delay=0)
        ... def fetch() -> None:
        ...     raise ConnectionError("down")
        >>> try:
        ...     fetch()
        ... except ConnectionError as e:
        ...     print(e.__notes__[-1])
        retry budget exhausted: retries are limited to 10% of calls
    """

    ratio: float = attrs.field(default=0.2, kw_only=True)
    min_per_second: float = attrs.field(default=1.0, kw_only=True)
    ttl: float = attrs.field(default=10.0, kw_only=True)
    clock: Clock | None = attrs.field(default=None, kw_only=True)

    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    # one [second, calls, retries] bucket per clock second still inside the window
    _buckets: deque[list[int]] = attrs.field(factory=deque, init=False, repr=False)
    _calls: int = attrs.field(default=0, init=False, repr=False)
    _retries: int = attrs.field(default=0, init=False, repr=False)
    _refused: int = attrs.field(default=0, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        number(ge=0, finite=True).check("ratio", self.ratio)
        number(ge=0, finite=True).check("min_per_second", self.min_per_second)
        number(gt=0, finite=True).check("ttl", self.ttl)

    def _bucket(self) -> list[int]:
        """The current second's bucket, after dropping those older than ``ttl`` (lock held)."""
        second = math.floor(resolve_clock(self.clock).monotonic())
        buckets = self._buckets
        horizon = second - math.ceil(self.ttl)
        while buckets and buckets[0][0] <= horizon:
            buckets.popleft()
        if not buckets or buckets[-1][0] != second:
            buckets.append([second, 0, 0])
        return buckets[-1]

    def _available(self) -> int:
        calls = sum(b[1] for b in self._buckets)
        retries = sum(b[2] for b in self._buckets)
        allowed = self.ratio * calls + self.min_per_second * self.ttl
        return max(0, math.floor(allowed + 1e-9) - retries)

    def deposit(self) -> None:
        """Record one call (``retry_with_backoff`` does this for you)."""
        with self._lock:
            self._bucket()[1] += 1
            self._calls += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; ``False`` when it is spent."""
        with self._lock:
            bucket = self._bucket()
            if self._available() >= 1:
                bucket[2] += 1
                self._retries += 1
                return True
            self._refused += 1
            return False

    def statistics(self) -> RetryBudgetStatistics:
        """A frozen snapshot of what is available and the counters."""
        with self._lock:
            self._bucket()
            return RetryBudgetStatistics(
                self._available(), self._calls, self._retries, self._refused
            )
