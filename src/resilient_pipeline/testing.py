"""Helpers for testing code that uses resilient-pipeline: instant, observable time.

* :class:`FakeClock`: a clock that only moves when you (or a sleep) move it.
* :func:`set_testing`: make every wait in the library instant, in your tests.
* :func:`capture_events`: collect the events emitted inside a block.
* :class:`MemoryNotifier`: a notifier that keeps the alerts it is sent.

With pytest, the fixtures ``rp_testing`` (a :class:`FakeClock` installed
with :func:`set_testing`) and ``rp_events`` (a list of captured events) are
available as soon as resilient-pipeline is installed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import anyio.lowlevel
import attrs

from resilient_pipeline._core import (
    Event,
    SystemClock,
    get_default_clock,
    subscribe,
    swap_default_clock,
)
from resilient_pipeline.alerting import Alert
from resilient_pipeline.exceptions import AlertDeliveryError
from resilient_pipeline.typing import Clock

__all__ = [
    "FakeClock",
    "MemoryNotifier",
    "SystemClock",
    "TestingContext",
    "capture_events",
    "get_default_clock",
    "set_testing",
]


@attrs.define(eq=False)
class FakeClock:
    """A clock that only moves when told to; sleeping advances it instantly.

    Attributes:
        sleeps: Every delay passed to ``sleep``/``asleep``, in order.

    Examples:
        >>> clock = FakeClock(start=100.0)
        >>> clock.sleep(1.5)
        >>> clock.advance(0.5)
        >>> clock.monotonic(), clock.sleeps
        (102.0, [1.5])
    """

    start: float = 0.0
    wall_start: float = attrs.field(default=1_767_225_600.0, kw_only=True)  # 2026-01-01 UTC
    sleeps: list[float] = attrs.field(factory=list, init=False)
    _now: float = attrs.field(init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._now = self.start

    def monotonic(self) -> float:
        """The fake monotonic time."""
        return self._now

    def time(self) -> float:
        """Fake wall-clock time: ``wall_start`` plus how far the clock moved."""
        return self.wall_start + (self._now - self.start)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back (advance({seconds!r}))")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float, /) -> None:
        """Record the sleep and advance the clock, without waiting."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)

    async def asleep(self, seconds: float, /) -> None:
        """Record the sleep and advance the clock; still a cancellation point."""
        self.sleep(seconds)
        await anyio.lowlevel.checkpoint()


@attrs.define
class TestingContext:
    """What :func:`set_testing` returns: exit it (or call :meth:`restore`) to undo."""

    clock: FakeClock
    _previous: Clock = attrs.field(alias="_previous", repr=False)
    _active: bool = attrs.field(default=True, alias="_active", repr=False)

    def restore(self) -> None:
        """Put back the clock that was the default before (idempotent)."""
        if self._active:
            self._active = False
            swap_default_clock(self._previous)

    def __enter__(self) -> FakeClock:
        return self.clock

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.restore()


def set_testing(*, clock: FakeClock | None = None) -> TestingContext:
    """Make every wait of primitives built without ``clock=`` instant.

    Takes effect at once; use the result as a context manager (it yields the
    :class:`FakeClock`) or call its ``restore()`` to undo. Attempts are not
    changed, so your tests still see every retry.

    Examples:
        >>> from resilient_pipeline import retry_with_backoff
        >>> @retry_with_backoff(max_attempts=3, base_delay=10, jitter=None)
        ... def fetch() -> None:
        ...     raise ConnectionError("down")
        >>> with set_testing() as clock:
        ...     try:
        ...         fetch()
        ...     except ConnectionError:
        ...         pass
        >>> clock.sleeps
        [10.0, 20.0]
    """
    fake = FakeClock() if clock is None else clock
    return TestingContext(fake, _previous=swap_default_clock(fake))


@contextmanager
def capture_events() -> Iterator[list[Event]]:
    """Collect every event emitted (anywhere in the process) inside the block.

    Examples:
        >>> from resilient_pipeline import retrying
        >>> with capture_events() as events:
        ...     for attempt in retrying(base_delay=0):
        ...         with attempt:
        ...             if attempt.number == 1:
        ...                 raise OSError("reset")
        >>> [type(e).__name__ for e in events]
        ['RetryScheduled', 'RetrySucceeded', 'CallFinished']
    """
    events: list[Event] = []
    with subscribe(events.append):
        yield events


@attrs.define(eq=False)
class MemoryNotifier:
    """A :class:`~resilient_pipeline.alerting.Notifier` that keeps what it is sent, for tests.

    Attributes:
        alerts: Every alert delivered, in order.

    Examples:
        >>> from resilient_pipeline import Alert
        >>> notifier = MemoryNotifier()
        >>> notifier.fail_next(1)
        >>> try:
        ...     notifier.send(Alert(severity="error", title="late"))
        ... except AlertDeliveryError:
        ...     pass
        >>> notifier.send(Alert(severity="error", title="late"))
        >>> [a.title for a in notifier.alerts]
        ['late']
    """

    name: str = attrs.field(default="memory", kw_only=True)
    alerts: list[Alert] = attrs.field(factory=list, init=False)
    _failures: int = attrs.field(default=0, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def fail_next(self, times: int = 1) -> None:
        """Make the next ``times`` sends raise :class:`AlertDeliveryError`."""
        with self._lock:
            self._failures += times

    def send(self, alert: Alert, /) -> None:
        """Keep ``alert`` (or fail, if :meth:`fail_next` asked for it)."""
        with self._lock:
            if self._failures > 0:
                self._failures -= 1
                raise AlertDeliveryError(
                    f"{self.name}: failure injected by fail_next()",
                    notifier=self.name,
                    title=alert.title,
                )
            self.alerts.append(alert)
