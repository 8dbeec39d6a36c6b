"""The system clock and the process-wide default clock."""

from __future__ import annotations

import time as _time
from collections.abc import Callable

from ._protocols import Clock

__all__ = ["SYSTEM_CLOCK", "SystemClock", "get_default_clock", "resolve_clock"]


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time``, ``time.sleep``, ``anyio.sleep``.

    Examples:
        >>> SystemClock().monotonic() > 0
        True
    """

    __slots__ = ()

    monotonic = staticmethod(_time.monotonic)
    time = staticmethod(_time.time)
    sleep = staticmethod(_time.sleep)

    async def asleep(self, seconds: float, /) -> None:
        """Suspend the task for ``seconds`` (a cancellation point)."""
        import anyio  # async users have it loaded already; sync users never pay for it

        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()

# A one-item cell, so hot paths can hold the cell and read the current default.
DEFAULT_CLOCK: list[Clock] = [SYSTEM_CLOCK]
# The default clock's ``monotonic``, kept beside it by swap_default_clock():
# calling it spares the hottest path (a breaker's rejection) the method
# lookup on the clock, which the interpreter cannot specialize for a builtin.
DEFAULT_MONOTONIC: list[Callable[[], float]] = [SYSTEM_CLOCK.monotonic]


def get_default_clock() -> Clock:
    """The clock used by primitives built without ``clock=``.

    It is the system clock unless :func:`resilient_pipeline.testing.set_testing`
    swapped in a fake one.

    Examples:
        >>> get_default_clock()
        SystemClock()
    """
    return DEFAULT_CLOCK[0]


def swap_default_clock(clock: Clock) -> Clock:
    previous = DEFAULT_CLOCK[0]
    DEFAULT_CLOCK[0] = clock
    DEFAULT_MONOTONIC[0] = clock.monotonic
    return previous


def resolve_clock(clock: Clock | None) -> Clock:
    """``clock`` itself, or the default clock when it is ``None``."""
    return DEFAULT_CLOCK[0] if clock is None else clock
