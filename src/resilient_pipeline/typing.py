"""Public protocols and type aliases that resilient-pipeline's primitives accept.

Example:
    >>> from resilient_pipeline.typing import Clock
    >>> from resilient_pipeline.testing import FakeClock
    >>> isinstance(FakeClock(), Clock)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, TypeVar, runtime_checkable

from typing_extensions import ParamSpec

from ._events import EventHandler

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from ._alerts import Alert
    from ._batch import Batch, TableInfo, UpsertResult
    from ._quarantine import QuarantineRecord

__all__ = [
    "Clock",
    "Dialect",
    "EventHandler",
    "Notifier",
    "Params",
    "Policy",
    "QuarantineSink",
    "RetryAfterExtractor",
    "Store",
    "StoreSession",
    "SupportsRetryAfter",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")


@runtime_checkable
class Clock(Protocol):
    """Where every time-dependent primitive gets the time and sleeps.

    ``monotonic`` measures intervals and deadlines; ``time`` is the wall clock
    (seconds since the epoch), used only to read HTTP dates such as a
    ``Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`` header. ``asleep`` must be
    a cancellation point under asyncio and trio.

    Example:
        >>> from resilient_pipeline.testing import FakeClock
        >>> clock = FakeClock()
        >>> clock.sleep(2.5)
        >>> clock.monotonic()
        2.5
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch."""
        ...

    def sleep(self, seconds: float, /) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float, /) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


@runtime_checkable
class SupportsRetryAfter(Protocol):
    """An exception or result that carries a server-given delay in seconds.

    ``retry_with_backoff`` never retries before ``retry_after`` seconds.

    Example:
        >>> class Throttled(Exception):
        ...     retry_after = 30.0
        >>> isinstance(Throttled(), SupportsRetryAfter)
        True
    """

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before trying again, or ``None`` when unknown."""
        ...


@runtime_checkable
class Notifier(Protocol):
    """Delivers an :class:`~resilient_pipeline.Alert` to people: chat, e-mail, a log.

    ``send`` blocks until the alert is delivered or raises
    :class:`~resilient_pipeline.exceptions.AlertDeliveryError`; an
    :class:`~resilient_pipeline.Alerter` runs it in a worker thread from async
    code, so a notifier is written once. Retrying is the notifier's job (the
    built-in ones use :class:`~resilient_pipeline.RetryPolicy`).

    Example:
        >>> class Printer:
        ...     name = "printer"
        ...     def send(self, alert: "Alert", /) -> None:
        ...         print(alert.title)
        >>> isinstance(Printer(), Notifier)
        True
    """

    @property
    def name(self) -> str:
        """A short name for events and errors (no secrets)."""
        ...

    def send(self, alert: Alert, /) -> None:
        """Deliver ``alert`` or raise."""
        ...


@runtime_checkable
class Policy(Protocol):
    """A policy that decorates sync and async callables, keeping their signature.

    ``RetryPolicy``, ``Timeout``, ``Bulkhead``, ``RateLimiter``, ``Fallback``
    and circuit breakers all are; ``resilient(breaker=...)`` accepts any.

    Example:
        >>> from resilient_pipeline import Bulkhead
        >>> isinstance(Bulkhead(max_concurrent=2), Policy)
        True
    """

    def __call__(self, fn: Callable[_P, _T], /) -> Callable[_P, _T]:
        """Wrap ``fn``; the result has the same parameters and return type."""
        ...


RetryAfterExtractor: TypeAlias = Callable[[object], "float | None"]
"""Reads a server-given delay (seconds) from an exception or a result."""

Dialect: TypeAlias = Literal["sqlite", "postgres"]
"""The SQL dialect a store speaks."""

Params: TypeAlias = Sequence[Any] | Mapping[str, Any]
"""Bound parameters for one statement: positional or named, in the driver's paramstyle."""


@runtime_checkable
class StoreSession(Protocol):
    """One connection, checked out of a :class:`Store` for one unit of work.

    Every method translates driver errors into
    :class:`~resilient_pipeline.exceptions.StoreError` (or its retryable
    :class:`~resilient_pipeline.exceptions.TransientStoreError`) with the
    driver's exception as ``__cause__``. SQL uses the driver's paramstyle:
    ``?`` / ``:name`` on SQLite, ``%s`` / ``%(name)s`` on PostgreSQL
    (see ``placeholder``). Units of work drive sessions; you rarely call one
    directly.

    Example:
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> session = store.connect()
        >>> isinstance(session, StoreSession), session.fetchall("SELECT 1 + ?", (1,))
        (True, [(2,)])
        >>> session.release()
        >>> store.close()
    """

    @property
    def dialect(self) -> Dialect:
        """``"sqlite"`` or ``"postgres"``."""
        ...

    @property
    def placeholder(self) -> str:
        """The driver's positional placeholder: ``?`` (SQLite) or ``%s`` (psycopg)."""
        ...

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed (-1 if unknown)."""
        ...

    def executemany(self, sql: str, params_seq: Iterable[Params]) -> int:
        """Run one statement once per parameter set; return the rows changed in total."""
        ...

    def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query and return every row as a tuple."""
        ...

    def begin(self) -> None:
        """Start a transaction (SQLite takes the write lock at once: ``BEGIN IMMEDIATE``)."""
        ...

    def commit(self) -> None:
        """Commit the transaction."""
        ...

    def rollback(self) -> None:
        """Roll the transaction back; never raises for a connection that is already gone."""
        ...

    def table(self, name: str) -> str:
        """``name`` quoted and qualified with the store's schema, ready for SQL."""
        ...

    def release(self) -> None:
        """Give the connection back to the store (closed instead if it is broken)."""
        ...

    def describe_table(self, name: str) -> TableInfo:
        """Columns and unique column sets of a table (cached on the store)."""
        ...

    def upsert_batch(self, batch: Batch) -> UpsertResult:
        """Apply a validated batch in the open transaction; exact counts."""
        ...


@runtime_checkable
class Store(Protocol):
    """A database that units of work and ``idempotent_upsert`` can write to.

    :class:`~resilient_pipeline.SQLiteStore` and
    :class:`~resilient_pipeline.PostgresStore` implement it. Stores are
    thread-safe: each unit of work checks out its own connection.

    Example:
        >>> from resilient_pipeline import SQLiteStore
        >>> isinstance(SQLiteStore(":memory:"), Store)
        True
    """

    once_table: str
    """The table ``Transaction.once`` records claimed keys in."""

    cache: dict[str, Any]
    """What the library remembers per store: table descriptions, tables known to exist."""

    @property
    def dialect(self) -> Dialect:
        """``"sqlite"`` or ``"postgres"``."""
        ...

    @property
    def schema(self) -> str | None:
        """The schema unqualified table names live in (``None``: the default)."""
        ...

    def connect(self) -> StoreSession:
        """Check out a connection (blocking; waits when the store is at its size limit)."""
        ...

    def close(self) -> None:
        """Close every idle connection; the store cannot be used afterwards."""
        ...


@runtime_checkable
class QuarantineSink(Protocol):
    """Where quarantined rows wait until a fix lets :func:`~resilient_pipeline.replay` save them.

    :class:`~resilient_pipeline.JSONLQuarantine` (a file) and
    :class:`~resilient_pipeline.SQLQuarantine` (a table in a SQLite or
    PostgreSQL store) implement it; so can your own class.

    Example:
        >>> from resilient_pipeline import JSONLQuarantine
        >>> isinstance(JSONLQuarantine("quarantine.jsonl"), QuarantineSink)
        True
    """

    def put(self, records: Sequence[QuarantineRecord]) -> None:
        """Store the records (all of them, or none on error)."""
        ...

    def records(self, *, source: str | None = None) -> list[QuarantineRecord]:
        """Every record still in quarantine (from ``source`` only, if given), oldest first."""
        ...

    def discard(self, ids: Iterable[str]) -> int:
        """Remove the records with these ids; return how many were removed."""
        ...

    def atomic(self) -> AbstractContextManager[object]:
        """A context in which a replay's write and discard commit together, if possible."""
        ...
