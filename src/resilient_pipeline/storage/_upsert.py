"""``idempotent_upsert``: running a collection twice gives the same table, never duplicates."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar, overload

import attrs

from resilient_pipeline.exceptions import ConfigurationError

from ._batch import OnDuplicate, UpsertOptions, UpsertResult
from ._protocols import Store
from ._transaction import AsyncTransaction, Transaction
from ._uow import unit_of_work
from ._write import RowsUpserted

__all__ = ["RowsUpserted", "aidempotent_upsert", "idempotent_upsert"]

_KEY = ("client_id", "date", "platform")

P = ParamSpec("P")
Row = TypeVar("Row")


def _check_target(target: object, kinds: tuple[type, ...]) -> None:
    if not isinstance(target, (*kinds, Store)):
        names = " or ".join(k.__name__ for k in (*kinds, Store))
        raise ConfigurationError.for_option("target", target, f"must be a {names}")


def _options(
    key: str | Sequence[str],
    update_columns: Sequence[str] | None,
    insert_only: Sequence[str],
    version: str | None,
    returning: bool,
    on_duplicate: OnDuplicate,
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "key": key,
        "update_columns": update_columns,
        "insert_only": insert_only,
        "version": version,
        "returning": returning,
        "on_duplicate": on_duplicate,
    }
    UpsertOptions(**options)  # fail at decoration / call time, naming the option
    return options


def _run_sync(target: Store | Transaction, table: str, rows: Iterable[object], o: Any) -> Any:
    if isinstance(target, Transaction):
        return target.upsert(table, rows, **o)
    with unit_of_work(target, name=f"upsert into {table}") as tx:
        return tx.upsert(table, rows, **o)


async def _run_async(
    target: Store | AsyncTransaction, table: str, rows: Iterable[object], o: Any
) -> UpsertResult:
    if isinstance(target, AsyncTransaction):
        return await target.upsert(table, rows, **o)
    async with unit_of_work(target, name=f"upsert into {table}") as tx:
        return await tx.upsert(table, rows, **o)


@overload
def idempotent_upsert(
    target: Store | Transaction,
    table: str,
    rows: Iterable[object],
    *,
    key: str | Sequence[str] = ...,
    update_columns: Sequence[str] | None = ...,
    insert_only: Sequence[str] = ...,
    version: str | None = ...,
    returning: bool = ...,
    on_duplicate: OnDuplicate = ...,
) -> UpsertResult: ...
@overload
def idempotent_upsert(
    target: Store,
    *,
    table: str,
    key: str | Sequence[str] = ...,
    update_columns: Sequence[str] | None = ...,
    insert_only: Sequence[str] = ...,
    version: str | None = ...,
    returning: bool = ...,
    on_duplicate: OnDuplicate = ...,
) -> _Decorator: ...
def idempotent_upsert(
    target: Store | Transaction,
    table: str | None = None,
    rows: Iterable[object] | None = None,
    *,
    key: str | Sequence[str] = _KEY,
    update_columns: Sequence[str] | None = None,
    insert_only: Sequence[str] = (),
    version: str | None = None,
    returning: bool = False,
    on_duplicate: OnDuplicate = "error",
) -> Any:
    """Insert new keys, update changed rows, leave identical rows alone; exact counts.

    Applying the same batch twice gives the same table as applying it once.
    ``target`` is a store (the upsert runs in its own unit of work, or as a
    savepoint of the one already open in this thread) or a
    :class:`~resilient_pipeline.storage.Transaction` (it joins that unit of work).

    Called without ``rows`` (``table=`` by keyword) it is a decorator: the
    decorated function's returned rows are upserted and the
    :class:`~resilient_pipeline.storage.UpsertResult` is returned instead (async
    functions too).

    Args:
        target: A store or an open transaction.
        table: The table; its ``key`` columns must be covered exactly by a
            UNIQUE constraint or primary key, else
            :class:`~resilient_pipeline.exceptions.MissingUniqueConstraintError`
            says which one to add.
        rows: Mappings, attrs instances or dataclasses, all with the same fields.
        key: The columns that identify a row.
        update_columns: Columns rewritten when the key exists (default: every
            non-key column of the rows except ``insert_only``).
        insert_only: Columns written on insert only (``created_at``).
        version: A column (``updated_at``, a sequence number) that only moves
            forward: a row older than the stored one is skipped and counted ``stale``.
        returning: Also return the inserted and updated keys.
        on_duplicate: A key twice in one batch: ``"error"`` (the default)
            raises :class:`~resilient_pipeline.exceptions.DuplicateKeyError`;
            ``"first"`` / ``"last"`` keep that occurrence and count the others
            as ``duplicates``.

    Raises:
        InvalidBatchError: Unknown columns, missing key values or wrong types,
            each named with its row and column; nothing is written.

    Examples:
        >>> from resilient_pipeline import SQLiteStore, unit_of_work
        >>> store = SQLiteStore(":memory:")
        >>> with unit_of_work(store) as tx:
        ...     _ = tx.execute("CREATE TABLE kpi (day TEXT PRIMARY KEY, clicks INTEGER)")
        >>> rows = [{"day": "2026-11-27", "clicks": 3}, {"day": "2026-11-28", "clicks": 5}]
        >>> idempotent_upsert(store, "kpi", rows, key="day")
        UpsertResult(inserted=2, updated=0, unchanged=0)
        >>> rows[1]["clicks"] = 6
        >>> idempotent_upsert(store, "kpi", rows, key="day")
        UpsertResult(inserted=0, updated=1, unchanged=1)
        >>> @idempotent_upsert(store, table="kpi", key="day")
        ... def collect(day: str) -> list[dict[str, object]]:
        ...     return [{"day": day, "clicks": 1}]
        >>> collect("2026-11-29")
        UpsertResult(inserted=1, updated=0, unchanged=0)
    """
    _check_target(target, (Transaction,))
    options = _options(key, update_columns, insert_only, version, returning, on_duplicate)
    if table is None:
        raise ConfigurationError.for_option("table", table, "is required")
    if rows is not None:
        return _run_sync(target, table, rows, options)
    return _Decorator(target, table, options)


async def aidempotent_upsert(
    target: Store | AsyncTransaction,
    table: str,
    rows: Iterable[object],
    *,
    key: str | Sequence[str] = _KEY,
    update_columns: Sequence[str] | None = None,
    insert_only: Sequence[str] = (),
    version: str | None = None,
    returning: bool = False,
    on_duplicate: OnDuplicate = "error",
) -> UpsertResult:
    """The async twin of :func:`idempotent_upsert` (asyncio and trio).

    Examples:
        >>> import anyio
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> async def main() -> UpsertResult:
        ...     async with unit_of_work(store) as tx:
        ...         await tx.execute("CREATE TABLE kpi (day TEXT PRIMARY KEY, clicks INTEGER)")
        ...         return await aidempotent_upsert(tx, "kpi", [{"day": "d", "clicks": 1}],
        ...                                         key="day")
        >>> anyio.run(main)
        UpsertResult(inserted=1, updated=0, unchanged=0)
    """
    _check_target(target, (AsyncTransaction,))
    options = _options(key, update_columns, insert_only, version, returning, on_duplicate)
    return await _run_async(target, table, rows, options)


@attrs.frozen
class _Decorator:
    target: Store | Transaction
    table: str
    options: dict[str, Any]

    @overload
    def __call__(
        self, fn: Callable[P, Awaitable[Iterable[Any]]]
    ) -> Callable[P, Awaitable[UpsertResult]]: ...
    @overload
    def __call__(self, fn: Callable[P, Iterable[Any]]) -> Callable[P, UpsertResult]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def arun(*args: P.args, **kwargs: P.kwargs) -> UpsertResult:
                rows = await fn(*args, **kwargs)
                target = self.target
                if isinstance(target, Transaction):
                    raise ConfigurationError.for_option(
                        "target", target, "an async function needs a store, not a Transaction"
                    )
                return await _run_async(target, self.table, rows, self.options)

            return arun

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> UpsertResult:
            return _run_sync(self.target, self.table, fn(*args, **kwargs), self.options)  # type: ignore[no-any-return]

        return run
