"""Circuit breaker policies: frozen values saying when to trip, how long to stay open, how to probe.

Each policy is validated when it is built and changed with :func:`attrs.evolve`.
The state machine in ``_breaker.py`` and the Redis scripts both read them.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from typing import Any, TypeAlias

import attrs

from resilient_pipeline._core import callable_or_none, exception_types, integer, number
from resilient_pipeline.exceptions import ConfigurationError

__all__ = [
    "BreakerConfig",
    "ConsecutiveFailures",
    "FailureRate",
    "HalfOpen",
    "OpenDuration",
    "TripPolicy",
]


@attrs.frozen(kw_only=True)
class ConsecutiveFailures:
    """Trip after ``threshold`` failures in a row; any success resets the count.

    Examples:
        >>> ConsecutiveFailures(threshold=3)
        ConsecutiveFailures(threshold=3)
    """

    threshold: int = 5

    def __attrs_post_init__(self) -> None:
        integer(ge=1).check("threshold", self.threshold)


@attrs.frozen(kw_only=True)
class FailureRate:
    """Trip when the failure rate over a sliding window reaches ``threshold``.

    The window counts either the last ``window_calls`` calls (the default,
    100) or the calls of the last ``window_seconds`` seconds. Nothing trips
    before the window holds ``minimum_calls`` calls, so one failure out of
    one call does not open the circuit. With ``slow_call_duration``, a call
    that succeeds but takes longer counts as a failure too: an upstream that
    answers in 30 s is as good as down for a pipeline.

    Examples:
        >>> FailureRate(threshold=0.5, window_seconds=60, minimum_calls=20).window_seconds
        60
    """

    threshold: float = 0.5
    window_calls: int | None = None
    window_seconds: float | None = None
    minimum_calls: int = 10
    slow_call_duration: float | None = None

    def __attrs_post_init__(self) -> None:
        number(ge=0, le=1).check("threshold", self.threshold)
        if self.threshold == 0:
            raise ConfigurationError.for_option("threshold", 0, "must be a rate in (0, 1]")
        if self.window_calls is not None and self.window_seconds is not None:
            raise ConfigurationError.for_option(
                "window_seconds",
                self.window_seconds,
                "give window_calls or window_seconds, not both",
            )
        if self.window_seconds is None:
            if self.window_calls is None:
                object.__setattr__(self, "window_calls", 100)
            integer(ge=1).check("window_calls", self.window_calls)
        else:
            number(gt=0, finite=True).check("window_seconds", self.window_seconds)
        integer(ge=1).check("minimum_calls", self.minimum_calls)
        if self.window_calls is not None and self.minimum_calls > self.window_calls:
            raise ConfigurationError.for_option(
                "minimum_calls",
                self.minimum_calls,
                f"exceeds window_calls={self.window_calls}; the circuit could never trip",
            )
        number(gt=0, finite=True, optional=True).check(
            "slow_call_duration", self.slow_call_duration
        )


TripPolicy: TypeAlias = ConsecutiveFailures | FailureRate
"""When a closed circuit opens."""


@attrs.frozen(kw_only=True)
class OpenDuration:
    """How long the circuit stays open: fixed, or growing with each re-opening.

    The n-th opening in a row (a failed probe re-opens; closing resets n)
    lasts ``seconds * multiplier ** (n - 1)``, capped at ``max_seconds``
    (default: 600 s, or ``seconds`` when that is longer), then
    shortened by up to ``jitter`` (a fraction) so that many workers do not
    probe at the same instant. A failure that carries a retry-after hint
    (a 429 with ``Retry-After``) keeps the circuit open at least that long.

    Examples:
        >>> growing = OpenDuration(seconds=10, multiplier=2, max_seconds=60)
        >>> [growing.duration(n) for n in (1, 2, 3, 4)]
        [10.0, 20.0, 40.0, 60.0]
    """

    seconds: float = 60.0
    multiplier: float = 1.0
    max_seconds: float | None = None
    jitter: float = 0.0

    def __attrs_post_init__(self) -> None:
        number(ge=0, finite=True).check("seconds", self.seconds)
        number(ge=1, le=sys.float_info.max).check("multiplier", self.multiplier)
        if self.max_seconds is None:
            object.__setattr__(self, "max_seconds", max(600.0, float(self.seconds)))
        number(ge=0, finite=True).check("max_seconds", self.max_seconds)
        if self.cap < self.seconds:
            raise ConfigurationError.for_option(
                "max_seconds", self.max_seconds, f"is shorter than seconds={self.seconds!r}"
            )
        number(ge=0, le=1).check("jitter", self.jitter)

    @property
    def cap(self) -> float:
        """The longest an opening lasts, before jitter."""
        return float(self.max_seconds or 0.0)

    def duration(self, opening: int, draw: float = 1.0) -> float:
        """Seconds open for the ``opening``-th opening in a row; ``draw`` in [0, 1] is the jitter.

        Examples:
            >>> OpenDuration(seconds=10, jitter=0.5).duration(1, draw=0.0)
            5.0
        """
        try:
            raw = self.seconds * self.multiplier ** (opening - 1)
        except OverflowError:
            raw = math.inf
        capped = float(min(raw, self.cap))
        return capped * (1.0 - self.jitter * (1.0 - draw))


@attrs.frozen(kw_only=True)
class HalfOpen:
    """How a half-open circuit probes the upstream.

    ``permits`` calls may run at once as trials; every other caller is
    rejected at once (never queued, never let through). ``success_threshold``
    successful trials close the circuit; one failed trial re-opens it. A
    permit is a lease: a trial that has not reported after ``permit_ttl``
    seconds (its worker died or hung) frees its slot and its late result is
    ignored. With ``max_duration``, a circuit still half-open after that long
    re-opens.

    Examples:
        >>> HalfOpen(permits=2, success_threshold=3).permits
        2
    """

    permits: int = 1
    success_threshold: int = 1
    permit_ttl: float = 60.0
    max_duration: float | None = None

    def __attrs_post_init__(self) -> None:
        integer(ge=1).check("permits", self.permits)
        integer(ge=1).check("success_threshold", self.success_threshold)
        number(gt=0, finite=True).check("permit_ttl", self.permit_ttl)
        number(gt=0, finite=True, optional=True).check("max_duration", self.max_duration)


def _trip(value: object) -> TripPolicy:
    if not isinstance(value, (ConsecutiveFailures, FailureRate)):
        raise ConfigurationError.for_option(
            "trip", value, "must be ConsecutiveFailures(...) or FailureRate(...)"
        )
    return value


@attrs.frozen(kw_only=True)
class BreakerConfig:
    """Everything that decides a breaker's behaviour, in one frozen value stores can share.

    Built by :class:`~resilient_pipeline.CircuitBreaker` from its options;
    see there for what each one means.

    Examples:
        >>> BreakerConfig(trip=ConsecutiveFailures(threshold=3)).trip.threshold
        3
    """

    trip: TripPolicy = attrs.field(factory=ConsecutiveFailures, validator=lambda _, __, v: _trip(v))
    open_duration: OpenDuration = attrs.field(factory=OpenDuration)
    half_open: HalfOpen = attrs.field(factory=HalfOpen)
    failure_on: type[Exception] | tuple[type[Exception], ...] = Exception
    ignore: type[Exception] | tuple[type[Exception], ...] = ()
    failure_if: Callable[[Exception], bool] | None = None
    failure_on_result: Callable[[Any], bool] | None = None
    retry_after: Callable[[object], float | None] | None = None
    rng: random.Random | None = attrs.field(default=None, repr=False, eq=False)

    _failure_types: tuple[type[BaseException], ...] = attrs.field(init=False, repr=False, eq=False)
    _ignore_types: tuple[type[BaseException], ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.open_duration, OpenDuration):
            raise ConfigurationError.for_option(
                "open_duration", self.open_duration, "must be an OpenDuration(...)"
            )
        if not isinstance(self.half_open, HalfOpen):
            raise ConfigurationError.for_option(
                "half_open", self.half_open, "must be a HalfOpen(...)"
            )
        types = exception_types().types
        object.__setattr__(self, "_failure_types", types("failure_on", self.failure_on))
        object.__setattr__(self, "_ignore_types", types("ignore", self.ignore))
        for option in ("failure_if", "failure_on_result", "retry_after"):
            callable_or_none().check(option, getattr(self, option))

    @property
    def slow_call_duration(self) -> float | None:
        """Calls slower than this count as failures (``FailureRate`` only)."""
        trip = self.trip
        return trip.slow_call_duration if isinstance(trip, FailureRate) else None

    def open_for(self, opening: int, hint: float | None) -> float:
        """Seconds to stay open for the ``opening``-th opening in a row, honouring ``hint``."""
        draw = (self.rng or random).random() if self.open_duration.jitter else 1.0
        seconds = self.open_duration.duration(opening, draw)
        return seconds if hint is None else max(seconds, hint)
