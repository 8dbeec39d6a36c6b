"""Creating the ledger's tables on first use, and adding the columns newer versions need.

Several workers may do it at once on a fresh or an older database; every
statement is safe to race (see :func:`ensure`).
"""

from __future__ import annotations

from resilient_pipeline.exceptions import StoreError
from resilient_pipeline.storage import Transaction, is_concurrent_ddl

from . import _sql as q

__all__ = ["ensure", "table_exists"]


def ensure(tx: Transaction, table: str) -> None:
    """Create ``table`` and ``<table>_restatements`` and their index, and add missing columns.

    The caller caches that this ran (once per store and table).
    """
    index = f"{table}_status"
    partitions, restatements = tx.table(table), tx.table(f"{table}_restatements")
    statements = q.ddl(partitions, restatements, tx.quote(index), tx.dialect)
    for made, statement in zip(
        (partitions, tx.table(index), restatements), statements, strict=True
    ):
        if not _exists(tx, made):
            _run(tx, statement)
    # A database made by an earlier version lacks the newer columns.
    missing = _missing_columns(tx, table)
    if not missing:
        return
    if tx.dialect == "postgres":
        # ADD COLUMN holds an exclusive lock until commit, even as a no-op: take both
        # tables' locks at once, in one order, then look again. A worker that waited
        # for another's upgrade finds the columns there and alters nothing.
        tx.execute(f"LOCK TABLE {partitions}, {restatements} IN ACCESS EXCLUSIVE MODE")
        missing = _missing_columns(tx, table)
    for quoted, column, kind in missing:
        _run(tx, q.add_column(tx.dialect, quoted, column, kind))


def _missing_columns(tx: Transaction, table: str) -> list[tuple[str, str, str]]:
    """``(quoted table, column, type)`` of every column this version adds that is missing."""
    missing = []
    for suffix, columns in q.ADDED_COLUMNS.items():
        quoted = tx.table(f"{table}{suffix}")
        listing, params = q.missing_columns_sql(tx.dialect, tx.placeholder, quoted)
        present = {str(row[0]) for row in tx.fetchall(listing, params)}
        missing += [(quoted, column, kind) for column, kind in columns if column not in present]
    return missing


def _exists(tx: Transaction, name: str) -> bool:
    """Whether the table or index ``name`` (quoted) exists; always ``False`` on SQLite.

    On PostgreSQL even a no-op ``CREATE INDEX IF NOT EXISTS`` share-locks
    the table until commit: two workers doing it and then inserting
    deadlock. SQLite runs DDL under its one write lock, so ``IF NOT
    EXISTS`` is enough there.
    """
    if tx.dialect != "postgres":
        return False
    row = tx.fetchone(f"SELECT to_regclass({tx.placeholder}) IS NOT NULL", (name,))
    return row is not None and bool(row[0])


def _run(tx: Transaction, statement: str) -> None:
    failed_step = tx.failed_step
    try:
        with tx.savepoint():
            tx.execute(statement)
    except StoreError as exc:
        # PostgreSQL: another worker's CREATE committed while ours waited on
        # it (a unique violation on pg_type, or "already exists"): it exists.
        # ADD COLUMN IF NOT EXISTS waits on the other's lock, then finds it.
        if not is_concurrent_ddl(exc):
            raise
        tx.failed_step = failed_step  # recovered: a later failure names its own step


def table_exists(tx: Transaction, table: str) -> bool:
    """Whether the ledger's partitions table exists, found without any DDL (read-only safe)."""
    if tx.dialect == "postgres":
        return _exists(tx, tx.table(table))
    row = tx.fetchone(
        f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = {tx.placeholder}",  # noqa: S608
        (table,),
    )
    return row is not None and bool(row[0])
