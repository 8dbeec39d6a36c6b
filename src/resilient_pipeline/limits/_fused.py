"""The composed call of ``resilient()`` in a few frames instead of one per layer.

Applying each policy as its own decorator costs a Python frame, an
``*args, **kwargs`` repacking and a lookup or two per layer, per call: more
than the work of most layers. ``ResiliencePolicy`` therefore builds, once, at
decoration time:

* an *outer* frame: the call's attempt counter, the fallback and the overall
  deadline (``counted`` ⟶ ``fallback`` ⟶ ``deadline``);
* an *attempt* frame, inside the retry: the attempt number, the in-memory
  rate limiter and the in-memory bulkhead (``numbered`` ⟶ ``RateLimiter`` ⟶
  ``Bulkhead``), in that order.

Each step calls the very methods the standalone decorators call
(``RateLimiter._plan``, ``Bulkhead._enter`` / ``release``, ``Timeout._enter``,
``Fallback._replaces`` / ``_used``), so behaviour, events and errors are the
same; only the frames between them are gone. Layers that are not the
in-memory classes (a Redis limiter, a breaker, any other ``Policy``) stay
decorators between the frames.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from resilient_pipeline._core import DEADLINE, DEFAULT_CLOCK

from ._bulkhead import Bulkhead, _task_waiter, _thread_waiter
from ._fallback import Fallback
from ._ratelimit import RateLimiter
from ._timeout import Timeout
from ._trail import _attempt

__all__ = ["fusable_bulkhead", "fusable_limiter", "outer", "per_attempt"]

P = ParamSpec("P")
T = TypeVar("T")


def fusable_limiter(policy: object) -> RateLimiter | None:
    """``policy`` if it is an in-memory ``RateLimiter`` that only takes a token per call."""
    if type(policy) is RateLimiter and not policy.adaptive:
        return policy
    return None


def fusable_bulkhead(policy: object) -> Bulkhead | None:
    """``policy`` if it is an in-memory ``Bulkhead``."""
    return policy if type(policy) is Bulkhead else None


def outer(
    fn: Callable[P, T],
    *,
    source: str,
    fallback: Fallback | None,
    deadline: Timeout | None,
    is_coroutine: bool,
) -> Callable[P, T]:
    """``counted(fallback(deadline(fn)))`` in one frame; the deadline only tightens (no scope)."""
    attempt = _attempt
    enter = None if deadline is None else deadline._enter
    if fallback is not None:
        fallback(fn)  # the same checks as the decorator (a sync call with an async alternative)
        replaces, used = fallback._replaces, fallback._used
        fallback_source = fallback.name or source
        alternative, value = fallback.call, fallback.value
    if is_coroutine:
        afn = cast("Callable[P, Awaitable[Any]]", fn)

        @functools.wraps(fn)
        async def acomposed(*args: P.args, **kwargs: P.kwargs) -> Any:
            token = attempt.set([0])
            try:
                try:
                    scope = None if enter is None else enter(source)[0]
                    try:
                        return await afn(*args, **kwargs)
                    finally:
                        if scope is not None:
                            DEADLINE.reset(scope)
                except Exception as exc:
                    if fallback is None or not replaces(exc):
                        raise
                    used(fallback_source, exc)
                if alternative is None:
                    return value
                answer = alternative(*args, **kwargs)
                return await answer if inspect.isawaitable(answer) else answer
            finally:
                attempt.reset(token)

        return cast("Callable[P, T]", acomposed)

    @functools.wraps(fn)
    def composed(*args: P.args, **kwargs: P.kwargs) -> T:
        token = attempt.set([0])
        try:
            try:
                scope = None if enter is None else enter(source)[0]
                try:
                    return fn(*args, **kwargs)
                finally:
                    if scope is not None:
                        DEADLINE.reset(scope)
            except Exception as exc:
                if fallback is None or not replaces(exc):
                    raise
                used(fallback_source, exc)
            return cast("T", value if alternative is None else alternative(*args, **kwargs))
        finally:
            attempt.reset(token)

    return composed


def per_attempt(
    fn: Callable[P, T],
    *,
    count: bool,
    limiter: RateLimiter | None,
    bulkhead: Bulkhead | None,
    timeout: Timeout | None = None,
    source: str = "",
    is_coroutine: bool,
) -> Callable[P, T]:
    """``numbered(limiter(bulkhead(timeout(fn))))`` in one frame (each part optional).

    ``timeout`` joins the frame only for sync calls in cooperative mode (it
    only tightens the deadline); async timeouts and thread mode stay their
    own layer, inside ``fn``.
    """
    attempt, default = _attempt, DEFAULT_CLOCK
    tighten = None if timeout is None else timeout._enter
    if limiter is not None:
        plan, key_of = limiter._plan, limiter.key
    if bulkhead is not None:
        enter, release = bulkhead._enter, bulkhead.release
    if is_coroutine:
        if timeout is not None:
            raise TypeError("an async call's timeout is its own layer")  # pragma: no cover
        afn = cast("Callable[P, Awaitable[Any]]", fn)

        @functools.wraps(fn)
        async def aattempt(*args: P.args, **kwargs: P.kwargs) -> Any:
            if count:
                cell = attempt.get()
                if cell is not None:
                    cell[0] += 1
            if limiter is not None:
                key = None if key_of is None else key_of(*args, **kwargs)
                clock = default[0] if limiter.clock is None else limiter.clock
                wait = plan(key, 1.0, clock.monotonic(), 0.0)
                if wait:
                    await limiter._asleep(key, 1.0, clock, wait)
            if bulkhead is None:
                return await afn(*args, **kwargs)
            waiter = enter(_task_waiter)
            if waiter is not None:
                await bulkhead._await(waiter)
            try:
                return await afn(*args, **kwargs)
            finally:
                release()

        return cast("Callable[P, T]", aattempt)

    @functools.wraps(fn)
    def sattempt(*args: P.args, **kwargs: P.kwargs) -> T:
        if count:
            cell = attempt.get()
            if cell is not None:
                cell[0] += 1
        if limiter is not None:
            key = None if key_of is None else key_of(*args, **kwargs)
            clock = default[0] if limiter.clock is None else limiter.clock
            wait = plan(key, 1.0, clock.monotonic(), 0.0)
            if wait:
                limiter._sleep(key, 1.0, clock, wait)
        if bulkhead is not None:
            waiter = enter(_thread_waiter)
            if waiter is not None:
                bulkhead._wait(waiter)
        try:
            if tighten is None:
                return fn(*args, **kwargs)
            scope = tighten(source)[0]
            try:
                return fn(*args, **kwargs)
            finally:
                DEADLINE.reset(scope)
        finally:
            if bulkhead is not None:
                release()

    return sattempt
