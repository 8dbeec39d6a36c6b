"""``Bulkhead``: at most N calls at once, shared by threads and tasks, with a bounded queue.

The state (slots in use, the FIFO queue of waiters) sits behind one
``threading.Lock``, so one bulkhead can be shared by threads, asyncio tasks
and trio tasks at the same time. A released slot is handed straight to the
first waiter (no barging), which is woken in its own thread or event loop.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

import anyio
import anyio.lowlevel
import attrs

from resilient_pipeline._core import (
    EventHandler,
    check_callable,
    emit,
    integer,
    is_async,
    normalize_handlers,
    number,
    remaining_time,
)
from resilient_pipeline.exceptions import BulkheadFullError, DeadlineExceededError

from ._trail import PolicyEvent

__all__ = ["Bulkhead", "BulkheadRejected", "BulkheadStatistics", "BulkheadWaited"]

P = ParamSpec("P")
T = TypeVar("T")


@attrs.frozen(kw_only=True)
class BulkheadRejected(PolicyEvent):
    """A bulkhead refused a call (full queue, or no slot freed in time).

    Attributes:
        in_flight: Calls running when it refused.
        waiting: Calls queued when it refused.
        waited: Seconds this caller queued first (``0.0``: refused at once).
    """

    logger_name = "resilient_pipeline.limits"
    level = logging.WARNING
    template = "{source}: bulkhead full ({in_flight} running, {waiting} queued); call rejected"

    in_flight: int
    waiting: int
    waited: float


@attrs.frozen(kw_only=True)
class BulkheadWaited(PolicyEvent):
    """A queued call got a slot.

    Attributes:
        waited: Seconds it queued.
    """

    logger_name = "resilient_pipeline.limits"
    level = logging.DEBUG
    template = "{source}: got a bulkhead slot after queueing {waited:.3f} s"

    waited: float


@attrs.frozen
class BulkheadStatistics:
    """A snapshot of a :class:`Bulkhead`.

    Attributes:
        max_concurrent: Slots in all.
        max_waiting: Queue places in all.
        in_flight: Calls running now.
        waiting: Calls queued now.
        admitted: Calls that got a slot so far.
        rejected: Calls refused so far (at once or after waiting).
    """

    max_concurrent: int
    max_waiting: int
    in_flight: int
    waiting: int
    admitted: int
    rejected: int


class _Waiter:
    """A queued caller: ``wake()`` may be called from any thread."""

    __slots__ = ("event", "granted", "wake")

    def __init__(self, wake: Callable[[], object], event: Any = None) -> None:
        self.granted = False
        self.wake = wake
        self.event = event


def _thread_waiter() -> _Waiter:
    event = threading.Event()
    return _Waiter(event.set, event)


def _task_waiter() -> _Waiter:
    # anyio events are not thread-safe: a release in another thread sets it
    # through the waiter's own loop (asyncio's call_soon_threadsafe, trio's run_sync_soon).
    event = anyio.Event()
    native: Any = anyio.lowlevel.current_token().native_token
    schedule = getattr(native, "call_soon_threadsafe", None) or native.run_sync_soon
    return _Waiter(functools.partial(schedule, event.set), event)


class _Counts:
    """The bulkhead's mutable counters, changed only under its lock."""

    __slots__ = ("admitted", "in_flight", "rejected")

    def __init__(self) -> None:
        self.in_flight = 0
        self.admitted = 0
        self.rejected = 0


def _optional_seconds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        number(ge=0).check(attribute.name, value)


@attrs.define(eq=False)
class Bulkhead:
    """Limit how many calls run at once; queue a few more; reject the rest at once.

    Use it as a decorator (sync or async), or as ``with bulkhead:`` /
    ``async with bulkhead:``. A queued caller waits at most ``wait_timeout``
    seconds, and never past the shared deadline.

    Args:
        max_concurrent: Calls allowed to run at the same time (>= 1).
        max_waiting: Callers allowed to queue for a slot (>= 0); beyond it a
            caller is rejected at once.
        wait_timeout: Most seconds a caller queues (``None``: until the shared
            deadline, or for ever without one).
        name: The name in events and errors.
        on_event: Handlers for this bulkhead's events.

    Raises:
        ConfigurationError: At construction, naming the bad option.

    Examples:
        >>> from resilient_pipeline.exceptions import BulkheadFullError
        >>> bulkhead = Bulkhead(max_concurrent=1, name="ads-api")
        >>> with bulkhead:
        ...     try:
        ...         with bulkhead:
        ...             pass
        ...     except BulkheadFullError as e:
        ...         print(e)
        bulkhead 'ads-api' is full (1 running, no queue place free)
        >>> bulkhead.statistics().rejected
        1
    """

    max_concurrent: int = attrs.field(kw_only=True)
    max_waiting: int = attrs.field(default=0, kw_only=True)
    wait_timeout: float | None = attrs.field(
        default=60.0, kw_only=True, validator=_optional_seconds
    )
    name: str = attrs.field(default="bulkhead", kw_only=True)
    on_event: tuple[EventHandler, ...] = attrs.field(
        default=(), kw_only=True, converter=normalize_handlers
    )

    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _queue: deque[_Waiter] = attrs.field(factory=deque, init=False, repr=False)
    # The counters live in a plain slotted object: setting an attribute of an
    # attrs class with validators runs its on_setattr hooks, three times a call.
    _counts: _Counts = attrs.field(factory=_Counts, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        integer(ge=1).check("max_concurrent", self.max_concurrent)
        integer(ge=0).check("max_waiting", self.max_waiting)

    # -- the core: bookkeeping only, under the lock ---------------------------
    def _enter(self, make_waiter: Callable[[], _Waiter]) -> _Waiter | None:
        """Take a slot (``None``) or a queue place (the waiter); raise when neither is free."""
        with self._lock:
            counts = self._counts
            if counts.in_flight < self.max_concurrent and not self._queue:
                counts.in_flight += 1
                counts.admitted += 1
                return None
            if len(self._queue) < self.max_waiting and self._wait_budget()[0] > 0:
                waiter = make_waiter()
                self._queue.append(waiter)
                return waiter
        raise self._refuse(0.0)

    def _settle(self, waiter: _Waiter) -> bool:
        """After a wait: ``True`` if the waiter got a slot, else it leaves the queue."""
        with self._lock:
            if waiter.granted:
                self._counts.admitted += 1
                return True
            self._queue.remove(waiter)
            return False

    def release(self) -> None:
        """Give a slot back: to the first queued caller, or to the pool."""
        # acquire() / release() rather than ``with``: the same, for half the
        # instructions; this runs after every call.
        lock = self._lock
        lock.acquire()
        try:
            if self._queue:
                waiter = self._queue.popleft()
                waiter.granted = True  # the slot passes on; in_flight is unchanged
                waiter.wake()
            else:
                self._counts.in_flight -= 1
        finally:
            lock.release()

    def _wait_budget(self) -> tuple[float, bool]:
        """Seconds a caller may queue; ``True`` when the shared deadline binds, not the timeout."""
        remaining = remaining_time()
        limit = self.wait_timeout
        if remaining is not None and (limit is None or remaining < limit):
            return remaining, True
        return (math.inf if limit is None else limit), False

    def _refuse(self, waited: float, *, by_deadline: bool = False) -> Exception:
        with self._lock:
            self._counts.rejected += 1
            in_flight, waiting = self._counts.in_flight, len(self._queue)
        emit(
            BulkheadRejected(source=self.name, in_flight=in_flight, waiting=waiting, waited=waited),
            self.on_event,
        )
        if by_deadline:
            return DeadlineExceededError(
                f"bulkhead {self.name!r}: the shared deadline ran out after queueing "
                f"{waited:.3f} s",
                timeout=waited,
            )
        return BulkheadFullError(self.name, max_concurrent=self.max_concurrent, waited=waited)

    def _granted(self, waited: float) -> None:
        emit(BulkheadWaited(source=self.name, waited=waited), self.on_event)

    # -- sync driver ----------------------------------------------------------
    def acquire(self) -> None:
        """Take a slot, queueing if allowed; raise ``BulkheadFullError`` if none comes."""
        waiter = self._enter(_thread_waiter)  # the Event only exists once we queue
        if waiter is not None:
            self._wait(waiter)

    def _wait(self, waiter: _Waiter) -> None:
        """Queue in this thread until ``waiter`` gets a slot, or refuse."""
        budget, by_deadline = self._wait_budget()
        # Only a hand-over ends the wait early, so it is measured and bounded in
        # real time: no fake clock can free a slot.
        started = time.monotonic()
        waiter.event.wait(None if budget == math.inf else budget)
        waited = time.monotonic() - started
        if not self._settle(waiter):
            raise self._refuse(waited, by_deadline=by_deadline)
        self._granted(waited)

    def __enter__(self) -> Bulkhead:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    # -- async driver ---------------------------------------------------------
    async def aacquire(self) -> None:
        """Async twin of :meth:`acquire` (asyncio and trio); cancelling a waiter is safe."""
        waiter = self._enter(_task_waiter)
        if waiter is not None:
            await self._await(waiter)

    async def _await(self, waiter: _Waiter) -> None:
        """Queue in this task until ``waiter`` gets a slot, or refuse; cancelling is safe."""
        budget, by_deadline = self._wait_budget()
        started = anyio.current_time()
        try:
            with anyio.move_on_after(budget):
                await waiter.event.wait()
        except BaseException:
            if self._settle(waiter):
                self.release()
            raise
        waited = anyio.current_time() - started
        if not self._settle(waiter):
            raise self._refuse(waited, by_deadline=by_deadline)
        self._granted(waited)

    async def __aenter__(self) -> Bulkhead:
        await self.aacquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    # -- decorator ------------------------------------------------------------
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate ``fn`` (sync or async); every call needs a slot."""
        check_callable(fn, "Bulkhead")
        # acquire() / aacquire() unrolled: the slot is taken in the wrapper's own
        # frame, and only a caller that must queue pays for the wait.
        enter, release = self._enter, self.release
        if is_async(fn):
            afn = cast("Callable[P, Awaitable[Any]]", fn)

            @functools.wraps(fn)
            async def abounded(*args: P.args, **kwargs: P.kwargs) -> Any:
                waiter = enter(_task_waiter)
                if waiter is not None:
                    await self._await(waiter)
                try:
                    return await afn(*args, **kwargs)
                finally:
                    release()

            return cast("Callable[P, T]", abounded)

        @functools.wraps(fn)
        def bounded(*args: P.args, **kwargs: P.kwargs) -> T:
            waiter = enter(_thread_waiter)
            if waiter is not None:
                self._wait(waiter)
            try:
                return fn(*args, **kwargs)
            finally:
                release()

        return bounded

    def statistics(self) -> BulkheadStatistics:
        """A frozen snapshot of the slots, the queue and the counters."""
        with self._lock:
            return BulkheadStatistics(
                self.max_concurrent,
                self.max_waiting,
                self._counts.in_flight,
                len(self._queue),
                self._counts.admitted,
                self._counts.rejected,
            )
