"""``CircuitBreaker``: the decorator, context-manager and ``call`` forms around a store backend.

The drivers classify what happened; the backend (a locked state machine, or
Redis) decides. No lock is held while the protected call runs.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ClassVar, ParamSpec, TypeVar, cast, overload

import attrs

from resilient_pipeline._core import (
    OBSERVED,
    Clock,
    Event,
    EventHandler,
    default_retry_after,
    emit,
    integer,
    non_empty_str,
    normalize_handlers,
    resolve_clock,
)
from resilient_pipeline.exceptions import CircuitOpenError, ConfigurationError, RejectedError

from ._events import CallRejected, CircuitStatistics, State
from ._guard import aguard, guard
from ._machine import FAILURE, IGNORED, SUCCESS
from ._memory import MemoryBackend
from ._policy import (
    BreakerConfig,
    ConsecutiveFailures,
    HalfOpen,
    OpenDuration,
    TripPolicy,
)
from ._store import BreakerBackend, BreakerStore

__all__ = ["CircuitBreaker"]

P = ParamSpec("P")
T = TypeVar("T")

_breaker_logger = logging.getLogger(CallRejected.logger_name)


def _name(value: object) -> str:
    return cast("str", non_empty_str().check("name", value))


def _store(value: object) -> BreakerStore | None:
    if value is not None and not isinstance(value, BreakerStore):
        raise ConfigurationError.for_option("store", value, "must be a BreakerStore or None")
    return value


@attrs.define(eq=False, repr=False)
class CircuitBreaker:
    """Stop calling an upstream that keeps failing; probe carefully until it recovers.

    A closed circuit lets calls through and counts their outcomes with the
    ``trip`` policy. When it trips, the circuit opens: calls fail fast with
    :class:`~resilient_pipeline.exceptions.CircuitOpenError` for the
    ``open_duration``. Then it half-opens: ``half_open.permits`` trial calls
    run and every other caller is rejected at once; enough successful trials
    close it, one failed trial re-opens it.

    Use it as a decorator (sync or async, signature kept), as a context
    manager (``with breaker:`` / ``async with breaker:`` raise when open), or
    through :meth:`call` / :meth:`acall`.

    Args:
        name: Names the breaker in errors, events and the shared store.
        trip: :class:`ConsecutiveFailures` (default: 5 in a row) or :class:`FailureRate`.
        open_duration: How long to stay open (default: 60 s, fixed).
        half_open: Trial permits, success threshold, permit lease, max time.
        failure_on: Exception types that count as failures (default: ``Exception``);
            any other exception counts as a success (the upstream answered).
        ignore: Exception types that count as neither (e.g. your own ``ValueError``).
        failure_if: A predicate on the exception; both it and ``failure_on`` must agree.
        failure_on_result: A predicate on the result; ``True`` counts the call as a failure.
        retry_after: Reads an open-duration floor from a failure (default: the
            ``retry_after`` attribute or ``Retry-After`` header); ``None`` ignores hints.
        store: Where the state lives (default: this breaker's own memory);
            :class:`~resilient_pipeline.breaker._redis.RedisBreakerStore` shares it.
        clock: Where time comes from (resolved at call time).
        on_event: Handlers for this breaker's events.
        rng: A ``random.Random`` for open-duration jitter.
        max_keys: How many keyed breakers :meth:`for_key` keeps in memory.

    Cancellation, ``KeyboardInterrupt`` and rejections by other primitives
    (:class:`~resilient_pipeline.exceptions.RejectedError`) never count.

    Examples:
        >>> breaker = CircuitBreaker(name="ads-api", trip=ConsecutiveFailures(threshold=2))
        >>> @breaker
        ... def fetch_spend(day: str) -> float:
        ...     raise ConnectionError("upstream down")
        >>> for _ in range(2):
        ...     try:
        ...         fetch_spend("2026-11-28")
        ...     except ConnectionError:
        ...         pass
        >>> breaker.state
        'open'
        >>> try:
        ...     fetch_spend("2026-11-28")
        ... except CircuitOpenError as e:
        ...     print(e.name, round(e.retry_after))
        ads-api 60
    """

    name: str = attrs.field(default="circuit", kw_only=True, converter=_name)
    trip: TripPolicy = attrs.field(factory=ConsecutiveFailures, kw_only=True)
    open_duration: OpenDuration = attrs.field(factory=OpenDuration, kw_only=True)
    half_open: HalfOpen = attrs.field(factory=HalfOpen, kw_only=True)
    failure_on: type[Exception] | tuple[type[Exception], ...] = attrs.field(
        default=Exception, kw_only=True
    )
    ignore: type[Exception] | tuple[type[Exception], ...] = attrs.field(default=(), kw_only=True)
    failure_if: Callable[[Exception], bool] | None = attrs.field(default=None, kw_only=True)
    failure_on_result: Callable[[Any], bool] | None = attrs.field(default=None, kw_only=True)
    retry_after: Callable[[object], float | None] | None = attrs.field(
        default=default_retry_after, kw_only=True
    )
    store: BreakerStore | None = attrs.field(default=None, kw_only=True, converter=_store)
    clock: Clock | None = attrs.field(default=None, kw_only=True)
    on_event: tuple[EventHandler, ...] = attrs.field(
        default=(), kw_only=True, converter=normalize_handlers
    )
    rng: random.Random | None = attrs.field(default=None, kw_only=True)
    max_keys: int = attrs.field(default=1024, kw_only=True)

    config: BreakerConfig = attrs.field(init=False)
    _backend: BreakerBackend = attrs.field(init=False)
    _active: contextvars.ContextVar[tuple[int, Any] | None] = attrs.field(init=False)
    # Any, not the registry type: that module imports this one, and
    # typing.get_type_hints() must resolve every annotation here.
    _registry: Any = attrs.field(init=False, default=None)
    # The registry class; ``._registry`` builds on this module and registers
    # itself here, so the import goes one way only.
    registry_type: ClassVar[Callable[..., Any]]
    _timed: bool = attrs.field(init=False, default=False)
    _plain: bool = attrs.field(init=False, default=True)

    def __attrs_post_init__(self) -> None:
        self.config = BreakerConfig(
            trip=self.trip,
            open_duration=self.open_duration,
            half_open=self.half_open,
            failure_on=self.failure_on,
            ignore=self.ignore,
            failure_if=self.failure_if,
            failure_on_result=self.failure_on_result,
            retry_after=self.retry_after,
            rng=self.rng,
        )
        integer(ge=1).check("max_keys", self.max_keys)
        if self.store is None:
            self._backend = MemoryBackend(self.name, self.config, self._emit)
        else:
            self._backend = self.store.bind(self.name, self.config, self._emit)
        self._active = contextvars.ContextVar(f"circuit:{self.name}", default=None)
        self._timed = self.config.slow_call_duration is not None
        # The common case: no result check, no timing; success needs no classification.
        self._plain = not self._timed and self.failure_on_result is None

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state}>"

    # -- events ------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        emit(event, self.on_event)

    def _rejected(self, error: CircuitOpenError) -> CircuitOpenError:
        # Rejections can come by the million while open: skip building the
        # event when nobody would see it.
        if OBSERVED or self.on_event or _breaker_logger.isEnabledFor(logging.DEBUG):
            self._announce(error)
        return error

    def _announce(self, error: CircuitOpenError) -> None:
        emit(
            CallRejected(source=self.name, state=error.state, retry_after=error.retry_after),
            self.on_event,
        )

    # -- classification ----------------------------------------------------------
    def _outcome(self, error: BaseException | None, result: object) -> tuple[int, float | None]:
        """How a finished call counts, and the open-duration floor it carries."""
        config = self.config
        if error is None:
            check = config.failure_on_result
            if check is None or not check(result):
                return SUCCESS, None
            hook = config.retry_after
            return FAILURE, (None if hook is None else hook(result))
        if not isinstance(error, Exception) or isinstance(
            error, (RejectedError, config._ignore_types)
        ):
            return IGNORED, None
        if isinstance(error, config._failure_types) and (
            config.failure_if is None or config.failure_if(error)
        ):
            hook = config.retry_after
            return FAILURE, (None if hook is None else hook(error))
        return SUCCESS, None

    def _finished(
        self, result: object, started: float | None, clock: Clock, *, checked: bool = True
    ) -> tuple[int, float | None]:
        """How a call that returned counts: a bad result or a slow call is a failure."""
        outcome, hint = self._outcome(None, result) if checked else (SUCCESS, None)
        limit = self.config.slow_call_duration
        if (
            outcome == SUCCESS
            and started is not None
            and limit is not None
            and clock.monotonic() - started > limit
        ):
            return FAILURE, None
        return outcome, hint

    # -- the call form -------------------------------------------------------------
    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` through the breaker.

        Raises:
            CircuitOpenError: The circuit refused the call; ``fn`` did not run.

        Examples:
            >>> CircuitBreaker(name="ads").call(len, [1, 2, 3])
            3
        """
        return cast("T", guard(self, fn)(*args, **kwargs))

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker (asyncio or trio).

        Examples:
            >>> import anyio
            >>> async def fetch() -> str:
            ...     return "ok"
            >>> anyio.run(CircuitBreaker(name="ads").acall, fetch)
            'ok'
        """
        return cast("T", await aguard(self, fn)(*args, **kwargs))

    # -- the decorator form --------------------------------------------------------
    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]], /) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]: ...
    def __call__(self, fn: Callable[..., Any], /) -> Callable[..., Any]:
        """Decorate ``fn`` (a function, method or coroutine function); its signature is kept."""
        if not callable(fn):
            raise TypeError(f"CircuitBreaker decorates callables, not {fn!r}")
        if inspect.iscoroutinefunction(fn):
            return functools.wraps(fn)(aguard(self, fn))
        return functools.wraps(fn)(guard(self, fn))

    # -- the context-manager form -------------------------------------------------
    def _entered(self, ticket: int | CircuitOpenError, clock: Clock) -> None:
        if ticket.__class__ is not int:
            try:
                raise self._rejected(cast("CircuitOpenError", ticket))
            finally:
                ticket = 0  # no error -> traceback -> frame -> error cycle
        # Per thread and per task, and nestable: the ticket travels in a context variable.
        started = clock.monotonic() if self._timed else None
        self._active.set((ticket, (started, self._active.get())))

    def _exited(self, exc: BaseException | None, clock: Clock) -> tuple[int, int, float | None]:
        entry = self._active.get()
        if entry is None:
            raise RuntimeError(f"{self!r} exited without being entered in this context")
        ticket, (started, previous) = entry
        self._active.set(previous)
        if exc is None:
            # The with-form has no result to check: only the duration counts.
            return (ticket, *self._finished(None, started, clock, checked=False))
        return (ticket, *self._outcome(exc, None))

    def _record(
        self, ticket: int, outcome: int, clock: Clock, hint: float | None, exc: BaseException | None
    ) -> None:
        backend = self._backend
        if outcome == FAILURE and exc is not None and isinstance(backend, MemoryBackend):
            backend.record(ticket, outcome, clock, hint, exc)
        else:
            backend.record(ticket, outcome, clock, hint)

    def __enter__(self) -> CircuitBreaker:
        clock = resolve_clock(self.clock)
        self._entered(self._backend.admit(clock), clock)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        clock = resolve_clock(self.clock)
        ticket, outcome, hint = self._exited(exc, clock)
        self._record(ticket, outcome, clock, hint, exc)

    async def __aenter__(self) -> CircuitBreaker:
        clock = resolve_clock(self.clock)
        self._entered(await self._backend.aadmit(clock), clock)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        clock = resolve_clock(self.clock)
        ticket, outcome, hint = self._exited(exc, clock)
        backend = self._backend
        if isinstance(backend, MemoryBackend):  # no I/O: recorded directly, with the cause
            self._record(ticket, outcome, clock, hint, exc)
        else:
            await backend.arecord(ticket, outcome, clock, hint)

    # -- manual control -----------------------------------------------------------
    def force_open(self) -> None:
        """Reject every call until :meth:`reset` or :meth:`force_closed` (maintenance)."""
        self._backend.force("forced_open", resolve_clock(self.clock))

    def force_closed(self) -> None:
        """Let every call through and count nothing, until :meth:`reset`."""
        self._backend.force("forced_closed", resolve_clock(self.clock))

    disable = force_closed

    def reset(self) -> None:
        """Back to closed with empty counters (also ends a forced state)."""
        self._backend.force(None, resolve_clock(self.clock))

    async def aforce_open(self) -> None:
        """Async twin of :meth:`force_open` (for an async store client)."""
        await self._backend.aforce("forced_open", resolve_clock(self.clock))

    async def aforce_closed(self) -> None:
        """Async twin of :meth:`force_closed`."""
        await self._backend.aforce("forced_closed", resolve_clock(self.clock))

    async def areset(self) -> None:
        """Async twin of :meth:`reset`."""
        await self._backend.aforce(None, resolve_clock(self.clock))

    # -- introspection -------------------------------------------------------------
    @property
    def state(self) -> State:
        """The state the next call would see."""
        return self.statistics().state

    def statistics(self) -> CircuitStatistics:
        """State and counters now, as a frozen value.

        Examples:
            >>> CircuitBreaker(name="ads").statistics().failures
            0
        """
        return self._backend.statistics(resolve_clock(self.clock))

    snapshot = statistics

    async def astatistics(self) -> CircuitStatistics:
        """Async twin of :meth:`statistics`."""
        return await self._backend.astatistics(resolve_clock(self.clock))

    # -- keyed breakers ------------------------------------------------------------
    def for_key(self, *key: object) -> CircuitBreaker:
        """The breaker for one key (platform, account, endpoint, ...), made on first use.

        Keyed breakers share this breaker's options and store; each trips on
        its own. At most ``max_keys`` are kept (least recently used go first,
        closed ones before open ones).

        Examples:
            >>> breaker = CircuitBreaker(name="ads")
            >>> breaker.for_key("meta", "act_42").name
            'ads[meta,act_42]'
            >>> breaker.for_key("meta", "act_42") is breaker.for_key("meta", "act_42")
            True
        """
        registry = self._registry
        if registry is None:
            registry = type(self).registry_type(template=self, max_keys=self.max_keys)
            self._registry = registry
        return cast("CircuitBreaker", registry.get(*key))

    def keyed_statistics(self) -> list[CircuitStatistics]:
        """:meth:`statistics` of every breaker :meth:`for_key` made and still keeps.

        Health checks and dashboards use it to see the per-account breakers
        behind one template.

        Examples:
            >>> breaker = CircuitBreaker(name="ads")
            >>> breaker.for_key("act_7").force_open()
            >>> [(s.name, s.state) for s in breaker.keyed_statistics()]
            [('ads[act_7]', 'forced_open')]
        """
        registry = self._registry
        return [] if registry is None else list(registry.all_statistics())
