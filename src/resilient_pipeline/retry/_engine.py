"""The pure core of a retried call: told how an attempt ended, it decides what happens next.

It never sleeps and never calls the user's function: it answers "sleep this
long, then try again" or "stop". The sync and async drivers in
``_decorator.py`` act on that answer.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from resilient_pipeline._core import (
    DEADLINE,
    OBSERVED,
    add_note,
    describe_error,
    emit,
    remaining_time,
    resolve_clock,
    tightened,
)
from resilient_pipeline.exceptions import BadResultError, RejectedError, RetryPredicateError

from ._events import CallFinished, RetryExhausted, RetryScheduled, RetrySucceeded

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._policy import RetryPolicy

__all__ = ["NO_RESULT", "Call"]


class _NoResult:
    __slots__ = ()


NO_RESULT: Any = _NoResult()


class Call:
    """The per-call state of one retried call: decides the next action, never sleeps."""

    __slots__ = (
        "attempt_at",
        "attempt_started",
        "attempts",
        "cancel",
        "clock",
        "deadline_at",
        "handlers",
        "history",
        "policy",
        "previous_delay",
        "reason",
        "reason_code",
        "source",
        "started",
        "timed_out",
    )

    def __init__(self, policy: RetryPolicy, source: str, *, timed: bool) -> None:
        self.policy = policy
        self.source = source
        self.clock = clock = resolve_clock(policy.clock)
        self.handlers = policy.on_event
        self.attempts = 0
        self.previous_delay = policy.base_delay
        # (description, attempt duration, delay or None); formatted only for a note
        self.history: list[tuple[str, float, float | None]] = []
        self.reason = ""
        self.reason_code = ""
        self.timed_out = False  # set by the async driver when attempt_timeout cancelled an attempt
        self.cancel = True  # async attempts run in a cancel scope bounded by their deadline
        now = clock.monotonic()
        self.started = now
        self.attempt_started: float | None = now if timed else None
        self.attempt_at: float | None = None  # when the running attempt must end, if ever
        deadline_at = None if policy.deadline is None else now + policy.deadline
        inherited = remaining_time()
        if inherited is not None and (deadline_at is None or now + inherited < deadline_at):
            deadline_at = now + inherited
        self.deadline_at = deadline_at
        if policy.budget is not None:
            policy.budget.deposit()

    # -- attempts -----------------------------------------------------------
    def begin(self) -> object:
        """Mark an attempt's start and when it must end; open its deadline scope if any."""
        self.attempt_started = now = self.clock.monotonic()
        timeout = self.policy.attempt_timeout
        at = self.deadline_at
        if timeout is not None:
            at = now + timeout if at is None else min(now + timeout, at)
        self.attempt_at = at
        return None if at is None else DEADLINE.set(tightened(self.clock, at))

    def end(self, token: object) -> None:
        if token is not None:
            DEADLINE.reset(token)  # type: ignore[arg-type]

    # -- decisions ----------------------------------------------------------
    def next_delay(self, error: Exception | None, result: object) -> float | None:
        """Record a failed attempt; seconds to sleep before the next one, or ``None`` to stop."""
        policy = self.policy
        now = self.clock.monotonic()
        self.attempts += 1
        duration = 0.0 if self.attempt_started is None else now - self.attempt_started
        what = describe_error(error) if error is not None else _describe_result(result)
        self.history.append((what, duration, None))

        timed_out, self.timed_out = self.timed_out, False
        if error is not None and not timed_out:
            try:
                retryable = policy.retryable(error)
            except Exception as exc:
                raise self.predicate_failed("retry_if", exc, error, result) from exc
            if not retryable:
                self._stop("not_retryable")
                return None
        if self.attempts >= policy.max_attempts:
            self._stop("attempts")
            return None

        extract = policy.retry_after
        hint = None if extract is None else self._hint(extract, error, result)
        rejected = isinstance(error, RejectedError)
        if rejected and (hint is None or self.deadline_at is None):
            # A refusal (open circuit, full bulkhead) is only worth waiting out
            # when we know how long to wait and have a budget to wait in.
            self._stop("rejected")
            return None
        if hint is not None and hint > policy.max_delay and not rejected:
            self._stop("retry_after_exceeds_max_delay", hint=hint)
            return None

        delay = hint if rejected and hint is not None else self._jittered(hint)
        if self.deadline_at is not None:
            remaining = self.deadline_at - now
            if hint is not None and hint >= remaining:
                self._stop("retry_after_exceeds_deadline", hint=hint, remaining=remaining)
                return None
            # Leave the next attempt as long to run as the last one took.
            room = remaining - duration
            if delay > room:
                delay = room if hint is None else max(hint, room)
            if remaining <= 0 or delay < 0 or delay >= remaining:
                self._stop("deadline", remaining=remaining)
                return None
        if policy.budget is not None and not policy.budget.try_spend():
            self._stop("budget")
            return None

        self.history[-1] = (what, duration, delay)
        emit(
            RetryScheduled(
                source=self.source,
                attempt=self.attempts,
                delay=delay,
                error=what,
                retry_after=hint,
            ),
            self.handlers,
        )
        return delay

    # -- predicates -----------------------------------------------------------
    def rejects(self, result: object) -> bool:
        """Whether ``retry_on_result`` rejects the result of the attempt that just ended."""
        check = self.policy.retry_on_result
        if check is None:
            return False
        try:
            return bool(check(result))
        except Exception as exc:
            raise self.result_check_failed(exc, result) from exc

    def result_check_failed(self, exc: Exception, result: object) -> RetryPredicateError:
        """:meth:`predicate_failed` for ``retry_on_result``, judging the attempt that just ended."""
        self.attempts += 1  # counted as next_delay() would have counted it
        return self.predicate_failed("retry_on_result", exc, None, result)

    def _hint(
        self, extract: Callable[[object], float | None], error: Exception | None, result: object
    ) -> float | None:
        """The server-given delay ``retry_after`` reads from the outcome, checked."""
        try:
            hint: object = extract(error if error is not None else result)  # checked below
        except Exception as exc:
            raise self.predicate_failed("retry_after", exc, error, result) from exc
        if hint is None or (
            isinstance(hint, (int, float))
            and not isinstance(hint, bool)
            and not math.isnan(hint)
            and hint >= 0
        ):
            return hint
        shown = repr(hint) if isinstance(hint, (int, float)) else f"a {type(hint).__qualname__}"
        raise self.predicate_failed(
            "retry_after",
            None,
            error,
            result,
            returned=f"returned {shown}, not None or seconds >= 0",
        )

    def predicate_failed(
        self,
        option: str,
        exc: Exception | None,
        error: Exception | None,
        result: object,
        *,
        returned: str = "",
    ) -> RetryPredicateError:
        """The error to raise, chained ``from exc``, when predicate ``option`` failed.

        ``exc`` is what the predicate raised (``None`` when it returned
        nonsense, described by ``returned``). Retrying stops: nothing is
        retried after a predicate failed. ``error`` (the attempt's exception)
        is attached to the new error and appended to ``exc``'s context chain,
        where Python would have put it had the predicate run in its handler.
        """
        predicate = getattr(self.policy, option)
        name = getattr(predicate, "__qualname__", None) or type(predicate).__qualname__
        what = f"raised {describe_error(exc)}" if exc is not None else returned
        judged = (
            f"attempt {self.attempts} ({describe_error(error)})"
            if error is not None
            else f"the result of attempt {self.attempts} (a {type(result).__qualname__})"
        )
        failure = RetryPredicateError(
            f"{self.source}: {option} predicate {name} {what} while judging {judged}; "
            "the call is not retried",
            option=option,
            predicate=name,
            error=error,
            attempts=self.attempts,
        )
        if exc is not None and error is not None:
            _chain(exc, error)
        if self.history:
            add_note(failure, "\n".join(self._attempt_lines()))
        self.reason, self.reason_code = f"{option} failed", "predicate_failed"
        self.finished(self.attempts, "failure")
        emit(
            RetryExhausted(
                source=self.source,
                attempts=self.attempts,
                elapsed=self.clock.monotonic() - self.started,
                reason="predicate_failed",
                error=describe_error(failure),
            ),
            self.handlers,
        )
        return failure

    def _jittered(self, hint: float | None) -> float:
        policy = self.policy
        capped = policy.backoff(self.attempts)
        jitter = policy.jitter
        uniform = (policy.rng or random).uniform
        if jitter is None:
            delay: float = capped
        elif jitter == "full":
            delay = uniform(0.0, capped)
        elif jitter == "equal":
            delay = capped / 2 + uniform(0.0, capped / 2)
        else:  # decorrelated
            high = min(policy.max_delay, self.previous_delay * 3)
            delay = uniform(min(policy.base_delay, high), high)
        self.previous_delay = max(delay, policy.base_delay)
        if hint is None:
            return delay
        # The server's delay is a floor; jitter only spreads callers out above it.
        return min(policy.max_delay, hint + delay if jitter is not None else max(hint, delay))

    def _stop(
        self, reason: str, *, hint: float | None = None, remaining: float | None = None
    ) -> None:
        """Record why retrying stops."""
        policy = self.policy
        explanations = {
            "not_retryable": "the error is not retryable",
            "attempts": f"max_attempts={policy.max_attempts} reached",
            "rejected": "the call was rejected and no deadline leaves room to wait",
            "retry_after_exceeds_max_delay": (
                f"the server asked to wait {hint} s, more than max_delay={policy.max_delay} s"
            ),
            "retry_after_exceeds_deadline": (
                f"the server asked to wait {hint} s but only {remaining or 0:.3f} s "
                "remain before the deadline"
            ),
            "deadline": f"the deadline leaves no room for another attempt "
            f"({max(remaining or 0, 0):.3f} s left)",
            "budget": (
                f"retry budget exhausted: retries are limited to {policy.budget.ratio:.0%} of calls"
                if policy.budget is not None
                else ""
            ),
        }
        self.reason = explanations[reason]
        self.reason_code = reason

    # -- endings ------------------------------------------------------------
    def finished(self, attempts: int, outcome: str) -> None:
        """Announce the end of the call, when anyone listens (metrics read it)."""
        if self.handlers or OBSERVED:
            emit(
                CallFinished(
                    source=self.source,
                    attempts=attempts,
                    elapsed=self.clock.monotonic() - self.started,
                    outcome=outcome,
                ),
                self.handlers,
            )

    def succeeded(self) -> None:
        if self.attempts:
            emit(
                RetrySucceeded(
                    source=self.source,
                    attempts=self.attempts + 1,
                    elapsed=self.clock.monotonic() - self.started,
                ),
                self.handlers,
            )
        self.finished(self.attempts + 1, "success")

    def _attempt_lines(self) -> list[str]:
        lines = []
        for number, (what, duration, delay) in enumerate(self.history, start=1):
            line = f"attempt {number}: {what} (after {duration:.3f} s)"
            lines.append(line if delay is None else f"{line}; retrying in {delay:.3f} s")
        return lines

    def give_up(self, error: Exception | None, result: object) -> Exception:
        """The exception to raise now that retrying stopped, noted and announced."""
        code = self.reason_code
        elapsed = self.clock.monotonic() - self.started
        if code != "not_retryable" or self.attempts > 1:
            emit(
                RetryExhausted(
                    source=self.source,
                    attempts=self.attempts,
                    elapsed=elapsed,
                    reason=code,
                    error=self.history[-1][0],
                ),
                self.handlers,
            )
        self.finished(self.attempts, "failure")
        summary = (
            f"{self.source}: gave up after {self.attempts} attempt(s) in {elapsed:.3f} s "
            f"({self.reason})"
        )
        if error is None:
            failure = BadResultError(
                f"{summary}: retry_on_result rejected every result",
                result=result,
                attempts=self.attempts,
            )
            add_note(failure, "\n".join(self._attempt_lines()))
            return failure
        if code == "not_retryable" and self.attempts == 1:
            return error
        add_note(error, "\n".join([summary, *self._attempt_lines()]))
        if code == "budget":
            add_note(error, self.reason)
        return error


def _chain(exc: BaseException, error: BaseException) -> None:
    """Put ``error`` at the end of ``exc``'s ``__context__`` chain, unless it is already in it."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if link is error:
            return
        seen.add(id(link))
        if link.__context__ is None:
            break
        link = link.__context__
    else:
        return  # a cycle: leave it alone
    below: BaseException | None = error
    while below is not None and id(below) not in seen:  # never close a loop through error
        seen.add(id(below))
        below = below.__context__
    if below is None and link is not None:
        link.__context__ = error


def _describe_result(result: object) -> str:
    return f"retry_on_result rejected a {type(result).__qualname__} result"
