"""The guarded wrappers: the one place a breaker's sync and async call paths live.

``CircuitBreaker``'s decorator and its ``call``/``acall`` forms run the
wrapped function through :func:`guard` (sync) or :func:`aguard` (async).
Each wrapper admits the call through the backend, runs it and records its
outcome; no lock is held while the wrapped function runs.

While a circuit is open every call is a rejection, by the million if the
upstream stays down, so an open in-memory circuit is read by the wrappers
themselves (see :func:`_open_fast_path`) and the error is raised from the
wrapper's own frame: no further frame, no event nobody would see, and for the
system clock no method lookup.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from resilient_pipeline._core import DEFAULT_CLOCK, OBSERVED, SYSTEM_CLOCK
from resilient_pipeline.exceptions import CircuitOpenError

from ._events import CallRejected
from ._machine import FAILURE, SUCCESS, Machine
from ._memory import MemoryBackend

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker
    from ._store import BreakerBackend

__all__ = ["aguard", "guard"]

_breaker_logger = logging.getLogger(CallRejected.logger_name)
# CircuitOpenError(name) without its Python-level __init__ (see the wrappers).
_new_error = cast(
    "Callable[[type[CircuitOpenError], str], CircuitOpenError]", BaseException.__new__
)
_DEBUG = logging.DEBUG


def _debug_levels() -> dict[int, bool]:
    """The logger's ``isEnabledFor`` answers by level; a level missing: not cached yet.

    ``Logger.isEnabledFor`` answers from the logger's own cache, which
    ``logging`` empties in place whenever a level changes; reading that cache
    first spares every rejection two calls. Without it (another Python),
    nothing is ever cached and the method itself answers.
    """
    levels = getattr(_breaker_logger, "_cache", None)
    return levels if isinstance(levels, dict) else {}


class _NeverOpen:
    """Stands in for the state machine of a backend not in memory: never "open"."""

    __slots__ = ()
    state = "elsewhere"
    name = "unused"
    open_until = 0.0


def _open_fast_path(backend: BreakerBackend) -> tuple[Machine, itertools.count[int]]:
    """The in-memory state machine and rejection counter the wrappers read directly.

    While a circuit is open every call is a rejection, and calling
    ``MemoryBackend.admit`` was a tenth of one: the wrappers read the open
    state themselves, lock-free like ``admit`` (one attribute read is atomic;
    a call that sees "open" is rejected as if it came just before a
    concurrent change). Every other state, and every other backend, goes
    through ``admit``. For a backend not in memory the machine is a
    stand-in that is never "open" (one test fewer per call than ``None``).
    """
    if isinstance(backend, MemoryBackend):
        return backend.machine, backend.rejections
    return cast("Machine", _NeverOpen()), itertools.count()


def guard(breaker: CircuitBreaker, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` wrapped in ``breaker`` (sync); the decorator's and ``call``'s engine."""
    backend = breaker._backend
    admit, record = backend.admit, backend.record
    # An in-memory backend keeps the failure that trips it (CircuitOpenError.opened_by).
    causes = isinstance(backend, MemoryBackend)
    outcome_of, finished, announce = breaker._outcome, breaker._finished, breaker._announce
    debug_level, observed = _debug_levels().get, OBSERVED
    default, system, monotonic = DEFAULT_CLOCK, SYSTEM_CLOCK, time.monotonic
    machine, rejections = _open_fast_path(backend)
    new = (CircuitOpenError, machine.name)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        clock = breaker.clock or default[0]  # resolve_clock, inlined: the hot path
        if (
            machine.state == "open"
            # The system clock's monotonic() is time.monotonic: called directly.
            and (
                wait := machine.open_until - (monotonic() if clock is system else clock.monotonic())
            )
            > 0.0
        ):
            # MemoryBackend.admit's open path, inlined (see _open_fast_path).
            next(rejections)
            error = _new_error(*new)  # one args tuple fewer than (CircuitOpenError, name)
            error.retry_after = wait
            error.trip_cause = backend.trip_cause  # type: ignore[attr-defined]  # state: "open"
            # DEBUG unknown (the logger's cache was cleared): announce, and the
            # log sink asks the logger, which fills the cache again.
            if observed or breaker.on_event or debug_level(_DEBUG, True):
                announce(error)
            # The error's traceback holds this frame: the frame must not hold
            # the error, or each rejection leaves a cycle for the GC. Rebinding
            # inside the raise costs less than a try/finally around it.
            raise (error, error := None)[0]  # type: ignore[assignment]
        ticket = admit(clock)
        if ticket.__class__ is not int:
            raise (breaker._rejected(ticket), ticket := 0)[0]  # type: ignore[arg-type]
        started = clock.monotonic() if breaker._timed else None
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            outcome, hint = outcome_of(exc, None)
            if causes and outcome == FAILURE:
                record(ticket, outcome, clock, hint, exc)  # type: ignore[call-arg]
            else:
                record(ticket, outcome, clock, hint)
            raise
        if breaker._plain:
            record(ticket, SUCCESS, clock, None)
        else:
            outcome, hint = finished(result, started, clock)
            record(ticket, outcome, clock, hint)
        return result

    return guarded


def aguard(
    breaker: CircuitBreaker, fn: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """``fn`` wrapped in ``breaker`` (async, asyncio or trio)."""
    backend = breaker._backend
    # A backend that never does I/O is called directly: no coroutine per step.
    direct = bool(getattr(backend, "nonblocking", False))
    causes = isinstance(backend, MemoryBackend)  # keeps the failure that trips it
    admit, record = backend.admit, backend.record
    aadmit, arecord = backend.aadmit, backend.arecord
    outcome_of, finished, announce = breaker._outcome, breaker._finished, breaker._announce
    debug_level, observed = _debug_levels().get, OBSERVED
    default, system, monotonic = DEFAULT_CLOCK, SYSTEM_CLOCK, time.monotonic
    machine, rejections = _open_fast_path(backend)
    new = (CircuitOpenError, machine.name)

    async def guarded(*args: Any, **kwargs: Any) -> Any:
        clock = breaker.clock or default[0]  # resolve_clock, inlined: the hot path
        if (
            machine.state == "open"
            and (
                wait := machine.open_until - (monotonic() if clock is system else clock.monotonic())
            )
            > 0.0
        ):
            next(rejections)  # MemoryBackend.admit's open path, inlined: see guard()
            error = _new_error(*new)
            error.retry_after = wait
            error.trip_cause = backend.trip_cause  # type: ignore[attr-defined]
            if observed or breaker.on_event or debug_level(_DEBUG, True):
                announce(error)
            raise (error, error := None)[0]  # type: ignore[assignment]  # no cycle: see guard()
        ticket = admit(clock) if direct else await aadmit(clock)
        if ticket.__class__ is not int:
            raise (breaker._rejected(ticket), ticket := 0)[0]  # type: ignore[arg-type]
        started = clock.monotonic() if breaker._timed else None
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            outcome, hint = outcome_of(exc, None)
            if causes and outcome == FAILURE:
                record(ticket, outcome, clock, hint, exc)  # type: ignore[call-arg]
            elif direct:
                record(ticket, outcome, clock, hint)
            else:
                await arecord(ticket, outcome, clock, hint)
            raise
        if breaker._plain:
            outcome, hint = SUCCESS, None
        else:
            outcome, hint = finished(result, started, clock)
        if direct:
            record(ticket, outcome, clock, hint)
        else:
            await arecord(ticket, outcome, clock, hint)
        return result

    return guarded
