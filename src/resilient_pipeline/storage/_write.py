"""One upsert inside an open transaction: prepare the batch, write it, report the counts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from resilient_pipeline._core import Event, emit
from resilient_pipeline.exceptions import StoreError

from ._batch import UpsertOptions, UpsertResult, prepare_batch

if TYPE_CHECKING:
    from ._transaction import Transaction

__all__ = ["RowsUpserted", "upsert_in"]

# The table changed under a cached description: forget it so a retry re-reads it.
_SCHEMA_STATES = frozenset({"42703", "42P01", "42P10", "42804", "SQLITE_ERROR"})


@attrs.frozen(kw_only=True)
class RowsUpserted(Event):
    """A batch was upserted (``source`` is the table).

    Attributes:
        inserted: New keys.
        updated: Existing keys rewritten with different values.
        unchanged: Rows identical to the stored ones (not rewritten).
        stale: Rows older than the stored ``version``.
        duplicates: Rows dropped by ``on_duplicate``.
    """

    logger_name = "resilient_pipeline.storage"
    level = logging.INFO
    template = (
        "{source}: {inserted} inserted, {updated} updated, {unchanged} unchanged"
        " ({stale} stale, {duplicates} duplicate)"
    )

    inserted: int
    updated: int
    unchanged: int
    stale: int
    duplicates: int


def upsert_in(tx: Transaction, table: str, rows: Iterable[object], **options: Any) -> UpsertResult:
    """Upsert in an open transaction (what ``Transaction.upsert`` runs)."""
    parsed = UpsertOptions(**options)
    session = tx.session
    info = session.describe_table(table)
    batch = prepare_batch(info, rows, parsed)
    if not batch.rows:
        result = UpsertResult(0, 0, 0, duplicates=batch.duplicates)
    else:
        try:
            result = session.upsert_batch(batch)
        except StoreError as exc:
            if exc.sqlstate in _SCHEMA_STATES:
                tx.store.cache.pop(f"table:{table}", None)
            raise
    emit(
        RowsUpserted(
            source=table,
            inserted=result.inserted,
            updated=result.updated,
            unchanged=result.unchanged,
            stale=result.stale,
            duplicates=result.duplicates,
        )
    )
    return result
