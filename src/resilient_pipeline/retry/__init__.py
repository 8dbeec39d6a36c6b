"""Retrying transient failures: exponential backoff with jitter, deadlines, ``Retry-After``.

``retry_with_backoff`` decorates sync and async functions; ``retrying`` is the
block form; ``RetryPolicy`` is the frozen, reusable value behind both;
``RetryBudget`` caps retries across calls. Events trace every attempt.

Examples:
    >>> from resilient_pipeline.retry import retry_with_backoff
    >>> @retry_with_backoff(max_attempts=3, deadline=30.0)
    ... def fetch() -> str:
    ...     return "ok"
    >>> fetch()
    'ok'
"""

from __future__ import annotations

from resilient_pipeline._core import default_retry_after, parse_retry_after

from ._api import retry_with_backoff, retrying
from ._budget import RetryBudget, RetryBudgetStatistics
from ._decorator import Attempt, Retrying, aresume, decorate, resume
from ._events import CallFinished, RetryExhausted, RetryScheduled, RetrySucceeded
from ._policy import Jitter, RetryAfterExtractor, RetryOptions, RetryPolicy

__all__ = [
    "Attempt",
    "CallFinished",
    "Jitter",
    "RetryAfterExtractor",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryExhausted",
    "RetryOptions",
    "RetryPolicy",
    "RetryScheduled",
    "RetrySucceeded",
    "Retrying",
    "aresume",
    "decorate",
    "default_retry_after",
    "parse_retry_after",
    "resume",
    "retry_with_backoff",
    "retrying",
]
