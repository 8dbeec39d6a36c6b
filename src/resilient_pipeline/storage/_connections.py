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


def store_error(exc: BaseException, *, transient: bool, sqlstate: str | None = None) -> StoreError:
    """Translate a driver exception; the caller raises it ``from exc``.

    The message is redacted: drivers echo DSNs (with passwords) in connection errors.
    """
    kind = TransientStoreError if transient else StoreError
    message = redact(str(exc).strip()) or type(exc).__name__
    return kind(f"{type(exc).__name__}: {message}", sqlstate=sqlstate)


@attrs.define(eq=False)
class ConnectionSlots(Generic[C]):
    """A small thread-safe pool: at most ``max_size`` connections out at once.

    Connections are opened lazily and reused; a connection that ``healthy``
    rejects on the way back is closed instead of pooled, so one broken
    connection never poisons the next unit of work (reconnects are safe
    because every write is idempotent).
    """

    open: Callable[[], C]
    close_connection: Callable[[C], None]
    healthy: Callable[[C], bool]
    max_size: int
    timeout: float
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
            if self._idle:
                return self._idle.pop()
        try:
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
