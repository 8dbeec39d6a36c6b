"""SQLite, the embedded default store: stdlib :mod:`sqlite3`, a file on disk, WAL mode."""

from __future__ import annotations

import functools
import os
import sqlite3
import time
import urllib.parse
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import attrs

from resilient_pipeline._core import integer
from resilient_pipeline.exceptions import ConfigurationError, StoreError

from ._connections import ConnectionSlots, store_error
from ._protocols import Dialect, Params
from ._sql import quote_identifier, validate_identifier
from ._sqlite_upsert import describe_table, upsert_batch

if TYPE_CHECKING:
    from ._batch import Batch, TableInfo, UpsertResult

__all__ = ["SQLiteSession", "SQLiteStore"]

# SQLITE_BUSY and SQLITE_LOCKED (primary codes): another connection holds the lock.
_TRANSIENT_CODES = frozenset({5, 6})


# What sqlite3 raises, outside its own exception tree, for a parameter it cannot
# bind: an int beyond 64 bits (OverflowError), text that is not valid UTF-8.
_BIND_ERRORS = (OverflowError, UnicodeEncodeError)
_ERRORS = (sqlite3.Error, *_BIND_ERRORS)


def _translate(exc: sqlite3.Error | OverflowError | UnicodeEncodeError) -> StoreError:
    if not isinstance(exc, sqlite3.Error):
        return store_error(exc, transient=False)
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        transient = (code & 0xFF) in _TRANSIENT_CODES
    else:  # pragma: no cover - Python 3.10 has no error codes on exceptions
        transient = "locked" in str(exc) or "busy" in str(exc)
    return store_error(exc, transient=transient, sqlstate=getattr(exc, "sqlite_errorname", None))


@attrs.define(eq=False, repr=False)
class SQLiteSession:
    """A :class:`~resilient_pipeline.storage.StoreSession` on one ``sqlite3`` connection.

    Examples:
        >>> store = SQLiteStore(":memory:")
        >>> session = store.connect()
        >>> session.execute("CREATE TABLE t (x INTEGER)")
        -1
        >>> session.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        2
        >>> session.fetchall("SELECT sum(x) FROM t")
        [(3,)]
        >>> session.release(); store.close()
    """

    dialect: ClassVar[Dialect] = "sqlite"
    placeholder: ClassVar[str] = "?"

    store: SQLiteStore
    connection: sqlite3.Connection

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the rows it changed (-1 for DDL and queries)."""
        try:
            return self.connection.execute(sql, params).rowcount
        except _ERRORS as exc:
            raise _translate(exc) from exc

    def executemany(self, sql: str, params_seq: Iterable[Params]) -> int:
        """Run one statement per parameter set; the rows changed in total."""
        try:
            return self.connection.executemany(sql, params_seq).rowcount
        except _ERRORS as exc:
            raise _translate(exc) from exc

    def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query; every row as a tuple."""
        try:
            return self.connection.execute(sql, params).fetchall()
        except _ERRORS as exc:
            raise _translate(exc) from exc

    def begin(self) -> None:
        """``BEGIN IMMEDIATE``: take the write lock now, so a read-then-write never deadlocks."""
        self.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Commit."""
        self.execute("COMMIT")

    def rollback(self) -> None:
        """Roll back if a transaction is open; a dead connection is left to ``release``."""
        try:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def table(self, name: str) -> str:
        """``name`` quoted (SQLite stores have no schema)."""
        return quote_identifier(name, option="table")

    def release(self) -> None:
        """Give the connection back to the store."""
        self.store._slots.release(self.connection)

    def describe_table(self, name: str) -> TableInfo:
        """Columns and unique column sets of ``name`` (cached on the store)."""
        return describe_table(self, name)

    def upsert_batch(self, batch: Batch) -> UpsertResult:
        """Apply a validated batch in this transaction; exact counts."""
        return upsert_batch(self, batch)

    def __repr__(self) -> str:
        return f"<SQLiteSession {self.store.path!r}>"


def _healthy(connection: sqlite3.Connection) -> bool:
    try:
        return not connection.in_transaction
    except sqlite3.ProgrammingError:  # closed
        return False


def _open_connection(
    path: str | os.PathLike[str], *, timeout: float, read_only: bool, wal: bool
) -> sqlite3.Connection:
    """A new connection; a function of the store's settings, never of the store itself."""
    in_memory = os.fspath(path) == ":memory:"
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so the
        # sqlite3 module never opens a transaction behind our back.
        if read_only and not in_memory:
            # A URI, so SQLite never creates the file; quoted, so "?" or "#"
            # in a path is a file name, not the URI's query.
            absolute = os.path.abspath(os.fspath(path))
            return sqlite3.connect(
                f"file:{urllib.parse.quote(absolute)}?mode=ro",
                uri=True,
                timeout=timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        connection = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        if wal and not in_memory:
            _enable_wal(connection, timeout)
    except sqlite3.Error as exc:
        raise _translate(exc) from exc
    return connection


def _enable_wal(connection: sqlite3.Connection, timeout: float) -> None:
    """``PRAGMA journal_mode=WAL``, waiting up to ``timeout`` for the lock it needs.

    SQLite answers "database is locked" to this pragma at once, without its
    busy handler, while another connection holds a lock: several processes
    opening one new database file at the same time hit it (about one open in
    twenty in a test of four). So wait here, as the busy timeout would.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.Error as exc:
            busy = isinstance(exc, sqlite3.OperationalError) and (
                "locked" in str(exc) or "busy" in str(exc)
            )
            if not busy or time.monotonic() + pause > deadline:
                connection.close()
                raise
        time.sleep(pause)  # real time: another process holds the file's lock
        pause = min(pause * 2, 0.05)


@attrs.define(eq=False)
class SQLiteStore:
    """A SQLite database file, written through units of work and ``idempotent_upsert``.

    File databases use WAL mode by default, so readers never block the writer
    and a crash never leaves a half-written batch. Each unit of work opens its
    transaction with ``BEGIN IMMEDIATE`` (it takes the write lock up front),
    so "fetch, validate, then write" cannot be interleaved with another
    writer; other writers wait up to ``timeout`` seconds, then get a
    :class:`~resilient_pipeline.exceptions.TransientStoreError`.

    Args:
        path: The database file (created if missing), or ``":memory:"`` for a
            private in-memory database (one connection, units of work run one
            at a time).
        timeout: Seconds to wait for another writer's lock, and for a free connection.
        wal: Switch file databases to ``journal_mode=WAL`` (persistent in the file).
        max_connections: Connections open at once (threads beyond it wait).
        once_table: The table :meth:`Transaction.once
            <resilient_pipeline.storage.Transaction.once>` records keys in.
        read_only: Open the file read-only (a ``mode=ro`` URI): a missing
            file is an error instead of a new empty database, the journal
            mode is left alone, and every write or DDL statement fails.
            For tools that only look (``python -m resilient_pipeline gaps``).

    Examples:
        >>> from resilient_pipeline import unit_of_work
        >>> store = SQLiteStore(":memory:")
        >>> with unit_of_work(store) as tx:
        ...     _ = tx.execute("CREATE TABLE kpi (day TEXT PRIMARY KEY, spend REAL)")
        ...     _ = tx.execute("INSERT INTO kpi VALUES (?, ?)", ("2026-11-28", 12.5))
        >>> with unit_of_work(store) as tx:
        ...     tx.fetchall("SELECT * FROM kpi")
        [('2026-11-28', 12.5)]
        >>> store.close()
    """

    dialect: ClassVar[Dialect] = "sqlite"
    schema: ClassVar[None] = None

    path: str | os.PathLike[str] = attrs.field()
    timeout: float = attrs.field(default=5.0, kw_only=True)
    wal: bool = attrs.field(default=True, kw_only=True)
    max_connections: int = attrs.field(default=4, kw_only=True)
    once_table: str = attrs.field(default="rp_once", kw_only=True)
    read_only: bool = attrs.field(default=False, kw_only=True)
    _slots: ConnectionSlots[sqlite3.Connection] = attrs.field(init=False, repr=False)
    cache: dict[str, Any] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.path, (str, os.PathLike)):
            raise ConfigurationError.for_option("path", self.path, "must be a str or a path")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)):
            raise ConfigurationError.for_option("timeout", self.timeout, "must be a number")
        if self.timeout < 0:
            raise ConfigurationError.for_option("timeout", self.timeout, "must be >= 0")
        integer(ge=1).check("max_connections", self.max_connections)
        validate_identifier(self.once_table, option="once_table")
        size = 1 if self.in_memory else self.max_connections
        self._slots = ConnectionSlots(
            open=functools.partial(
                _open_connection,
                self.path,
                timeout=self.timeout,
                read_only=self.read_only,
                wal=self.wal,
            ),
            close_connection=sqlite3.Connection.close,
            healthy=_healthy,
            max_size=size,
            timeout=self.timeout,
        )
        # A store dropped without close() closes its idle connections as it goes,
        # rather than leaving them to the garbage collector (a ResourceWarning on
        # Python 3.13). The pool holds nothing of the store, so the store can go.
        weakref.finalize(self, self._slots.close)

    @property
    def in_memory(self) -> bool:
        """Whether this is a private ``":memory:"`` database."""
        return os.fspath(self.path) == ":memory:"

    @property
    def journal_mode(self) -> Literal["wal", "delete", "memory"] | str:
        """The journal mode SQLite reports for the database (``"wal"`` by default)."""
        session = self.connect()
        try:
            return str(session.fetchall("PRAGMA journal_mode")[0][0])
        finally:
            session.release()

    def connect(self) -> SQLiteSession:
        """Check out a connection (see :class:`~resilient_pipeline.storage.StoreSession`)."""
        return SQLiteSession(self, self._slots.acquire())

    def close(self) -> None:
        """Close the idle connections; the store cannot be used afterwards."""
        self._slots.close()
