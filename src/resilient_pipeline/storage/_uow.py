"""Units of work: one transaction across several tables, all or nothing.

``unit_of_work(store)`` is both a sync and an async context manager. The sync
form yields a :class:`~resilient_pipeline.storage.Transaction`; the async form yields
an :class:`~resilient_pipeline.storage.AsyncTransaction` that runs the same sync code
in a worker thread, so it works under asyncio and trio and no logic is
written twice.

Nesting: a ``unit_of_work`` on the same store inside another one, in the same
thread (or the same async task), becomes a SAVEPOINT of the outer
transaction, so a function that saves "all or nothing" on its own also
composes into a bigger all-or-nothing. Another thread or task always gets its
own, independent transaction.
"""

from __future__ import annotations

import contextvars
import threading
from contextlib import ExitStack
from types import TracebackType

import anyio
import anyio.to_thread
import attrs

from resilient_pipeline._core import add_note, non_empty_str
from resilient_pipeline.exceptions import ConfigurationError, StoreError, UnitOfWorkError

from ._protocols import Store
from ._transaction import AsyncTransaction, Transaction

__all__ = ["UnitOfWork", "unit_of_work"]


@attrs.frozen
class _Frame:
    store: Store
    owner: object
    tx: Transaction
    atx: AsyncTransaction | None


_active: contextvars.ContextVar[tuple[_Frame, ...]] = contextvars.ContextVar(
    "resilient_pipeline_units_of_work", default=()
)


def _find(store: Store, owner: object) -> _Frame | None:
    for frame in reversed(_active.get()):
        if frame.store is store and frame.owner == owner:
            return frame
    return None


def _begin(store: Store, name: str) -> Transaction:
    session = store.connect()
    try:
        session.begin()
    except BaseException:
        session.rollback()
        session.release()
        raise
    return Transaction(store, _session=session, name=name)


def _finish(tx: Transaction, error: BaseException | None) -> None:
    """Commit (no error) or roll back, always give the connection back, annotate errors."""
    session = tx._session
    if session is None:
        raise UnitOfWorkError(f"{tx.name}: the unit of work has already ended")
    try:
        if tx.committed:  # by its last statement (Transaction.fetchall_and_commit)
            if error is not None:
                add_note(error, f"unit of work {tx.name!r} had committed before this error")
        elif error is None:
            try:
                session.commit()
            except BaseException as exc:
                tx.failed_step = tx.failed_step or "commit"
                session.rollback()
                _annotate(tx, exc)
                raise
        else:
            session.rollback()
            _annotate(tx, error)
    finally:
        tx.end()
        session.release()
    if error is None or tx.committed:
        tx.run_after_commit()


def _annotate(tx: Transaction, error: BaseException) -> None:
    step = tx.failed_step
    where = f": step {step!r} failed" if step else ""
    add_note(error, f"unit of work {tx.name!r} rolled back{where}")
    if isinstance(error, StoreError) and error.step is None:
        error.step = step


@attrs.define(eq=False)
class UnitOfWork:
    """What :func:`unit_of_work` returns: use it with ``with`` or ``async with``.

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> uow = unit_of_work(SQLiteStore(":memory:"), name="save_kpis")
        >>> uow.name
        'save_kpis'
    """

    store: Store
    name: str = "unit_of_work"
    _tx: Transaction | None = attrs.field(default=None, init=False, repr=False)
    _atx: AsyncTransaction | None = attrs.field(default=None, init=False, repr=False)
    _stack: ExitStack | None = attrs.field(default=None, init=False, repr=False)
    _token: contextvars.Token[tuple[_Frame, ...]] | None = attrs.field(
        default=None, init=False, repr=False
    )

    def _push(self, owner: object, tx: Transaction, atx: AsyncTransaction | None) -> None:
        self._token = _active.set((*_active.get(), _Frame(self.store, owner, tx, atx)))

    def _pop(self) -> None:
        if self._token is not None:
            _active.reset(self._token)
            self._token = None

    # ------------------------------------------------------------------ sync
    def __enter__(self) -> Transaction:
        owner = ("thread", threading.get_ident())
        outer = _find(self.store, owner)
        if outer is not None:
            # Nested: a savepoint of the outer transaction.
            self._stack = ExitStack()
            return self._stack.enter_context(outer.tx.savepoint())
        self._tx = _begin(self.store, self.name)
        self._push(owner, self._tx, None)
        return self._tx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.__exit__(exc_type, exc, tb)
            return
        tx, self._tx = self._tx, None
        self._pop()
        assert tx is not None
        _finish(tx, exc)

    # ----------------------------------------------------------------- async
    async def __aenter__(self) -> AsyncTransaction:
        owner = ("task", anyio.get_current_task().id)
        outer = _find(self.store, owner)
        if outer is not None and outer.atx is not None:
            self._stack = ExitStack()
            await outer.atx.call(self._stack.enter_context, outer.tx.savepoint())
            return outer.atx
        tx = await anyio.to_thread.run_sync(_begin, self.store, self.name)
        self._atx = AsyncTransaction(tx)
        self._push(owner, tx, self._atx)
        return self._atx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Shielded: a cancelled task must still roll back and return its connection.
        with anyio.CancelScope(shield=True):
            if self._stack is not None:
                stack, self._stack = self._stack, None
                await anyio.to_thread.run_sync(stack.__exit__, exc_type, exc, tb)
                return
            atx, self._atx = self._atx, None
            self._pop()
            assert atx is not None
            await atx.call(_finish, atx.sync, exc)


def unit_of_work(store: Store, *, name: str = "unit_of_work") -> UnitOfWork:
    """A transaction across several tables and upserts: everything commits or nothing does.

    Use it with ``with`` (yields a :class:`~resilient_pipeline.storage.Transaction`)
    or ``async with`` (yields an :class:`~resilient_pipeline.storage.AsyncTransaction`).
    The pattern: fetch first, validate, then write. Any exception in the
    block rolls back everything and propagates unchanged, with a note naming
    the unit of work and the step that failed (see ``Transaction.step``).

    A unit of work on the same store inside another one, in the same thread
    or task, becomes a savepoint of the outer one. Retry a whole unit of work
    on :class:`~resilient_pipeline.exceptions.TransientStoreError`: its
    writes are idempotent.

    Args:
        store: The store to write to.
        name: Names the unit of work in error notes.

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> with unit_of_work(store) as tx:
        ...     _ = tx.execute("CREATE TABLE campaigns (id INTEGER PRIMARY KEY)")
        >>> try:
        ...     with unit_of_work(store, name="save") as tx:
        ...         _ = tx.execute("INSERT INTO campaigns VALUES (1)")
        ...         raise RuntimeError("conversions failed to validate")
        ... except RuntimeError:
        ...     pass
        >>> with unit_of_work(store) as tx:
        ...     tx.fetchall("SELECT * FROM campaigns")
        []
        >>> store.close()
    """
    non_empty_str().check("name", name)
    # A runtime protocol check inspects every member (about 10 us): once per type.
    if type(store) not in _STORE_TYPES:
        if not isinstance(store, Store):
            raise ConfigurationError.for_option(
                "store", store, "must be a Store (SQLiteStore, ...)"
            )
        _STORE_TYPES.add(type(store))
    return UnitOfWork(store, name)


_STORE_TYPES: set[type] = set()
