"""The events a retried call emits."""

from __future__ import annotations

import logging

import attrs

from resilient_pipeline._core import Event

__all__ = ["RetryExhausted", "RetryScheduled", "RetrySucceeded"]


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
