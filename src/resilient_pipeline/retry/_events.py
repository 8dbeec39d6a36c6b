"""The events a retried call emits."""

from __future__ import annotations

import logging

import attrs

from resilient_pipeline._core import Event

__all__ = ["CallFinished", "RetryExhausted", "RetryScheduled", "RetrySucceeded"]


@attrs.frozen(kw_only=True)
class RetryScheduled(Event):
    """An attempt failed and another one will start after ``delay`` seconds.

    Attributes:
        attempt: The number of the attempt that failed (1-based).
        delay: Seconds until the next attempt.
        error: What went wrong, secrets masked.
        retry_after: The server-given delay that was honoured, if any.
    """

    logger_name = "resilient_pipeline.retry"
    level = logging.WARNING
    template = "{source}: attempt {attempt} failed ({error}); retrying in {delay:.2f} s"

    attempt: int
    delay: float
    error: str
    retry_after: float | None


@attrs.frozen(kw_only=True)
class RetrySucceeded(Event):
    """A call succeeded after at least one retry.

    Attributes:
        attempts: How many attempts it took.
        elapsed: Seconds from the first failure (or first attempt, with a deadline).
    """

    logger_name = "resilient_pipeline.retry"
    level = logging.INFO
    template = "{source}: succeeded on attempt {attempts} after {elapsed:.2f} s"

    attempts: int
    elapsed: float


@attrs.frozen(kw_only=True)
class RetryExhausted(Event):
    """Retrying stopped and the call failed.

    Attributes:
        attempts: How many attempts were made.
        elapsed: Seconds spent.
        reason: Why it stopped: ``"attempts"``, ``"deadline"``,
            ``"retry_after_exceeds_deadline"``, ``"retry_after_exceeds_max_delay"``,
            ``"budget"``, ``"rejected"``, ``"not_retryable"`` or ``"predicate_failed"``
            (a ``retry_if``, ``retry_on_result`` or ``retry_after`` predicate raised).
        error: The last failure, secrets masked.
    """

    logger_name = "resilient_pipeline.retry"
    level = logging.ERROR
    template = (
        "{source}: gave up after {attempts} attempt(s) in {elapsed:.2f} s ({reason}): {error}"
    )

    attempts: int
    elapsed: float
    reason: str
    error: str


@attrs.frozen(kw_only=True)
class CallFinished(Event):
    """A retried call ended, first try or not: the event call-duration metrics read.

    Emitted only while someone listens (a handler passed as ``on_event`` or
    one added with ``subscribe``), so an unobserved call's fast path stays a
    plain function call. Logged at ``DEBUG``.

    Attributes:
        attempts: How many attempts were made.
        elapsed: Seconds from the first attempt's start to the end.
        outcome: ``"success"`` or ``"failure"``.

    Examples:
        >>> CallFinished(source="fetch", attempts=2, elapsed=0.25, outcome="success").message()
        'fetch: success after 2 attempt(s) in 0.250 s'
    """

    logger_name = "resilient_pipeline.retry"
    level = logging.DEBUG
    template = "{source}: {outcome} after {attempts} attempt(s) in {elapsed:.3f} s"

    attempts: int
    elapsed: float
    outcome: str
