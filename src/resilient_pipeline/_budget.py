"""``RetryBudget``: a shared token bucket that stops retry storms."""

from __future__ import annotations

import threading

import attrs

from ._clock import resolve_clock
from .exceptions import ConfigurationError
from .typing import Clock

__all__ = ["RetryBudget", "RetryBudgetStatistics"]


@attrs.frozen
class RetryBudgetStatistics:
    """A snapshot of a :class:`RetryBudget`.

    Attributes:
        balance: Retries that may be spent right now.
        calls: Calls deposited so far.
        retries: Retries granted so far.
        refused: Retries refused because the budget was empty.
    """

    balance: float
    calls: int
    retries: int
    refused: int


def _check(option: str, value: object, *, minimum: float, inclusive: bool) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value >= minimum if inclusive else value > minimum)
    ):
        sign = ">=" if inclusive else ">"
        raise ConfigurationError.for_option(option, value, f"must be a number {sign} {minimum}")


@attrs.define(eq=False)
class RetryBudget:
    """Limits retries to a fraction of calls, shared by many decorated functions.

    Every call deposits ``ratio`` tokens; every retry spends one. A reserve of
    ``min_per_second`` tokens per second keeps low-traffic callers able to
    retry. The balance never exceeds what ``ttl`` seconds of reserve plus
    deposits could hold, so a long quiet spell does not bank a storm.

    When the budget is empty, ``retry_with_backoff`` raises the original error
    at once, with a note saying the budget was exhausted.

    Example:
        >>> from resilient_pipeline import retry_with_backoff
        >>> budget = RetryBudget(ratio=0.1, min_per_second=0.0, initial=1.0)
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
    min_per_second: float = attrs.field(default=10.0, kw_only=True)
    ttl: float = attrs.field(default=10.0, kw_only=True)
    initial: float | None = attrs.field(default=None, kw_only=True)
    clock: Clock | None = attrs.field(default=None, kw_only=True)

    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _balance: float = attrs.field(default=0.0, init=False, repr=False)
    _updated: float | None = attrs.field(default=None, init=False, repr=False)
    _calls: int = attrs.field(default=0, init=False, repr=False)
    _retries: int = attrs.field(default=0, init=False, repr=False)
    _refused: int = attrs.field(default=0, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check("ratio", self.ratio, minimum=0.0, inclusive=True)
        _check("min_per_second", self.min_per_second, minimum=0.0, inclusive=True)
        _check("ttl", self.ttl, minimum=0.0, inclusive=False)
        if self.initial is not None:
            _check("initial", self.initial, minimum=0.0, inclusive=True)
        self._balance = self.min_per_second if self.initial is None else float(self.initial)

    @property
    def _capacity(self) -> float:
        return max(1.0, (self.min_per_second + self.ratio) * self.ttl)

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            gained = (now - self._updated) * self.min_per_second
            self._balance = min(self._capacity, self._balance + gained)
        self._updated = now

    def deposit(self) -> None:
        """Record one call (``retry_with_backoff`` does this for you)."""
        now = resolve_clock(self.clock).monotonic()
        with self._lock:
            self._refill(now)
            self._calls += 1
            self._balance = min(self._capacity, self._balance + self.ratio)

    def try_spend(self) -> bool:
        """Take one retry from the budget; ``False`` when it is empty."""
        now = resolve_clock(self.clock).monotonic()
        with self._lock:
            self._refill(now)
            if self._balance >= 1.0:
                self._balance -= 1.0
                self._retries += 1
                return True
            self._refused += 1
            return False

    def statistics(self) -> RetryBudgetStatistics:
        """A frozen snapshot of the balance and counters."""
        now = resolve_clock(self.clock).monotonic()
        with self._lock:
            self._refill(now)
            return RetryBudgetStatistics(self._balance, self._calls, self._retries, self._refused)
