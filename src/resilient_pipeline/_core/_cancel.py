"""Cancel scopes for timed attempts, at the cost they must have and no more.

* ``cancel_scope()``: ``anyio.CancelScope()`` without the backend lookup on every call;
* ``armed()``: await a call inside an entered scope, setting the scope's
  deadline only if the call suspends;
* ``never_suspends()``: whether a coroutine function can suspend at all: one
  that cannot can never be cancelled, and needs no scope.

``anyio.CancelScope()`` first finds out which event loop runs (sniffio, then
the backend registry) and only then builds the backend's scope: two thirds of
the cost of a scope that is entered and left at once, which the timeouts and
timed retries pay per attempt. On asyncio the backend's scope class is the
same for the whole process, so it is found once (from a scope the public
constructor built) and called directly after that; elsewhere (trio) the
public constructor is used as it is.
"""

from __future__ import annotations

import dis
import sys
import types
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import anyio

    from ._protocols import Clock

T = TypeVar("T")

__all__ = ["armed", "cancel_scope", "never_suspends"]

_CO_COROUTINE = 0x0080  # inspect.CO_COROUTINE, without importing inspect
# The opcodes a coroutine suspends at: YIELD_FROM is Python 3.10's ``await``.
_SUSPENDS = frozenset({"YIELD_VALUE", "YIELD_FROM"})

# The asyncio backend's CancelScope class, per type of running asyncio loop.
_ASYNCIO_SCOPES: dict[type[Any], Any] = {}


def cancel_scope() -> anyio.CancelScope:
    """A new cancel scope with no deadline, for the event loop running now.

    Examples:
        >>> import anyio
        >>> async def main() -> bool:
        ...     with cancel_scope() as scope:
        ...         scope.cancel()
        ...         await anyio.sleep(1)
        ...     return scope.cancelled_caught
        >>> anyio.run(main)
        True
    """
    # No import of asyncio here: `import resilient_pipeline` stays light, and no
    # asyncio loop can run before asyncio was imported.
    asyncio = sys.modules.get("asyncio")
    loop = None if asyncio is None else asyncio._get_running_loop()
    if loop is not None:
        known = _ASYNCIO_SCOPES.get(type(loop))
        if known is not None:
            return known()  # type: ignore[no-any-return]
    import anyio  # async callers have it loaded already

    scope = anyio.CancelScope()
    # Remembered only when the public constructor chose anyio's asyncio backend
    # under this loop; anything else (trio, an unknown layout) keeps the public path.
    if loop is not None and type(scope).__module__.endswith("._asyncio"):
        _ASYNCIO_SCOPES[type(loop)] = type(scope)
    return scope


@types.coroutine
def armed(
    awaitable: Awaitable[T], scope: anyio.CancelScope, clock: Clock, at: float
) -> Generator[Any, Any, T]:
    """Await ``awaitable``, giving ``scope`` its deadline (``at`` on ``clock``) if it suspends.

    A cancel scope can only cancel a suspended task, so a call that finishes
    without suspending needs no timer: arming the deadline at the first
    suspension costs such calls nothing, and cancels every other call at the
    same instant as a deadline set on entry would.
    """
    steps = awaitable.__await__()
    try:
        signal = steps.send(None)
    except StopIteration as done:
        return cast("T", done.value)
    import anyio  # loaded already: a scope is open

    scope.deadline = anyio.current_time() + (at - clock.monotonic())
    # What `yield from` does, for an iterator already started.
    while True:
        try:
            sent = yield signal
        except GeneratorExit:  # noqa: PERF203 -- the loop is the forwarding itself
            close = getattr(steps, "close", None)
            if close is not None:
                close()
            raise
        except BaseException as exc:  # thrown in by the event loop (cancellation)
            try:
                signal = steps.throw(exc)
            except StopIteration as done:
                return cast("T", done.value)
        else:
            try:
                signal = steps.send(sent)
            except StopIteration as done:
                return cast("T", done.value)


def never_suspends(fn: object) -> types.CodeType | None:
    """The code of ``fn`` if it is a coroutine function whose body never suspends, else ``None``.

    A coroutine suspends only at a ``YIELD_VALUE`` of its own frame (every
    ``await``, ``async for`` and ``async with`` compiles to one; to a
    ``YIELD_FROM`` on Python 3.10); a body with
    none runs to its end at the first step, where no cancel scope can
    interrupt it, so a scope around it would only cost. Only plain Python
    functions are judged; anything else (a partial, a callable object, a
    decorated function that awaits) may suspend. Compare the code returned
    with ``fn.__code__`` at call time: code can be replaced.

    Examples:
        >>> async def cached() -> int:
        ...     return 1
        >>> async def fetched() -> None:
        ...     await something()
        >>> never_suspends(cached) is cached.__code__, never_suspends(fetched)
        (True, None)
    """
    if type(fn) is not types.FunctionType:
        return None
    code = fn.__code__
    if not code.co_flags & _CO_COROUTINE:
        return None
    if any(op.opname in _SUSPENDS for op in dis.get_instructions(code)):
        return None
    return code
