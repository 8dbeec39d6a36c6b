"""The success path of ``resilient()`` in one frame, retry loop included.

A healthy composed call (no error, a token in the bucket, a free bulkhead
slot, nobody subscribed) needs none of the layers' machinery: it needs one
clock read, one bucket take, one slot, the attempt number and the deadline
the call can observe, and the call itself. ``one_pass()`` builds a wrapper
that does exactly that in its own frame:

* one clock read serves the overall deadline, the per-attempt timeout and the
  rate limiter (the layers read the same clock three times, microseconds apart);
* one ``DEADLINE`` value is published, the sooner of the overall deadline and
  the timeout: the only one the call can observe (the overall one alone is
  published again before anything else runs: a limiter or bulkhead wait, the
  retry engine after a failure);
* the bulkhead slot and the bucket's token are taken under the same locks, by
  the same rules, as ``Bulkhead._enter`` and ``RateLimiter._plan``;
* async calls keep exactly one cancel scope when a timeout applies, armed only
  if the call suspends (see ``armed()``).

The moment anything is not the plain success case, the same objects go on as
the layered path would from that point: an enclosing deadline or a subscriber
sends the whole call down the layered path before anything happened; an
empty bucket or a full bulkhead goes on with the layered rest of the first
attempt (``wait_or_refuse``, the bulkhead's queue, the timeout), and a failed
attempt goes on in the retry engine (``resume``), then the fallback. Events,
statistics, errors and attempt numbers are therefore the layered path's.

Compositions the frame does not cover keep the layered path (``None`` from
``one_pass``): a breaker, a Redis or adaptive or keyed limiter (a key function
is user code that runs under the overall deadline), a Redis bulkhead, a timed
retry (its own deadline, attempt timeout or budget, ``retry_on_result``,
handlers), a thread-mode timeout, parts on different clocks, and an async
overall deadline without both a retry and a timeout (it has a cancel scope of
its own then, around the limiter's and bulkhead's waits too).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from resilient_pipeline._core import (
    DEADLINE,
    DEFAULT_CLOCK,
    OBSERVED,
    Clock,
    armed,
    cancel_scope,
    never_suspends,
)
from resilient_pipeline.retry import RetryPolicy, aresume, resume

from ._bulkhead import Bulkhead
from ._fallback import Fallback
from ._fused import per_attempt
from ._ratelimit import RateLimiter, wait_or_refuse
from ._timeout import Timeout
from ._trail import _attempt

__all__ = ["one_pass"]

P = ParamSpec("P")
T = TypeVar("T")


def _plain(retry: RetryPolicy | None) -> bool:
    """Whether the retry's first attempt is a bare call (its untimed fast path)."""
    return retry is None or (
        retry.deadline is None
        and retry.attempt_timeout is None
        and retry.budget is None
        and retry.retry_on_result is None
        and not retry.on_event
    )


def _shared_clock(*parts: object) -> tuple[bool, Clock | None]:
    """Whether the parts read one clock, and that clock (``None``: the default)."""
    clocks = {id(c): c for c in (getattr(p, "clock", None) for p in parts if p is not None)}
    if len(clocks) > 1:
        return False, None
    return True, next(iter(clocks.values()), None)


def one_pass(
    fn: Callable[P, T],
    general: Callable[P, T],
    *,
    source: str,
    fallback: Fallback | None,
    deadline: Timeout | None,
    retry: RetryPolicy | None,
    limiter: object,
    bulkhead: object,
    timeout: Timeout | None,
    is_coroutine: bool,
) -> Callable[P, T] | None:
    """The one-frame wrapper of ``fn`` for this composition, or ``None`` if it has none.

    ``general`` is the layered composition of the same parts: the frame hands
    calls over to it (or to its pieces) whenever they leave the success path.
    """
    if limiter is not None and (
        type(limiter) is not RateLimiter or limiter.adaptive or limiter.key is not None
    ):
        return None
    if bulkhead is not None and type(bulkhead) is not Bulkhead:
        return None
    if not _plain(retry) or (timeout is not None and timeout.sync != "cooperative"):
        return None
    if is_coroutine and deadline is not None and (timeout is None or retry is None):
        return None  # the overall deadline has a cancel scope of its own, around the waits
    shared, clock = _shared_clock(deadline, timeout, limiter)
    if not shared:
        return None
    parts = _Parts(
        fn,
        source=source,
        fallback=fallback,
        deadline=deadline,
        retry=retry,
        limiter=limiter,
        bulkhead=bulkhead,
        timeout=timeout,
        clock=clock,
        is_coroutine=is_coroutine,
    )
    if is_coroutine:
        return cast("Callable[P, T]", _async(cast("Any", fn), cast("Any", general), parts))
    return _sync(fn, general, parts)


class _Parts:
    """The composition's parts, what the frames read from them, and the layered pieces."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        source: str,
        fallback: Fallback | None,
        deadline: Timeout | None,
        retry: RetryPolicy | None,
        limiter: RateLimiter | None,
        bulkhead: Bulkhead | None,
        timeout: Timeout | None,
        clock: Clock | None,
        is_coroutine: bool,
    ) -> None:
        self.source, self.fallback, self.retry = source, fallback, retry
        self.limiter, self.bulkhead, self.timeout, self.clock = limiter, bulkhead, timeout, clock
        self.overall = None if deadline is None else deadline.seconds
        limits = [part.seconds for part in (deadline, timeout) if part is not None]
        # now + min(a, b) == min(now + a, now + b): float addition is monotonic.
        self.sooner = min(limits) if limits else None
        # Whether the timeout, not the overall deadline, is the limit that binds.
        self.ours = timeout is not None and (
            deadline is None or timeout.seconds <= deadline.seconds
        )
        self.first = 0 if retry is None else 1  # the attempt number the layers show
        self.cancel = timeout is None  # as ResiliencePolicy tells the retry
        # The layered pieces the frame goes on with: a whole attempt (for the
        # retry engine) and the part of the first one after the rate limiter.
        inner = fn if timeout is None or not is_coroutine else timeout(fn)
        # The name the timeout's events and errors carry, as its decorator names them.
        self.timeout_source = source if timeout is None else (timeout.name or source)
        sync_timeout = None if is_coroutine else timeout
        self.attempt = per_attempt(
            inner,
            count=retry is not None,
            limiter=limiter,
            bulkhead=bulkhead,
            timeout=sync_timeout,
            source=source,
            is_coroutine=is_coroutine,
        )
        self.rest = per_attempt(
            inner,
            count=False,
            limiter=None,
            bulkhead=bulkhead,
            timeout=sync_timeout,
            source=source,
            is_coroutine=is_coroutine,
        )

    def admit(self, now: float) -> tuple[float, bool]:
        """Take the bucket's token and a bulkhead slot if both are free now, as the layers would.

        ``(wait, slot)``: ``wait`` is ``RateLimiter._plan``'s answer before it
        asks ``wait_or_refuse`` (``0.0``: a token was taken); the slot is
        tried only when the token was taken. Nothing else changes: a
        refused take left only the bucket refilled to ``now``.
        """
        wait, limiter, bulkhead = 0.0, self.limiter, self.bulkhead
        # lock.acquire() / release() rather than ``with``: the same, for half the
        # instructions, and nothing between them raises but MemoryError.
        if limiter is not None:
            lock = limiter._lock
            lock.acquire()
            try:
                bucket = limiter._buckets.get(None)
                if bucket is None:
                    bucket = limiter._bucket(None, now)
                else:
                    limiter._buckets.move_to_end(None)
                wait = bucket.take(now, 1.0)
            finally:
                lock.release()
            if wait:
                return wait, False
        if bulkhead is None:
            return 0.0, True
        lock = bulkhead._lock
        lock.acquire()
        try:
            counts = bulkhead._counts
            if counts.in_flight < bulkhead.max_concurrent and not bulkhead._queue:
                counts.in_flight += 1
                counts.admitted += 1
                return 0.0, True
        finally:
            lock.release()
        return 0.0, False


def _sync(fn: Callable[P, T], general: Callable[P, T], parts: _Parts) -> Callable[P, T]:
    observed, default, deadline_var, attempt = OBSERVED, DEFAULT_CLOCK, DEADLINE, _attempt
    own_clock, sooner, overall, first = parts.clock, parts.sooner, parts.overall, parts.first
    admit, rest, retry, source = parts.admit, parts.rest, parts.retry, parts.source
    release = None if parts.bulkhead is None else parts.bulkhead.release
    limiter, fallback = parts.limiter, parts.fallback
    if fallback is not None:
        replaces, used = fallback._replaces, fallback._used
        fallback_source = fallback.name or source
        alternative, value = fallback.call, fallback.value

    def go_on(
        args: Any, kwargs: Any, clock: Clock, now: float, wait: float, error: Exception | None
    ) -> Any:
        """The layered path from where the frame stopped, under the overall deadline."""
        token = None if overall is None else deadline_var.set((clock, now + overall))
        try:
            if error is None:
                try:
                    if wait:
                        limited = cast("RateLimiter", limiter)
                        wait = wait_or_refuse(limited, None, wait, 0.0)
                        limited._sleep(None, 1.0, clock, wait)
                    return rest(*args, **kwargs)
                except Exception as exc:
                    if retry is None:
                        raise
                    error = exc
            return resume(cast("RetryPolicy", retry), source, parts.attempt, args, kwargs, error)
        finally:
            if token is not None:
                deadline_var.reset(token)

    @functools.wraps(fn)
    def one_frame(*args: P.args, **kwargs: P.kwargs) -> T:
        if observed or deadline_var.get() is not None:
            return general(*args, **kwargs)
        clock = default[0] if own_clock is None else own_clock
        now = clock.monotonic()
        wait, slot = admit(now)
        cell = attempt.set([first])
        try:
            try:
                if not slot:
                    return cast("T", go_on(args, kwargs, clock, now, wait, None))
                scope = None if sooner is None else deadline_var.set((clock, now + sooner))
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    if retry is None:
                        raise
                    error = exc
                finally:
                    if scope is not None:
                        deadline_var.reset(scope)
                    if release is not None:
                        release()
                return cast("T", go_on(args, kwargs, clock, now, 0.0, error))
            except Exception as exc:
                if fallback is None or not replaces(exc):
                    raise
                used(fallback_source, exc)
            return cast("T", value if alternative is None else alternative(*args, **kwargs))
        finally:
            attempt.reset(cell)

    return one_frame


def _async(
    fn: Callable[P, Awaitable[T]], general: Callable[P, Awaitable[T]], parts: _Parts
) -> Callable[P, Awaitable[T]]:
    observed, default, deadline_var, attempt = OBSERVED, DEFAULT_CLOCK, DEADLINE, _attempt
    own_clock, sooner, overall, first = parts.clock, parts.sooner, parts.overall, parts.first
    admit, rest, retry, source = parts.admit, parts.rest, parts.retry, parts.source
    release = None if parts.bulkhead is None else parts.bulkhead.release
    limiter, fallback, timeout, ours = parts.limiter, parts.fallback, parts.timeout, parts.ours
    cancel, timeout_source = parts.cancel, parts.timeout_source
    # A body that never suspends cannot be cancelled: it needs no scope (see never_suspends).
    code = never_suspends(fn)
    if fallback is not None:
        replaces, used = fallback._replaces, fallback._used
        fallback_source = fallback.name or source
        alternative, value = fallback.call, fallback.value

    async def go_on(
        args: Any, kwargs: Any, clock: Clock, now: float, wait: float, error: Exception | None
    ) -> Any:
        """The layered path from where the frame stopped, under the overall deadline."""
        token = None if overall is None else deadline_var.set((clock, now + overall))
        try:
            if error is None:
                try:
                    if wait:
                        limited = cast("RateLimiter", limiter)
                        wait = wait_or_refuse(limited, None, wait, 0.0)
                        await limited._asleep(None, 1.0, clock, wait)
                    return await rest(*args, **kwargs)
                except Exception as exc:
                    if retry is None:
                        raise
                    error = exc
            policy = cast("RetryPolicy", retry)
            return await aresume(policy, source, parts.attempt, args, kwargs, error, cancel=cancel)
        finally:
            if token is not None:
                deadline_var.reset(token)

    @functools.wraps(fn)
    async def one_frame(*args: P.args, **kwargs: P.kwargs) -> T:
        if observed or deadline_var.get() is not None:
            return await general(*args, **kwargs)
        clock = default[0] if own_clock is None else own_clock
        now = clock.monotonic()
        wait, slot = admit(now)
        cell = attempt.set([first])
        try:
            try:
                if not slot:
                    return cast("T", await go_on(args, kwargs, clock, now, wait, None))
                try:
                    if timeout is None:  # then no overall deadline either (see one_pass)
                        return await fn(*args, **kwargs)
                    at = now + cast("float", sooner)
                    scope = deadline_var.set((clock, at))
                    try:
                        if code is not None and fn.__code__ is code:
                            return await fn(*args, **kwargs)  # nothing to cancel
                        # Entered before the call, so it nests like any other
                        # scope; its deadline is armed only if the call suspends.
                        with cancel_scope() as cancelled:
                            return await armed(fn(*args, **kwargs), cancelled, clock, at)
                    finally:
                        deadline_var.reset(scope)
                    # Reached only when our own scope cancelled the call.
                    raise timeout._expired(timeout_source, at - now, ours)
                except Exception as exc:
                    if retry is None:
                        raise
                    error = exc
                finally:
                    if release is not None:
                        release()
                return cast("T", await go_on(args, kwargs, clock, now, 0.0, error))
            except Exception as exc:
                if fallback is None or not replaces(exc):
                    raise
                used(fallback_source, exc)
            if alternative is None:
                return cast("T", value)
            answer = alternative(*args, **kwargs)
            return cast("T", await answer if inspect.isawaitable(answer) else answer)
        finally:
            attempt.reset(cell)

    return one_frame
