"""The pieces the PostgreSQL upsert statements share: joins, comparisons, the count row.

Every identifier goes through :func:`~resilient_pipeline.storage._sql.quote_identifier`;
the statements are built in ``_postgres_upsert`` (one ``INSERT ... ON CONFLICT``)
and ``_postgres_fast`` (the cheaper statements tried first).
"""

# Every identifier in these fragments went through quote_identifier; S608 cannot see that.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._sql import quote_identifier

if TYPE_CHECKING:
    from ._batch import Batch
    from ._postgres_types import PgColumn

__all__ = ["_assignments", "_changed", "_counts", "_new_flag", "_on", "_q", "_src"]


def _q(names: Iterable[str], prefix: str) -> list[str]:
    return [f"{prefix}{quote_identifier(n)}" for n in names]


def _on(batch: Batch, left: str, right: str) -> str:
    return " AND ".join(f"{left}{q} = {right}{q}" for q in _q(batch.key, ""))


def _assignments(batch: Batch, new: str) -> str:
    return ", ".join(f"{q} = {new}{q}" for q in _q(batch.update_columns, ""))


def _changed(batch: Batch, old: str, new: str) -> str:
    """The stored row ``old`` differs from ``new`` (and ``new`` is not older)."""
    before = ", ".join(_q(batch.update_columns, old))
    after = ", ".join(_q(batch.update_columns, new))
    changed = f"ROW({before}) IS DISTINCT FROM ROW({after})"
    if batch.version is not None:
        v = quote_identifier(batch.version)
        changed += f" AND ({old}{v} IS NULL OR {new}{v} >= {old}{v})"
    return changed


def _new_flag(batch: Batch) -> str:
    """A name for ``src``'s extra column (a table's column may have any name)."""
    flag = "rp_new"
    while flag in batch.columns:
        flag += "_"
    return flag


def _src(batch: Batch, guard: bool, new_flag: str | None = None) -> str:
    # Rows new, or changed and not older, at this statement's snapshot. A row
    # another writer changes after the snapshot is then "ours first, theirs after".
    # ``new_flag`` names an extra column: whether the key was new at the snapshot.
    keep = f"x.{quote_identifier(batch.key[0])} IS NULL"
    flag = f", {keep} AS {quote_identifier(new_flag)}" if new_flag is not None else ""
    if batch.update_columns:
        keep += f" OR ({_changed(batch, 'x.', 's.')})"
    if guard:
        keep = f"({keep}) AND NOT EXISTS (SELECT FROM dup)"
    join = f"LEFT JOIN {batch.table.sql} x ON {_on(batch, 'x.', 's.')}"
    return f"src AS (SELECT s.*{flag} FROM raw s {join} WHERE {keep})"


def _counts(batch: Batch, inserted: str, updated: str) -> str:
    """The ``'c'`` result row: inserted, updated, stale at the snapshot; typed NULL keys."""
    pg: dict[str, PgColumn] = batch.table.extra["pg"]
    nulls = ", ".join(f"NULL::{pg[k].cast_sql}" for k in batch.key)
    version_null = f"NULL::{pg[batch.version].cast_sql}" if batch.version else "NULL"
    stale = "0"
    if batch.version is not None:
        v = quote_identifier(batch.version)
        stale = (
            f"(SELECT count(*) FROM raw s JOIN {batch.table.sql} x "
            f"ON {_on(batch, 'x.', 's.')} WHERE x.{v} > s.{v})"
        )
    return f"SELECT 'c', NULL::bigint[], {inserted}, {updated}, {stale}, {nulls}, {version_null}"
