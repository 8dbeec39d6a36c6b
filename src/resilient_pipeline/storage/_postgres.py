"""PostgreSQL through psycopg 3: a DSN, a connection or a ``psycopg_pool`` pool.

psycopg is imported lazily: ``pip install 'resilient-pipeline[postgres]'``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from resilient_pipeline._core import integer, redact
from resilient_pipeline.exceptions import ConfigurationError, MissingDependencyError, StoreError

from ._connections import ConnectionSlots, store_error
from ._postgres_dsn import Dsn, parse_dsn
from ._postgres_upsert import describe_table, upsert_batch
from ._protocols import Dialect, Params
from ._sql import quote_qualified, validate_identifier

if TYPE_CHECKING:
    import psycopg

    from ._batch import Batch, TableInfo, UpsertResult

__all__ = ["PostgresSession", "PostgresStore", "is_transient_sqlstate"]

# Retrying can fix these: the connection, the transaction's luck, or the server's load.
_TRANSIENT_STATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "53300",  # too_many_connections
        "53400",  # configuration_limit_exceeded
    }
)


def is_transient_sqlstate(sqlstate: str | None) -> bool:
    """Whether a SQLSTATE says "try again": connection errors (class 08), 40001, 40P01, ...

    Examples:
        >>> is_transient_sqlstate("40001"), is_transient_sqlstate("23505")
        (True, False)
    """
    return sqlstate is not None and (sqlstate.startswith("08") or sqlstate in _TRANSIENT_STATES)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependencyError(
            package="psycopg", extra="postgres", feature="PostgresStore"
        ) from exc
    return psycopg


def _translate(exc: Exception, mask: Callable[[str], str] = redact) -> StoreError:
    psycopg = _psycopg()
    sqlstate = getattr(exc, "sqlstate", None)
    # No SQLSTATE on an OperationalError/InterfaceError means the connection
    # itself failed (reset, refused, closed): a new connection may succeed.
    transient = is_transient_sqlstate(sqlstate) or (
        sqlstate is None and isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    )
    return store_error(exc, transient=transient, sqlstate=sqlstate, mask=mask)


def _alive(connection: Any) -> bool:
    """Whether an idle connection still answers (one round trip; psycopg_pool's check)."""
    try:
        connection.execute("")
    except Exception:
        return False
    return True


@attrs.define(eq=False, repr=False)
class PostgresSession:
    """A :class:`~resilient_pipeline.storage.StoreSession` on one psycopg connection.

    SQL uses psycopg's paramstyle: ``%s`` and ``%(name)s``.

    Examples:
        >>> PostgresSession.placeholder, PostgresSession.dialect
        ('%s', 'postgres')
    """

    dialect: ClassVar[Dialect] = "postgres"
    placeholder: ClassVar[str] = "%s"

    store: PostgresStore
    connection: psycopg.Connection[Any]
    restore_autocommit: bool = False

    def _do(self, fn: Callable[[Any], Any]) -> Any:
        psycopg = _psycopg()
        try:
            with self.connection.cursor() as cursor:
                return fn(cursor)
        except psycopg.Error as exc:
            raise _translate(exc, self.store._mask) from exc

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the rows it changed (-1 when not applicable)."""
        return int(self._do(lambda cur: cur.execute(sql, params or None).rowcount))

    def executemany(self, sql: str, params_seq: Iterable[Params]) -> int:
        """Run one statement per parameter set; the rows changed in total."""

        def run(cur: Any) -> int:
            cur.executemany(sql, params_seq)
            return int(cur.rowcount)

        return int(self._do(run))

    def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query; every row as a tuple."""
        return list(self._do(lambda cur: cur.execute(sql, params or None).fetchall()))

    def fetchall_and_commit(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """A query and ``COMMIT`` in one pipeline (one round trip); the query's rows.

        If the query fails the server skips the ``COMMIT`` (a pipeline stops
        at its first error): the transaction stays open, failed, for
        :meth:`rollback`.
        """

        psycopg = _psycopg()

        def run(cur: Any) -> list[tuple[Any, ...]]:
            # The query's error may surface inside the block (psycopg reads what has
            # arrived) or at its end; raised here, once, either way: left inside,
            # psycopg would log the skipped COMMIT's "pipeline aborted" as a warning.
            failure: Exception | None = None
            try:
                with self.connection.pipeline():
                    try:
                        cur.execute(sql, params or None)
                        self.connection.execute("COMMIT")
                    except psycopg.Error as exc:
                        failure = exc
            except psycopg.Error as exc:
                failure = failure or exc
            if failure is not None:
                raise failure
            return list(cur.fetchall())  # the results came with the pipeline's sync

        return list(self._do(run))

    def copy_rows(
        self, sql: str, rows: Iterable[Sequence[Any]], types: Sequence[int] | None = None
    ) -> None:
        """Stream ``rows`` through ``COPY ... FROM STDIN``; ``types`` (oids) for binary COPY."""

        def run(cur: Any) -> None:
            with cur.copy(sql) as copy:
                if types is not None:
                    copy.set_types(types)
                write = copy.write_row
                for row in rows:
                    write(row)

        self._do(run)

    def find_unsendable(
        self, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> tuple[int, str, str] | None:
        """The first value psycopg cannot send: ``(row index, column, why)``, or ``None``."""
        from psycopg.adapt import PyFormat, Transformer

        transformer = Transformer(self.connection)
        for index, row in enumerate(rows):
            for column, value in zip(columns, row, strict=True):
                if value is None:
                    continue
                try:
                    transformer.get_dumper(value, PyFormat.AUTO).dump(value)
                except Exception as exc:
                    why = f"psycopg cannot send this {type(value).__name__}: {exc}"
                    return index, column, self.store._mask(why)
        return None

    def begin(self) -> None:
        """``BEGIN`` (sessions run in autocommit mode between units of work)."""
        self.execute("BEGIN")

    def commit(self) -> None:
        """``COMMIT``."""
        self.execute("COMMIT")

    def rollback(self) -> None:
        """``ROLLBACK``; a broken connection is left for ``release`` to discard."""
        try:
            if not self.connection.closed:
                self.connection.execute("ROLLBACK")
        except Exception:  # noqa: S110 -- the connection is gone; release() discards it
            pass

    def table(self, name: str) -> str:
        """``name`` quoted and qualified with the store's schema."""
        return quote_qualified(name, self.store.schema)

    def release(self) -> None:
        """Give the connection back to the store (or the pool)."""
        if self.restore_autocommit and not self.connection.closed:
            self.connection.autocommit = False
        self.store._release(self.connection)

    def describe_table(self, name: str) -> TableInfo:
        """Columns and unique column sets of ``name`` (cached on the store)."""
        return describe_table(self, name)

    def upsert_batch(self, batch: Batch) -> UpsertResult:
        """Apply a validated batch in this transaction; exact counts."""
        return upsert_batch(self, batch)

    def __repr__(self) -> str:
        return f"<PostgresSession {self.store.describe()}>"


def _healthy(connection: Any) -> bool:
    psycopg = _psycopg()
    return (
        not connection.closed
        and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    )


@attrs.define(eq=False, repr=False)
class PostgresStore:
    """A PostgreSQL database, written through units of work and ``idempotent_upsert``.

    Args:
        target: A DSN (``"postgresql://user:pw@host/db"`` or ``"host=... dbname=..."``),
            a ``psycopg.Connection`` (used as is, one unit of work at a time,
            never closed by the store) or a ``psycopg_pool.ConnectionPool``.
        schema: The schema unqualified table names resolve to (``None``: the
            connection's ``search_path``).
        max_connections: Connections a DSN store opens at most (threads beyond wait).
        timeout: Seconds to wait for a free connection, and the connect timeout.
        once_table: The table ``Transaction.once`` records keys in.
        copy_threshold: Batches of at least this many rows are upserted through
            ``COPY`` into a temporary table; smaller ones in one ``INSERT``.

    The DSN's password never appears in the repr, logs or errors. A DSN is
    parsed when the store is built: one libpq cannot parse, or one whose
    password would be read as part of the host or port (an ``@``, ``/``,
    ``?``, ``#`` or space left unencoded in a URI), raises
    :class:`~resilient_pipeline.exceptions.ConfigurationError` without
    showing the DSN.

    Idle connections are checked (one round trip) before a unit of work gets
    them, so one killed while idle is replaced instead of failing the next
    unit of work; so are the connections of a ``ConnectionPool`` target.

    Examples:
        >>> store = PostgresStore("postgresql://app:s3cret@db.internal/kpi", schema="analytics")
        >>> store
        PostgresStore('postgresql://app:***@db.internal/kpi', schema='analytics')
    """

    dialect: ClassVar[Dialect] = "postgres"

    target: object = attrs.field()
    schema: str | None = attrs.field(default=None, kw_only=True)
    max_connections: int = attrs.field(default=4, kw_only=True)
    timeout: float = attrs.field(default=10.0, kw_only=True)
    once_table: str = attrs.field(default="rp_once", kw_only=True)
    copy_threshold: int = attrs.field(default=1000, kw_only=True)
    cache: dict[str, Any] = attrs.field(factory=dict, init=False)
    _slots: ConnectionSlots[Any] | None = attrs.field(default=None, init=False)
    _pool: Any = attrs.field(default=None, init=False)
    _dsn: Dsn | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.schema is not None:
            validate_identifier(self.schema, option="schema")
        validate_identifier(self.once_table, option="once_table")
        integer(ge=1).check("max_connections", self.max_connections)
        integer(ge=1).check("copy_threshold", self.copy_threshold)
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)):
            raise ConfigurationError.for_option("timeout", self.timeout, "must be a number")
        if self.timeout <= 0:
            raise ConfigurationError.for_option("timeout", self.timeout, "must be > 0")
        if isinstance(self.target, str):
            _psycopg()
            self._dsn = parse_dsn(self.target)
            self._slots = ConnectionSlots(
                open=self._open,
                close_connection=lambda c: c.close(),
                healthy=_healthy,
                max_size=self.max_connections,
                timeout=self.timeout,
                check=_alive,
            )
            return
        psycopg = _psycopg()
        if isinstance(self.target, psycopg.Connection):
            connection = self.target
            self._slots = ConnectionSlots(
                open=lambda: connection,
                close_connection=lambda c: None,  # the caller owns it
                healthy=lambda c: True,
                max_size=1,
                timeout=self.timeout,
            )
            return
        if callable(getattr(self.target, "getconn", None)):
            self._pool = self.target
            return
        raise ConfigurationError.for_option(
            "target", self.target, "must be a DSN, a psycopg.Connection or a ConnectionPool"
        )

    def describe(self) -> str:
        """Where this store points, password masked."""
        if self._dsn is not None:
            return self._dsn.shown
        return f"<{type(self.target).__name__}>"

    def _mask(self, text: str) -> str:
        """``text`` with this store's DSN secrets (and any other credential) masked."""
        return self._dsn.mask(text) if self._dsn is not None else redact(text)

    def __repr__(self) -> str:
        schema = f", schema={self.schema!r}" if self.schema is not None else ""
        return f"PostgresStore({self.describe()!r}{schema})"

    def _open(self) -> Any:
        psycopg = _psycopg()
        try:
            return psycopg.connect(
                str(self.target), autocommit=True, connect_timeout=max(1, int(self.timeout))
            )
        except psycopg.Error as exc:
            failure = exc
        error = _translate(failure, self._mask)
        # A failed connection attempt keeps the connection in its error
        # (``pgconn``), and with it every option, the password too. Chain a
        # copy without it, raised outside the except block so that not even
        # ``__context__`` keeps the original.
        cause = type(failure)(str(failure))
        del failure
        raise error from cause

    def connect(self) -> PostgresSession:
        """Check out a connection (see :class:`~resilient_pipeline.storage.StoreSession`)."""
        if self._pool is not None:
            connection, restore = self._checkout()
            return PostgresSession(self, connection, restore_autocommit=restore)
        assert self._slots is not None
        connection = self._slots.acquire()
        restore = not connection.autocommit  # a caller's connection: give it back as it was
        if restore:
            connection.autocommit = True
        return PostgresSession(self, connection, restore_autocommit=restore)

    def _checkout(self) -> tuple[Any, bool]:
        """A pool connection that answers, in autocommit mode, and whether to restore it.

        A dead one (killed while idle in the pool) goes back for the pool to
        discard, and the next is tried: the unit of work never sees it.
        """
        psycopg = _psycopg()
        for _ in range(getattr(self._pool, "max_size", 1) + 1):
            try:
                connection = self._pool.getconn(timeout=self.timeout)
            except Exception as exc:
                raise store_error(exc, transient=True, mask=self._mask) from exc
            # Pool connections default to implicit transactions; we issue BEGIN ourselves.
            restore = not connection.autocommit
            with contextlib.suppress(psycopg.Error):
                if restore:
                    if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        connection.rollback()
                    connection.autocommit = True
                if _alive(connection):
                    return connection, restore
            self._pool.putconn(connection)
        raise store_error(
            ConnectionError("every connection the pool gave was dead"),
            transient=True,
            mask=self._mask,
        )

    def _release(self, connection: Any) -> None:
        if self._pool is not None:
            self._pool.putconn(connection)
        else:
            assert self._slots is not None
            self._slots.release(connection)

    def close(self) -> None:
        """Close idle connections this store opened (never a caller's connection or pool)."""
        if self._slots is not None:
            self._slots.close()
