"""The retry policy: a frozen, validated value that is also a decorator.

The decisions live in ``_engine.py``, the events in ``_events.py``, and the
sync and async drivers in ``_decorator.py``, which registers itself as
``RetryPolicy.drivers`` (it builds on this module, so the import goes one way).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Literal,
    ParamSpec,
    TypeAlias,
    TypedDict,
    TypeVar,
    cast,
    overload,
)

import attrs

from resilient_pipeline._core import (
    Clock,
    EventHandler,
    callable_or_none,
    default_retry_after,
    exception_types,
    in_,
    integer,
    is_permanent,
    normalize_handlers,
    number,
)
from resilient_pipeline.exceptions import (
    ConfigurationError,
)

from ._budget import RetryBudget

if TYPE_CHECKING:
    from ._decorator import Retrying

__all__ = ["Jitter", "RetryOptions", "RetryPolicy"]

P = ParamSpec("P")
T = TypeVar("T")

RetryAfterExtractor: TypeAlias = Callable[[object], "float | None"]
"""Reads a server-given delay (seconds) from an exception or a result."""

Jitter: TypeAlias = Literal["full", "equal", "decorrelated"]
"""How a delay is randomised: ``"full"`` in [0, d], ``"equal"`` d/2 + [0, d/2] or decorrelated.

``None`` (the option, not a member) means the exact schedule.
"""
_JITTERS = ("full", "equal", "decorrelated", None)


# --------------------------------------------------------------------- policy


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How to retry: a frozen, reusable value; also a decorator.

    Every option is validated when the policy is built and a bad one raises
    :class:`~resilient_pipeline.exceptions.ConfigurationError` naming it.
    Change a policy with :func:`attrs.evolve`. See :func:`retry_with_backoff`
    for what each option means.

    Examples:
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
    # The sync and async drivers (``._decorator``); that module builds on this
    # one and registers itself here, so the import goes one way only.
    drivers: ClassVar[Any]

    def __attrs_post_init__(self) -> None:
        integer(ge=1).check("max_attempts", self.max_attempts)
        number(ge=0).check("base_delay", self.base_delay)
        number(ge=1).check("multiplier", self.multiplier)
        number(ge=0).check("max_delay", self.max_delay)
        in_(*_JITTERS).check("jitter", self.jitter)
        number(gt=0, optional=True).check("deadline", self.deadline)
        number(gt=0, optional=True).check("attempt_timeout", self.attempt_timeout)
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
        object.__setattr__(self, "_retry_types", exception_types().types("retry_on", self.retry_on))
        for option in ("retry_if", "retry_on_result", "retry_after"):
            callable_or_none().check(option, getattr(self, option))
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            raise ConfigurationError.for_option("budget", self.budget, "must be a RetryBudget")
        if self.name is not None and not isinstance(self.name, str):
            raise ConfigurationError.for_option("name", self.name, "must be a str")

    def backoff(self, attempt: int) -> float:
        """The un-jittered delay after failed attempt number ``attempt`` (1-based), capped.

        Examples:
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

        Examples:
            >>> RetryPolicy(retry_on=OSError).retryable(ConnectionError())
            True
            >>> RetryPolicy(retry_on=OSError).retryable(KeyError())
            False
        """
        if not isinstance(error, self._retry_types) or is_permanent(error):
            return False
        return self.retry_if is None or bool(self.retry_if(error))

    @overload
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]: ...
    @overload
    def __call__(self, fn: None = None, /) -> Callable[[Callable[P, T]], Callable[P, T]]: ...
    def __call__(self, fn: Callable[P, T] | None = None, /) -> Any:
        """Decorate ``fn`` (sync or async) with this policy."""
        decorate = self.drivers.decorate
        return decorate(self, fn) if fn is not None else (lambda f: decorate(self, f))

    def retrying(self) -> Retrying:
        """The block form: ``for attempt in policy.retrying(): with attempt: ...``."""
        return cast("Retrying", self.drivers.Retrying(self))


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
