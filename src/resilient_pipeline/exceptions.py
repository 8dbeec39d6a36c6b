"""The exceptions resilient-pipeline raises, all under one root.

Catch :class:`ResilientPipelineError` to catch everything the library itself
raises. Errors that describe bad *input* also subclass the builtin that code
already catches (``ValueError``, ``TimeoutError``, ``ImportError``)::

    ResilientPipelineError
    ├── ConfigurationError (ValueError)        an option or argument is invalid
    ├── MissingDependencyError (ImportError)   an optional extra is not installed
    ├── BadResultError                         retry_on_result still rejected the last result
    ├── DeadlineExceededError (TimeoutError)   a time budget ran out
    └── RejectedError                          a call was refused before it ran
        └── CircuitOpenError                   a circuit breaker is open (or its probes are taken)

Errors raised by *your* code are never wrapped: after the last attempt
``retry_with_backoff`` re-raises your last exception itself, with a note listing
every attempt.

Every error carries its context as attributes (the option, the value, the
retry-after hint, ...) and survives ``pickle`` with those attributes, so errors
can cross process boundaries (multiprocessing, task queues).

Example:
    >>> from resilient_pipeline.exceptions import ConfigurationError
    >>> err = ConfigurationError.for_option("max_attempts", 0, "must be >= 1")
    >>> isinstance(err, ValueError), err.option, err.value
    (True, 'max_attempts', 0)
    >>> str(err)
    'max_attempts=0 is invalid: must be >= 1'
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadResultError",
    "CircuitOpenError",
    "ConfigurationError",
    "DeadlineExceededError",
    "MissingDependencyError",
    "RejectedError",
    "ResilientPipelineError",
]


def _rebuild(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class ResilientPipelineError(Exception):
    """Root of every exception resilient-pipeline raises.

    Subclasses set their context as attributes in ``__init__``; pickling
    restores those attributes without calling ``__init__`` again, so
    subclasses are free to have keyword-only constructors.

    Example:
        >>> import pickle
        >>> err = RejectedError("upstream busy", retry_after=2.5)
        >>> clone = pickle.loads(pickle.dumps(err))
        >>> (str(clone), clone.retry_after)
        ('upstream busy', 2.5)
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigurationError(ResilientPipelineError, ValueError):
    """An option or argument is invalid; raised when the object is built.

    Attributes:
        option: The name of the offending option (``"max_attempts"``).
        value: The value that was given.

    Example:
        >>> from resilient_pipeline import retry_with_backoff
        >>> try:
        ...     retry_with_backoff(max_attempts=0)
        ... except ConfigurationError as e:
        ...     print(e.option)
        max_attempts
    """

    def __init__(self, message: str, *, option: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.option = option
        self.value = value

    @classmethod
    def for_option(cls, option: str, value: object, problem: str) -> ConfigurationError:
        """Build the error for ``option=value`` with a one-line reason."""
        return cls(f"{option}={value!r} is invalid: {problem}", option=option, value=value)


class MissingDependencyError(ResilientPipelineError, ImportError):
    """An optional dependency is needed and not installed.

    Attributes:
        extra: The pip extra that installs it (``"postgres"``, ``"redis"``, ...).

    Example:
        >>> err = MissingDependencyError(package="redis", extra="redis", feature="Redis state")
        >>> print(err)
        Redis state needs the 'redis' package: pip install 'resilient-pipeline[redis]'
    """

    def __init__(self, *, package: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the {package!r} package: pip install 'resilient-pipeline[{extra}]'"
        )
        self.package = package
        self.extra = extra
        self.feature = feature


class BadResultError(ResilientPipelineError):
    """Every attempt returned a result that ``retry_on_result`` rejected.

    Attributes:
        result: The last result returned.
        attempts: How many attempts were made.

    Example:
        >>> from resilient_pipeline import retry_with_backoff
        >>> @retry_with_backoff(max_attempts=2, base_delay=0, retry_on_result=lambda r: r == [])
        ... def fetch() -> list[int]:
        ...     return []
        >>> try:
        ...     fetch()
        ... except BadResultError as e:
        ...     print(e.result, e.attempts)
        [] 2
    """

    def __init__(self, message: str, *, result: object, attempts: int) -> None:
        super().__init__(message)
        self.result = result
        self.attempts = attempts


class DeadlineExceededError(ResilientPipelineError, TimeoutError):
    """A time budget (a deadline or a timeout) ran out.

    Also a builtin ``TimeoutError``, so ``except TimeoutError`` catches it.

    Attributes:
        timeout: The budget in seconds, when known.

    Example:
        >>> isinstance(DeadlineExceededError("fetch took too long", timeout=5.0), TimeoutError)
        True
    """

    def __init__(self, message: str, *, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class RejectedError(ResilientPipelineError):
    """A call was refused before it ran (open circuit, full bulkhead, rate limit).

    Attributes:
        retry_after: Seconds after which trying again may succeed, if known.
            ``retry_with_backoff`` treats it like a server-given delay.

    Example:
        >>> RejectedError("quota used up", retry_after=30.0).retry_after
        30.0
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CircuitOpenError(RejectedError):
    """A circuit breaker refused the call: it is open, or half-open with every probe taken.

    A new instance is raised for every rejection (a shared one would chain
    tracebacks and keep every caller's frames alive).

    Attributes:
        name: The breaker's name (with its key, for keyed breakers).
        state: The state that refused the call: ``"open"``, ``"half_open"`` or
            ``"forced_open"``.
        retry_after: Seconds until the breaker lets a probe through; ``None``
            when unknown (half-open with every permit taken, or forced open).
            ``retry_with_backoff`` waits exactly that long when it fits the
            remaining deadline, and stops otherwise.

    Example:
        >>> err = CircuitOpenError("ads-api", state="open", retry_after=12.5)
        >>> str(err), err.retry_after, isinstance(err, RejectedError)
        ("circuit 'ads-api' is open; a probe is allowed in 12.50 s", 12.5, True)
    """

    state: str = "open"
    retry_after: float | None = None

    def __init__(self, name: str, *, state: str = "open", retry_after: float | None = None) -> None:
        # Lean on purpose: rejections come by the thousand while a circuit is
        # open and most are caught unprinted, so the message is built by
        # __str__, the name lives in args, and defaults stay on the class.
        if state != "open":
            self.state = state
        if retry_after is not None:
            self.retry_after = retry_after

    @property
    def name(self) -> str:
        """The breaker's name."""
        return str(self.args[0])

    def __str__(self) -> str:
        wait = (
            "" if self.retry_after is None else f"; a probe is allowed in {self.retry_after:.2f} s"
        )
        what = (
            "half-open and every probe permit is taken" if self.state == "half_open" else self.state
        )
        return f"circuit {self.name!r} is {what.replace('_', ' ')}{wait}"
