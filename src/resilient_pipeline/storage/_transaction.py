"""The transaction a unit of work hands you: SQL, steps, savepoints, ``once`` and upserts."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import attrs

from resilient_pipeline._core import non_empty_str
from resilient_pipeline.exceptions import StoreError, UnitOfWorkError

from ._protocols import Dialect, Params, Store, StoreSession
from ._sql import quote_identifier
from ._write import upsert_in

if TYPE_CHECKING:
    from ._batch import UpsertResult

__all__ = ["AsyncTransaction", "Transaction", "is_concurrent_ddl"]

T = TypeVar("T")

# Dialect-specific DDL of the table ``once`` records keys in.
_ONCE_DDL = {
    "sqlite": "CREATE TABLE IF NOT EXISTS {table} "
    "(key TEXT PRIMARY KEY NOT NULL, done_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    "postgres": "CREATE TABLE IF NOT EXISTS {table} "
    "(key text PRIMARY KEY, done_at timestamptz NOT NULL DEFAULT now())",
}
# Another session created the table between our IF NOT EXISTS check and ours.
# unique_violation (on the catalog), duplicate_table, duplicate_object (the row type of a
# table another session created at the same moment)
_CONCURRENT_DDL = frozenset({"23505", "42P07", "42710"})


def is_concurrent_ddl(error: StoreError) -> bool:
    """Whether ``error`` says another session created the same table or type first.

    ``CREATE ... IF NOT EXISTS`` racing on PostgreSQL fails with a unique
    violation on the catalog (or "already exists"); callers that create their
    schema lazily treat it as success.
    """
    return error.sqlstate in _CONCURRENT_DDL


def _describe(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= 60 else flat[:57] + "..."


@attrs.define(eq=False, repr=False)
class Transaction:
    """An open transaction on one connection; everything commits together or not at all.

    Get one from :func:`~resilient_pipeline.unit_of_work`. SQL uses the
    store's paramstyle (``placeholder``: ``?`` on SQLite, ``%s`` on
    PostgreSQL); values are always parameters, and identifiers go through
    :meth:`quote` / :meth:`table`. Driver errors become
    :class:`~resilient_pipeline.exceptions.StoreError`. Use a transaction
    from one thread at a time.

    Examples:
        >>> from resilient_pipeline import SQLiteStore, unit_of_work
        >>> store = SQLiteStore(":memory:")
        >>> with unit_of_work(store) as tx:
        ...     _ = tx.execute(f"CREATE TABLE {tx.table('runs')} (day TEXT PRIMARY KEY)")
        ...     _ = tx.execute(f"INSERT INTO runs VALUES ({tx.placeholder})", ("2026-11-28",))
        ...     tx.fetchone("SELECT count(*) FROM runs")
        (1,)
        >>> store.close()
    """

    store: Store
    _session: StoreSession | None = attrs.field(alias="_session")
    name: str = "unit_of_work"
    _step: str | None = attrs.field(default=None, init=False)
    failed_step: str | None = attrs.field(default=None, init=False)
    _savepoints: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _after_commit: list[Callable[[], object]] = attrs.field(factory=list, init=False)
    _depth: int = attrs.field(default=0, init=False)  # savepoints open
    committed: bool = attrs.field(default=False, init=False)
    """Whether :meth:`fetchall_and_commit` committed the unit of work already."""

    # ------------------------------------------------------------- plumbing
    @property
    def session(self) -> StoreSession:
        """The connection this transaction runs on (raises once it has ended or committed)."""
        if self._session is None or self.committed:
            raise UnitOfWorkError(f"{self.name}: the unit of work has already ended")
        return self._session

    @property
    def dialect(self) -> Dialect:
        """``"sqlite"`` or ``"postgres"``: pick dialect-specific SQL with it."""
        return self.store.dialect

    @property
    def placeholder(self) -> str:
        """The positional parameter marker: ``"?"`` (SQLite) or ``"%s"`` (PostgreSQL)."""
        return self.session.placeholder

    def _run(self, sql: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except BaseException:
            if self.failed_step is None:
                # Described only on failure: most statements succeed, and every one passes here.
                self.failed_step = self._step or _describe(sql)
            raise

    def end(self) -> None:
        """Forget the connection: the unit of work committed or rolled back."""
        self._session = None

    def after_commit(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the unit of work has committed (never on rollback).

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> with unit_of_work(SQLiteStore(":memory:")) as tx:
            ...     tx.after_commit(lambda: print("committed"))
            ...     print("writing")
            writing
            committed
        """
        self._after_commit.append(callback)

    def run_after_commit(self) -> None:
        """Run the ``after_commit`` callbacks, in order (the unit of work does this)."""
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    # ------------------------------------------------------------------ SQL
    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return how many rows it changed (-1 if not applicable).

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> with unit_of_work(SQLiteStore(":memory:")) as tx:
            ...     tx.execute("CREATE TABLE t (x)")
            -1
        """
        session = self.session
        return self._run(sql, lambda: session.execute(sql, params))

    def executemany(self, sql: str, params_seq: Iterable[Params]) -> int:
        """Run one statement per parameter set; return the rows changed in total.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> with unit_of_work(SQLiteStore(":memory:")) as tx:
            ...     _ = tx.execute("CREATE TABLE t (x)")
            ...     tx.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
            2
        """
        session = self.session
        return self._run(sql, lambda: session.executemany(sql, params_seq))

    def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query and return all rows as tuples.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> with unit_of_work(SQLiteStore(":memory:")) as tx:
            ...     tx.fetchall("SELECT ?, ?", (1, "a"))
            [(1, 'a')]
        """
        session = self.session
        return self._run(sql, lambda: session.fetchall(sql, params))

    def fetchall_and_commit(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run the unit of work's last query and commit with it; the query's rows.

        On PostgreSQL the query and ``COMMIT`` go in one pipeline: one round
        trip instead of two. If the query fails, nothing commits: the error
        propagates and the unit of work rolls back. Afterwards
        :attr:`committed` is true and the transaction takes no more
        statements (the unit of work only ends). Inside a savepoint (a nested
        unit of work) it only runs the query: the outer unit of work commits.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> store = SQLiteStore(":memory:")
            >>> with unit_of_work(store) as tx:
            ...     _ = tx.execute("CREATE TABLE t (x)")
            ...     rows = tx.fetchall_and_commit("INSERT INTO t VALUES (7) RETURNING x")
            ...     rows, tx.committed
            ([(7,)], True)
            >>> with unit_of_work(store) as tx:
            ...     tx.fetchall("SELECT x FROM t")
            [(7,)]
            >>> store.close()
        """
        if self._depth:
            return self.fetchall(sql, params)
        session = self.session
        # A store that cannot send both at once: the query, then the commit.
        both = getattr(session, "fetchall_and_commit", None)
        if both is None:
            rows = self._run(sql, lambda: session.fetchall(sql, params))
            self._run(sql, session.commit)
        else:
            rows = self._run(sql, lambda: both(sql, params))
        self.committed = True
        return rows

    def fetchone(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        """Run a query and return its first row, or ``None`` when it returns none.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> with unit_of_work(SQLiteStore(":memory:")) as tx:
            ...     tx.fetchone("SELECT 1 WHERE 1 = 0") is None
            True
        """
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def quote(self, name: str) -> str:
        """Validate and double-quote an identifier with ``quote_identifier``.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> with unit_of_work(SQLiteStore(":memory:")) as tx:
            ...     tx.quote('odd"name')
            '"odd""name"'
        """
        return quote_identifier(name)

    def table(self, name: str) -> str:
        """``name`` validated, quoted and qualified with the store's schema.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> with unit_of_work(SQLiteStore(":memory:")) as tx:
            ...     tx.table("kpi")
            '"kpi"'
        """
        return self.session.table(name)

    # ------------------------------------------------------ steps, savepoints
    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Name what the block does; if it fails, the error's note says so.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> try:
            ...     with unit_of_work(SQLiteStore(":memory:"), name="save") as tx:
            ...         with tx.step("validate campaigns"):
            ...             raise ValueError("campaign without a name")
            ... except ValueError as e:
            ...     print(e.__notes__[-1])
            unit of work 'save' rolled back: step 'validate campaigns' failed
        """
        previous, self._step = self._step, name
        try:
            yield
        except BaseException:
            if self.failed_step is None:
                self.failed_step = name
            raise
        finally:
            self._step = previous

    @contextmanager
    def savepoint(self) -> Iterator[Transaction]:
        """A nested all-or-nothing block: on error only its own writes are undone.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> with unit_of_work(SQLiteStore(":memory:")) as tx:
            ...     _ = tx.execute("CREATE TABLE t (x)")
            ...     try:
            ...         with tx.savepoint():
            ...             _ = tx.execute("INSERT INTO t VALUES (1)")
            ...             raise KeyError("undo just this")
            ...     except KeyError:
            ...         pass
            ...     tx.fetchone("SELECT count(*) FROM t")
            (0,)
        """
        name = quote_identifier(f"rp_savepoint_{next(self._savepoints)}")
        self.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield self
        except BaseException:
            self._depth -= 1
            self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.execute(f"RELEASE SAVEPOINT {name}")
            raise
        self._depth -= 1
        self.execute(f"RELEASE SAVEPOINT {name}")

    # ----------------------------------------------------------------- once
    def once(self, key: str) -> bool:
        """Claim ``key``: ``True`` the first time, ``False`` if it was ever claimed before.

        The claim is a row in the store's ``once_table``, written in this
        transaction: it commits with your data, and a rollback releases it.
        On PostgreSQL a concurrent claim of the same key waits for this
        transaction and then returns ``False`` (or ``True`` if this one
        rolled back), so a side effect guarded by it happens at most once.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> store = SQLiteStore(":memory:")
            >>> with unit_of_work(store) as tx:
            ...     [tx.once("alert:2026-11-28"), tx.once("alert:2026-11-28")]
            [True, False]
            >>> store.close()
        """
        non_empty_str().check("key", key)
        table = self.table(self.store.once_table)
        self._ensure_once_table(table)
        sql = (
            f"INSERT INTO {table} (key) VALUES ({self.placeholder})"  # noqa: S608 -- quoted
            " ON CONFLICT (key) DO NOTHING"
        )
        with self.step(f"once({key!r})"):
            return self.execute(sql, (key,)) == 1

    def _ensure_once_table(self, table: str) -> None:
        ready: set[str] = self.store.cache.setdefault("once_tables", set())
        if table in ready:
            return
        try:
            with self.savepoint():
                self.execute(_ONCE_DDL[self.dialect].format(table=table))
        except StoreError as exc:
            if exc.sqlstate not in _CONCURRENT_DDL:
                raise
        # Only once committed: a rollback would take the new table with it.
        self.after_commit(lambda: ready.add(table))

    # --------------------------------------------------------------- upsert
    def upsert(self, table: str, rows: Iterable[object], **options: Any) -> UpsertResult:
        """Upsert ``rows`` into ``table`` inside this transaction.

        Takes the options of :func:`~resilient_pipeline.idempotent_upsert`.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> store = SQLiteStore(":memory:")
            >>> with unit_of_work(store) as tx:
            ...     _ = tx.execute("CREATE TABLE kpi (day TEXT PRIMARY KEY, spend REAL)")
            ...     tx.upsert("kpi", [{"day": "2026-11-28", "spend": 1.5}], key=("day",))
            UpsertResult(inserted=1, updated=0, unchanged=0)
        """
        with self.step(f"upsert into {table!r}"):
            return upsert_in(self, table, rows, **options)

    def __repr__(self) -> str:
        state = "ended" if self._session is None else "open"
        return f"<Transaction {self.name!r} on {self.dialect} ({state})>"


@attrs.define(eq=False, repr=False)
class AsyncTransaction:
    """The async face of a :class:`Transaction`: the same methods, awaited.

    Each call runs the sync method in a worker thread (so it works under
    asyncio and trio, and never blocks the event loop); calls are serialised,
    so tasks may share one transaction.

    Examples:
        >>> import anyio
        >>> from resilient_pipeline import SQLiteStore, unit_of_work
        >>> async def main() -> list[tuple[int]]:
        ...     async with unit_of_work(SQLiteStore(":memory:")) as tx:
        ...         return await tx.fetchall("SELECT 40 + 2")
        >>> anyio.run(main)
        [(42,)]
    """

    sync: Transaction
    _lock: anyio.Lock = attrs.field(factory=anyio.Lock, init=False)

    @property
    def dialect(self) -> Dialect:
        """``"sqlite"`` or ``"postgres"``."""
        return self.sync.dialect

    @property
    def placeholder(self) -> str:
        """The positional parameter marker: ``"?"`` or ``"%s"``."""
        return self.sync.placeholder

    def quote(self, name: str) -> str:
        """Validate and double-quote an identifier."""
        return self.sync.quote(name)

    def table(self, name: str) -> str:
        """``name`` validated, quoted and qualified with the store's schema."""
        return self.sync.table(name)

    def step(self, name: str) -> Any:
        """Name what the block does (a plain ``with`` block, also in async code)."""
        return self.sync.step(name)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker thread, one call at a time."""
        async with self._lock:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the rows it changed."""
        return await self.call(self.sync.execute, sql, params)

    async def executemany(self, sql: str, params_seq: Iterable[Params]) -> int:
        """Run one statement per parameter set; the rows changed in total."""
        return await self.call(self.sync.executemany, sql, params_seq)

    async def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query; all rows."""
        return await self.call(self.sync.fetchall, sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        """Run a query; its first row or ``None``."""
        return await self.call(self.sync.fetchone, sql, params)

    async def once(self, key: str) -> bool:
        """Claim ``key`` (see :meth:`Transaction.once`)."""
        return await self.call(self.sync.once, key)

    async def upsert(self, table: str, rows: Iterable[object], **options: Any) -> UpsertResult:
        """Upsert rows in this transaction (see :meth:`Transaction.upsert`)."""
        return await self.call(self.sync.upsert, table, rows, **options)

    def __repr__(self) -> str:
        return repr(self.sync).replace("<Transaction", "<AsyncTransaction", 1)
