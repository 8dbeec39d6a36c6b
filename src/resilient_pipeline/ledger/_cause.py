"""The root cause of a failed partition: the upstream's error, not the rejection that followed.

A fetch wrapped in retry and a circuit breaker often ends with the breaker's
``CircuitOpenError`` (or a retry deadline) after the upstream answered 503
three times. The ledger keeps the 503: :class:`Trace` watches the fetch
function itself, and :func:`root_cause` picks the error that explains the
failure.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator

import attrs

from resilient_pipeline._core import describe_error
from resilient_pipeline.exceptions import CircuitOpenError, RejectedError

__all__ = ["Cause", "Trace", "error_class", "root_cause"]


@attrs.define
class Trace:
    """What the fetch function itself did for one partition in one claim."""

    calls: int = 0
    error: BaseException | None = None
    error_at: float | None = None

    def ran(self) -> None:
        self.calls += 1

    def failed(self, error: BaseException, at: float) -> None:
        self.error, self.error_at = error, at

    def rejected(self) -> None:
        # A breaker (or limiter) inside the fetch refused the call: it never reached upstream.
        self.calls -= 1

    def succeeded(self) -> None:
        # A later failure (the write) is not explained by an earlier fetch error.
        self.error = self.error_at = None


@attrs.frozen
class Cause:
    """The error to record for a failure, and whether the failure counts as an attempt."""

    error: str
    error_class: str
    at: float
    counted: bool
    bare: bool = False  # only the rejection itself is known: an earlier recorded cause is better


def error_class(error: BaseException) -> str:
    """``module.QualName`` of ``error``'s type (no module for builtins).

    Examples:
        >>> error_class(ConnectionError()), error_class(CircuitOpenError("x"))
        ('ConnectionError', 'resilient_pipeline.exceptions.CircuitOpenError')
    """
    kind = type(error)
    if kind.__module__ == builtins.__name__:
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def root_cause(
    final: BaseException,
    trace: Trace,
    *,
    now: float,
    run_last: tuple[BaseException, float] | None = None,
) -> Cause:
    """The error to record for a partition whose collection raised ``final``.

    * ``final`` came from the fetch itself, or from writing: it is the cause;
    * the fetch failed, then something *because of it* stopped the call (a
      breaker's rejection, a retry deadline, a timeout): the fetch's last error;
    * the fetch never ran (the circuit was already open): an upstream error in
      ``final``'s chain, else the failure that opened *that* circuit
      (:attr:`~resilient_pipeline.exceptions.CircuitOpenError.opened_by`: for a
      keyed breaker, that key's failure) unless the partition already recorded
      an error of its own, else the last upstream error of this run, noted as
      such; and it is not an attempt.

    Examples:
        >>> trace = Trace()
        >>> trace.ran(); trace.failed(ConnectionError("503 from api"), 5.0)
        >>> cause = root_cause(CircuitOpenError("api"), trace, now=9.0)
        >>> cause.error, cause.at, cause.counted
        ('ConnectionError: 503 from api', 5.0, True)
        >>> rejected = CircuitOpenError("api")
        >>> rejected.trip_cause = ("TimeoutError: timed out", "TimeoutError", 8.0)
        >>> cause = root_cause(rejected, Trace(), now=9.0, run_last=(OSError("other"), 7.0))
        >>> cause.error
        "TimeoutError: timed out (not attempted: CircuitOpenError: circuit 'api' is open)"
        >>> cause.error_class, cause.at, cause.counted
        ('TimeoutError', 8.0, False)
    """
    counted = trace.calls > 0
    if trace.error is not None and final is not trace.error:
        chosen, at = trace.error, trace.error_at if trace.error_at is not None else now
        return Cause(describe_error(chosen), error_class(chosen), at, counted)
    if not isinstance(final, RejectedError):
        return Cause(describe_error(final), error_class(final), trace.error_at or now, counted)
    rejections = []
    for error in _chain(final):
        if not isinstance(error, RejectedError):
            return Cause(describe_error(error), error_class(error), now, counted)
        rejections.append(error)
    for error in rejections:
        # The breaker's own record of what opened it beats the run's last error,
        # which may be another partition's (another key's breaker).
        trip = error.trip_cause if isinstance(error, CircuitOpenError) else None
        if trip is not None:
            text = f"{trip[0]} (not attempted: {describe_error(final)})"
            # bare: an error this partition recorded itself (an earlier run) still explains more.
            return Cause(text, trip[1], trip[2], counted, bare=True)
    if run_last is not None and isinstance(final, CircuitOpenError):
        upstream, at = run_last
        text = f"{describe_error(upstream)} (not attempted: {describe_error(final)})"
        return Cause(text, error_class(upstream), at, counted)
    return Cause(describe_error(final), error_class(final), now, counted, bare=True)
