"""The retry policy, its events, and the pure core that decides what happens next.

The core (:class:`_Call`) never sleeps and never calls the user's function: it
is told how an attempt ended and answers "sleep this long, then try again" or
"stop". The sync and async drivers in ``_retrying.py`` act on that answer.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar, overload

import attrs
from typing_extensions import ParamSpec, TypedDict

from . import _deadline
from ._budget import RetryBudget
from ._clock import resolve_clock
from ._events import Event, emit, normalize_handlers
from ._redact import describe_error
from ._retry_after import default_retry_after
from .exceptions import (
    BadResultError,
    ConfigurationError,
    InvalidBatchError,
    MissingDependencyError,
    RejectedError,
    StoreError,
    TransientStoreError,
    UnitOfWorkError,
    ValidationError,
)
from .typing import Clock, EventHandler, RetryAfterExtractor

if TYPE_CHECKING:
    from ._retrying import Retrying

__all__ = [
    "Jitter",
    "RetryExhausted",
    "RetryOptions",
    "RetryPolicy",
    "RetryScheduled",
    "RetrySucceeded",
]

P = ParamSpec("P")
T = TypeVar("T")

Jitter: TypeAlias = Literal["full", "equal", "decorrelated"]
_JITTERS = ("full", "equal", "decorrelated", None)

# Library errors that say "the input or the set-up is wrong": the same call would
# fail the same way, so they are never retried. A database error is retried only
# when the store classified it as transient.
_NEVER_RETRIED: tuple[type[Exception], ...] = (
    ConfigurationError,
    MissingDependencyError,
    InvalidBatchError,
    UnitOfWorkError,
    ValidationError,
)


def _deterministic(error: Exception) -> bool:
    if isinstance(error, _NEVER_RETRIED):
        return True
    return isinstance(error, StoreError) and not isinstance(error, TransientStoreError)


# --------------------------------------------------------------------- events
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
            ``"budget"``, ``"rejected"`` or ``"not_retryable"``.
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


# --------------------------------------------------------------------- policy
def _number(option: str, value: object, *, minimum: float, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigurationError.for_option(option, value, "must be a number")
    if value < minimum or (strict and value == minimum):
        raise ConfigurationError.for_option(
            option, value, f"must be {'>' if strict else '>='} {minimum}"
        )


def _exception_types(value: object) -> tuple[type[Exception], ...]:
    types = value if isinstance(value, tuple) else (value,)
    for kind in types:
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            raise ConfigurationError.for_option(
                "retry_on",
                value,
                "must be an Exception subclass or a tuple of them "
                "(BaseException-only types such as cancellation are never retried)",
            )
    return types


def _optional_callable(option: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError.for_option(option, value, "must be callable or None")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How to retry: a frozen, reusable value; also a decorator.

    Every option is validated when the policy is built and a bad one raises
    :class:`~resilient_pipeline.exceptions.ConfigurationError` naming it.
    Change a policy with :func:`attrs.evolve`. See :func:`retry_with_backoff`
    for what each option means.

    Example:
        >>> import attrs
        >>> fast = RetryPolicy(max_attempts=5, base_delay=0.1, jitter=None)
        >>> [fast.backoff(k) for k in (1, 2, 3)]
        [0.1, 0.2, 0.4]
        >>> attrs.evolve(fast, max_attempts=2).max_attempts
        2
    """

    max_attempts: int = 3
    base_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: Jitter | None = "full"
    deadline: float | None = None
    retry_on: type[Exception] | tuple[type[Exception], ...] = Exception
    retry_if: Callable[[Exception], bool] | None = None
    retry_on_result: Callable[[Any], bool] | None = None
    retry_after: RetryAfterExtractor | None = default_retry_after
    attempt_timeout: float | None = None
    budget: RetryBudget | None = None
    clock: Clock | None = None
    rng: random.Random | None = attrs.field(default=None, repr=False)
    name: str | None = None
    on_event: tuple[EventHandler, ...] = attrs.field(default=(), converter=normalize_handlers)

    _retry_types: tuple[type[Exception], ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ConfigurationError.for_option("max_attempts", self.max_attempts, "must be an int")
        if self.max_attempts < 1:
            raise ConfigurationError.for_option("max_attempts", self.max_attempts, "must be >= 1")
        _number("base_delay", self.base_delay, minimum=0)
        _number("multiplier", self.multiplier, minimum=1)
        _number("max_delay", self.max_delay, minimum=0)
        if self.jitter not in _JITTERS:
            raise ConfigurationError.for_option(
                "jitter", self.jitter, "must be 'full', 'equal', 'decorrelated' or None"
            )
        for option in ("deadline", "attempt_timeout"):
            value = getattr(self, option)
            if value is not None:
                _number(option, value, minimum=0, strict=True)
        if (
            self.deadline is not None
            and self.attempt_timeout is not None
            and self.attempt_timeout > self.deadline
        ):
            raise ConfigurationError.for_option(
                "attempt_timeout",
                self.attempt_timeout,
                f"is longer than deadline={self.deadline!r}; an attempt could never use it",
            )
        object.__setattr__(self, "_retry_types", _exception_types(self.retry_on))
        for option in ("retry_if", "retry_on_result", "retry_after"):
            _optional_callable(option, getattr(self, option))
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            raise ConfigurationError.for_option("budget", self.budget, "must be a RetryBudget")
        if self.name is not None and not isinstance(self.name, str):
            raise ConfigurationError.for_option("name", self.name, "must be a str")

    def backoff(self, attempt: int) -> float:
        """The un-jittered delay after failed attempt number ``attempt`` (1-based), capped.

        Example:
            >>> RetryPolicy(base_delay=1, multiplier=2, max_delay=5).backoff(4)
            5
        """
        try:
            raw = self.base_delay * self.multiplier ** (attempt - 1)
        except OverflowError:
            raw = math.inf
        return min(raw, self.max_delay)

    def retryable(self, error: Exception) -> bool:
        """Whether ``error`` may be retried: ``retry_on`` and ``retry_if`` agree, and it is not
        one of the library's deterministic errors (bad configuration or input, a
        database error that is not a ``TransientStoreError``).

        Example:
            >>> RetryPolicy(retry_on=OSError).retryable(ConnectionError())
            True
            >>> RetryPolicy(retry_on=OSError).retryable(KeyError())
            False
        """
        if not isinstance(error, self._retry_types) or _deterministic(error):
            return False
        return self.retry_if is None or bool(self.retry_if(error))

    @overload
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]: ...
    @overload
    def __call__(self, fn: None = None, /) -> Callable[[Callable[P, T]], Callable[P, T]]: ...
    def __call__(self, fn: Callable[P, T] | None = None, /) -> Any:
        """Decorate ``fn`` (sync or async) with this policy."""
        from ._retrying import decorate

        return decorate(self, fn) if fn is not None else (lambda f: decorate(self, f))

    def retrying(self) -> Retrying:
        """The block form: ``for attempt in policy.retrying(): with attempt: ...``."""
        from ._retrying import Retrying

        return Retrying(self)


# ----------------------------------------------------------------------- core
class RetryOptions(TypedDict, total=False):
    """The keyword options of :func:`retry_with_backoff` (see :class:`RetryPolicy`)."""

    max_attempts: int
    base_delay: float
    multiplier: float
    max_delay: float
    jitter: Jitter | None
    deadline: float | None
    retry_on: type[Exception] | tuple[type[Exception], ...]
    retry_if: Callable[[Exception], bool] | None
    retry_on_result: Callable[[Any], bool] | None
    retry_after: RetryAfterExtractor | None
    attempt_timeout: float | None
    budget: RetryBudget | None
    clock: Clock | None
    rng: random.Random | None
    name: str | None
    on_event: EventHandler | tuple[EventHandler, ...]


class _NoResult:
    __slots__ = ()


NO_RESULT: Any = _NoResult()


class Call:
    """The per-call state of one retried call: decides the next action, never sleeps."""

    __slots__ = (
        "attempt_started",
        "attempts",
        "cancel",
        "clock",
        "deadline_at",
        "handlers",
        "history",
        "last_error",
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
        self.last_error = ""
        self.reason = ""
        self.reason_code = ""
        self.timed_out = False  # set by the async driver when attempt_timeout cancelled an attempt
        self.cancel = True  # async attempts run in a cancel scope bounded by their deadline
        now = clock.monotonic()
        self.started = now
        self.attempt_started: float | None = now if timed else None
        deadline_at = None if policy.deadline is None else now + policy.deadline
        inherited = _deadline.remaining_time()
        if inherited is not None and (deadline_at is None or now + inherited < deadline_at):
            deadline_at = now + inherited
        self.deadline_at = deadline_at
        if policy.budget is not None:
            policy.budget.deposit()

    # -- attempts -----------------------------------------------------------
    def attempt_deadline(self) -> float | None:
        """Absolute time (on ``clock``) by which the next attempt must end, if any."""
        timeout = self.policy.attempt_timeout
        if timeout is None:
            return self.deadline_at
        at = self.clock.monotonic() + timeout
        return at if self.deadline_at is None else min(at, self.deadline_at)

    def begin(self) -> object:
        """Mark an attempt's start; open its deadline scope when there is one."""
        self.attempt_started = self.clock.monotonic()
        at = self.attempt_deadline()
        return None if at is None else _deadline._current.set(_deadline._tightened(self.clock, at))

    def end(self, token: object) -> None:
        if token is not None:
            _deadline._current.reset(token)  # type: ignore[arg-type]

    # -- decisions ----------------------------------------------------------
    def next_delay(self, error: Exception | None, result: object) -> float | None:
        """Record a failed attempt; seconds to sleep before the next one, or ``None`` to stop."""
        policy = self.policy
        now = self.clock.monotonic()
        self.attempts += 1
        duration = 0.0 if self.attempt_started is None else now - self.attempt_started
        what = describe_error(error) if error is not None else _describe_result(result)
        self.last_error = what
        self.history.append((what, duration, None))

        timed_out, self.timed_out = self.timed_out, False
        if error is not None and not (timed_out or policy.retryable(error)):
            self._stop("not_retryable")
            return None
        if self.attempts >= policy.max_attempts:
            self._stop("attempts")
            return None

        outcome = error if error is not None else result
        hint = None if policy.retry_after is None else policy.retry_after(outcome)
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
                    error=self.last_error,
                ),
                self.handlers,
            )
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


def _describe_result(result: object) -> str:
    return f"retry_on_result rejected a {type(result).__qualname__} result"


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)``, also on Python 3.10."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # pragma: no cover - Python 3.10
        notes = getattr(error, "__notes__", None)
        if notes is None:
            notes = []
            error.__notes__ = notes  # type: ignore[attr-defined]
        notes.append(note)
