"""What a database must offer units of work and ``idempotent_upsert``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from ._batch import Batch, TableInfo, UpsertResult

__all__ = ["Dialect", "Params", "Store", "StoreSession"]

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

    Examples:
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

    Examples:
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
