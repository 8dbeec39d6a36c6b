"""The guarded wrappers: the one place a breaker's sync and async call paths live.

``CircuitBreaker``'s decorator and its ``call``/``acall`` forms run the
wrapped function through :func:`guard` (sync) or :func:`aguard` (async).
Each wrapper admits the call through the backend, runs it and records its
outcome; no lock is held while the wrapped function runs.

While a circuit is open every call is a rejection, by the million if the
upstream stays down, so an open in-memory circuit is read by the wrappers
themselves (see :func:`_open_fast_path`) and the error is raised from the
wrapper's own frame: no further frame, no event nobody would see. The
wrappers' frames hold as few cells as they can (the backend's and breaker's
methods are looked up where called), since a rejection's traceback copies
and frees the whole frame.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from resilient_pipeline._core import DEFAULT_CLOCK, DEFAULT_MONOTONIC, OBSERVED
from resilient_pipeline.exceptions import CircuitOpenError

from ._events import CallRejected
from ._machine import FAILURE, SUCCESS, Machine
from ._memory import MemoryBackend, counter

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker
    from ._store import BreakerBackend

__all__ = ["aguard", "guard"]

_breaker_logger = logging.getLogger(CallRejected.logger_name)
# CircuitOpenError(name) without its Python-level __init__ (see the wrappers).
_new_error = cast(
    "Callable[[type[CircuitOpenError], str], CircuitOpenError]", BaseException.__new__
)
# What the logger's cache holds while DEBUG is off: one ``in`` test of its
# live items view answers "is DEBUG off, as far as the cache knows?".
_DEBUG_OFF = (logging.DEBUG, False)


def _debug_levels() -> dict[int, bool]:
    """The logger's ``isEnabledFor`` answers by level; a level missing: not cached yet.

    ``Logger.isEnabledFor`` answers from the logger's own cache, which
    ``logging`` empties in place whenever a level changes; testing that cache
    spares every rejection two calls. Without it (another Python) the cache
    here stays empty: every rejection is announced, and the log sink asks
    the logger itself.
    """
    levels = getattr(_breaker_logger, "_cache", None)
    return levels if isinstance(levels, dict) else {}


class _NeverOpen:
    """Stands in for the state machine of a backend not in memory: never "open"."""

    __slots__ = ()
    state = "elsewhere"
    name = "unused"
    open_until = 0.0


def _open_fast_path(backend: BreakerBackend) -> tuple[Machine, Iterator[None]]:
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
    return cast("Machine", _NeverOpen()), counter()


def guard(breaker: CircuitBreaker, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` wrapped in ``breaker`` (sync); the decorator's and ``call``'s engine."""
    backend = breaker._backend
    debug_cache, observed = _debug_levels().items(), OBSERVED
    default, monotonic = DEFAULT_CLOCK, DEFAULT_MONOTONIC
    machine, rejections = _open_fast_path(backend)
    new = (CircuitOpenError, machine.name)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if (
            machine.state == "open"
            # resolve_clock, inlined (the hot path), and the default clock's
            # monotonic called without looking it up on the clock
            and (
                wait := machine.open_until
                - (monotonic[0]() if (clock := breaker.clock) is None else clock.monotonic())
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
            if observed or breaker.on_event or _DEBUG_OFF not in debug_cache:
                breaker._announce(error)
            # The error's traceback holds this frame: the frame must not hold
            # the error, or each rejection leaves a cycle for the GC. Rebinding
            # inside the raise costs less than a try/finally around it, and
            # rebinding while indexing a 1-tuple one bytecode less than a 2-tuple.
            raise (error,)[error := 0]  # type: ignore[assignment]
        clock = breaker.clock or default[0]
        ticket = backend.admit(clock)
        if ticket.__class__ is not int:
            raise (breaker._rejected(ticket), ticket := 0)[0]  # type: ignore[arg-type]
        started = clock.monotonic() if breaker._timed else None
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            outcome, hint = breaker._outcome(exc, None)
            # An in-memory backend keeps the failure that trips it (.opened_by); the
            # test is made here, not once per wrapper: a cell less in every frame.
            if outcome == FAILURE and isinstance(backend, MemoryBackend):
                backend.record(ticket, outcome, clock, hint, exc)
            else:
                backend.record(ticket, outcome, clock, hint)
            raise
        if breaker._plain:
            backend.record(ticket, SUCCESS, clock, None)
        else:
            outcome, hint = breaker._finished(result, started, clock)
            backend.record(ticket, outcome, clock, hint)
        return result

    return guarded


def aguard(
    breaker: CircuitBreaker, fn: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    """``fn`` wrapped in ``breaker`` (async, asyncio or trio)."""
    backend = breaker._backend
    # A backend that never does I/O is called directly: no coroutine per step.
    direct = bool(getattr(backend, "nonblocking", False))
    debug_cache, observed = _debug_levels().items(), OBSERVED
    default, monotonic = DEFAULT_CLOCK, DEFAULT_MONOTONIC
    machine, rejections = _open_fast_path(backend)
    new = (CircuitOpenError, machine.name)

    async def guarded(*args: Any, **kwargs: Any) -> Any:
        if (
            machine.state == "open"
            and (
                wait := machine.open_until
                - (monotonic[0]() if (clock := breaker.clock) is None else clock.monotonic())
            )
            > 0.0
        ):
            next(rejections)  # MemoryBackend.admit's open path, inlined: see guard()
            error = _new_error(*new)
            error.retry_after = wait
            error.trip_cause = backend.trip_cause  # type: ignore[attr-defined]
            if observed or breaker.on_event or _DEBUG_OFF not in debug_cache:
                breaker._announce(error)
            raise (error,)[error := 0]  # type: ignore[assignment]  # no cycle: see guard()
        clock = breaker.clock or default[0]
        ticket = backend.admit(clock) if direct else await backend.aadmit(clock)
        if ticket.__class__ is not int:
            raise (breaker._rejected(ticket), ticket := 0)[0]  # type: ignore[arg-type]
        started = clock.monotonic() if breaker._timed else None
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            outcome, hint = breaker._outcome(exc, None)
            if outcome == FAILURE and isinstance(backend, MemoryBackend):  # see guard()
                backend.record(ticket, outcome, clock, hint, exc)
            elif direct:
                backend.record(ticket, outcome, clock, hint)
            else:
                await backend.arecord(ticket, outcome, clock, hint)
            raise
        if breaker._plain:
            outcome, hint = SUCCESS, None
        else:
            outcome, hint = breaker._finished(result, started, clock)
        if direct:
            backend.record(ticket, outcome, clock, hint)
        else:
            await backend.arecord(ticket, outcome, clock, hint)
        return result

    return guarded
