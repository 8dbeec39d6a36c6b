"""What the SQLite and PostgreSQL stores share: a connection pool and error translation."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import attrs

from resilient_pipeline._core import redact
from resilient_pipeline.exceptions import (
    StoreError,
    TransientStoreError,
    UnitOfWorkError,
)

__all__ = ["ConnectionSlots", "store_error"]

C = TypeVar("C")


def store_error(
    exc: BaseException,
    *,
    transient: bool,
    sqlstate: str | None = None,
    mask: Callable[[str], str] = redact,
) -> StoreError:
    """Translate a driver exception; the caller raises it ``from exc``.

    The message is masked, and so is every exception chained to ``exc``
    (``__cause__``, ``__context__``, notes), which ``logging.exception`` prints
    too: drivers echo DSNs (with passwords) in connection errors.
    """
    kind = TransientStoreError if transient else StoreError
    scrub_chain(exc, mask)
    message = mask(str(exc).strip()) or type(exc).__name__
    return kind(f"{type(exc).__name__}: {message}", sqlstate=sqlstate)


def scrub_chain(exc: BaseException, mask: Callable[[str], str]) -> None:
    """Mask secrets in the message and notes of ``exc`` and every exception chained to it.

    The messages are replaced in place (``args``): the driver's exceptions
    stay in the chain, with their types and tracebacks, minus the secrets.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        text = str(current)
        masked = mask(text)
        if masked != text:
            current.args = (masked,)
            if str(current) != masked:  # a __str__ that ignores args: keep only the type
                current.args = (f"<{type(current).__name__}: message withheld>",)
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [mask(str(note)) for note in notes]
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


@attrs.define(eq=False)
class ConnectionSlots(Generic[C]):
    """A small thread-safe pool: at most ``max_size`` connections out at once.

    Connections are opened lazily and reused; a connection that ``healthy``
    rejects on the way back is closed instead of pooled, so one broken
    connection never poisons the next unit of work (reconnects are safe
    because every write is idempotent). An idle connection can also die
    while it waits (a server restart, ``pg_terminate_backend``, a firewall's
    idle timeout): ``check``, when given, tests it on the way out, and one
    that fails is closed and replaced by a new one.
    """

    open: Callable[[], C]
    close_connection: Callable[[C], None]
    healthy: Callable[[C], bool]
    max_size: int
    timeout: float
    check: Callable[[C], bool] | None = None
    _idle: list[C] = attrs.field(factory=list, init=False)
    _out: int = attrs.field(default=0, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _cond: threading.Condition = attrs.field(factory=threading.Condition, init=False)

    def acquire(self) -> C:
        """Take an idle connection or open one; wait while ``max_size`` are out."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._closed or self._out < self.max_size, timeout=self.timeout
            ):
                raise TransientStoreError(
                    f"no connection free after {self.timeout} s ({self.max_size} in use); "
                    "raise max_connections or shorten units of work"
                )
            if self._closed:
                raise UnitOfWorkError("the store is closed")
            self._out += 1
            idle = self._idle.pop() if self._idle else None
        try:
            if idle is not None:
                if self.check is None or self.check(idle):
                    return idle
                self._quietly_close(idle)
            return self.open()
        except BaseException:
            self._give_back_slot()
            raise

    def release(self, connection: C) -> None:
        """Return ``connection``; it is closed if broken or the pool is closed."""
        keep = False
        try:
            keep = self.healthy(connection)
        finally:
            with self._cond:
                keep = keep and not self._closed
                if keep:
                    self._idle.append(connection)
                self._out -= 1
                self._cond.notify()
            if not keep:
                self._quietly_close(connection)

    def close(self) -> None:
        """Close idle connections; connections still out are closed when released."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for connection in idle:
            self._quietly_close(connection)

    @property
    def in_use(self) -> int:
        """How many connections are checked out right now."""
        return self._out

    def _give_back_slot(self) -> None:
        with self._cond:
            self._out -= 1
            self._cond.notify()

    def _quietly_close(self, connection: C) -> None:
        # A connection that fails to close is already gone.
        with contextlib.suppress(Exception):
            self.close_connection(connection)
