"""How SQLite applies an upsert batch: ``executemany`` in one transaction, exact counts.

Counting without a round trip per row: the transaction holds SQLite's write
lock (``BEGIN IMMEDIATE``), so between our statements nobody else writes.
``executemany``'s row count is inserted + updated (an identical row is
skipped by the ``WHERE ... IS NOT ...`` of ``DO UPDATE`` and changes
nothing), and every inserted row, and only those, gets a rowid above the
table's previous maximum. Tables where that does not hold (``WITHOUT
ROWID``, an ``INTEGER PRIMARY KEY`` given in the rows) and ``returning=True``
take an exact row-by-row path.
"""

# Every identifier in these statements went through quote_identifier and every
# value is a bound parameter; S608 cannot see that.
# ruff: noqa: S608

from __future__ import annotations

import datetime
import decimal
from typing import TYPE_CHECKING, Any

from resilient_pipeline.exceptions import StoreError

from ._batch import Batch, ColumnInfo, TableInfo, UpsertResult
from ._sql import quote_columns, quote_identifier

if TYPE_CHECKING:
    from ._sqlite import SQLiteSession

__all__ = ["describe_table", "upsert_batch"]


def _accepted_types(declared: str) -> tuple[type, ...] | None:
    # SQLite's own affinity rules (https://sqlite.org/datatype3.html), plus the
    # date/datetime names sqlite3 users conventionally declare.
    upper = declared.upper()
    if "INT" in upper:
        return (int,)
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return (str,)
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return (int, float)
    if upper.startswith(("DATETIME", "TIMESTAMP")):
        return (datetime.datetime, str)
    if upper.startswith("DATE"):
        return (datetime.date, str)
    if upper.startswith("BOOL"):
        return (bool, int)
    if upper.startswith(("NUMERIC", "DECIMAL")):
        return (int, float, decimal.Decimal)
    return None  # BLOB or no declared type: anything goes


def _to_sql_value(value: object) -> object:
    # Adapt here rather than through sqlite3's global (and, since Python 3.12,
    # deprecated) default adapters, which would affect the whole process.
    if isinstance(value, datetime.datetime):
        return value.isoformat(" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


_ADAPTED = (datetime.date, decimal.Decimal)
_FAST: dict[type, Any] = {datetime.date: datetime.date.isoformat, decimal.Decimal: str}


def _adapt(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    columns = list(zip(*rows, strict=True))
    adapted = False
    # Column by column: one C-level map per adapted column instead of a
    # Python-level tuple rebuild per row.
    for i, column in enumerate(columns):
        kinds = set(map(type, column))
        if not any(issubclass(kind, _ADAPTED) for kind in kinds):
            continue
        adapted = True
        convert = _FAST.get(next(iter(kinds))) if len(kinds) == 1 else None
        columns[i] = tuple(map(convert or _to_sql_value, column))
    return list(zip(*columns, strict=True)) if adapted else rows


def describe_table(session: SQLiteSession, name: str) -> TableInfo:
    """Columns, unique column sets and rowid facts of ``name`` (cached on the store)."""
    cache_key = f"table:{name}"
    cached: TableInfo | None = session.store.cache.get(cache_key)
    if cached is not None:
        return cached
    table = session.table(name)
    described = session.fetchall(f"PRAGMA table_info({table})")
    if not described:
        raise StoreError(f"table {name!r} does not exist", sqlstate="SQLITE_ERROR")
    columns = {
        col: ColumnInfo(col, declared or "ANY", not notnull and not pk, _accepted_types(declared))
        for _, col, declared, notnull, _, pk in described
    }
    primary = [col for _, col, _, _, _, pk in sorted(described, key=lambda r: r[5]) if pk]
    unique = {frozenset(primary)} if primary else set()
    for _, index, is_unique, _, partial in session.fetchall(f"PRAGMA index_list({table})"):
        if is_unique and not partial:
            names = [
                row[2] for row in session.fetchall(f"PRAGMA index_info({quote_identifier(index)})")
            ]
            if None not in names:
                unique.add(frozenset(names))
    try:
        session.fetchall(f"SELECT rowid FROM {table} LIMIT 0")
        has_rowid = True
    except StoreError:
        has_rowid = False
    alias = None
    if has_rowid and len(primary) == 1 and columns[primary[0]].type_name.upper() == "INTEGER":
        alias = primary[0]
    info = TableInfo(
        name,
        table,
        columns,
        frozenset(unique),
        add_constraint="CREATE UNIQUE INDEX {name} ON {table} ({columns})",
        extra={"has_rowid": has_rowid, "rowid_alias": alias},
    )
    session.store.cache[cache_key] = info
    return info


def _statement(batch: Batch) -> str:
    table = batch.table.sql
    placeholders = ", ".join("?" * len(batch.columns))
    sql = (
        f"INSERT INTO {table} ({quote_columns(batch.columns)}) VALUES ({placeholders})"
        f" ON CONFLICT ({quote_columns(batch.key)}) DO "
    )
    if not batch.update_columns:
        return sql + "NOTHING"
    quoted = [quote_identifier(c) for c in batch.update_columns]
    assignments = ", ".join(f"{q} = excluded.{q}" for q in quoted)
    differs = " OR ".join(f"{table}.{q} IS NOT excluded.{q}" for q in quoted)
    where = f"({differs})"
    if batch.version is not None:
        v = quote_identifier(batch.version)
        where += f" AND ({table}.{v} IS NULL OR excluded.{v} >= {table}.{v})"
    return sql + f"UPDATE SET {assignments} WHERE {where}"


def _key_filter(batch: Batch) -> str:
    return " AND ".join(f"{quote_identifier(k)} = ?" for k in batch.key)


def upsert_batch(session: SQLiteSession, batch: Batch) -> UpsertResult:
    """Apply ``batch`` with ``executemany``; exact counts (see docs/idempotency.md)."""
    rows = _adapt(batch.rows)
    sql = _statement(batch)
    table = batch.table.sql
    alias = batch.table.extra["rowid_alias"]
    fast = batch.table.extra["has_rowid"] and alias not in batch.columns and not batch.returning
    if fast:
        top = session.fetchall(f"SELECT max(rowid) FROM {table}")[0][0] or 0
        fast = top < 2**62  # new rowids are max + 1 until the rowid space runs out
    if not fast:
        return _upsert_row_by_row(session, batch, rows, sql)
    stale = _count_stale(session, batch, rows) if batch.version is not None else 0
    changed = session.executemany(sql, rows)
    # Inserted rows, and only they, got a rowid above the old maximum: we hold
    # the write lock (BEGIN IMMEDIATE), so no other writer can interleave.
    inserted = session.fetchall(f"SELECT count(*) FROM {table} WHERE rowid > ?", (top,))[0][0]
    return UpsertResult(
        inserted=inserted,
        updated=changed - inserted,
        unchanged=len(rows) - changed - stale,
        stale=stale,
        duplicates=batch.duplicates,
    )


def _count_stale(session: SQLiteSession, batch: Batch, rows: list[tuple[Any, ...]]) -> int:
    assert batch.version is not None
    v = quote_identifier(batch.version)
    at = batch.columns.index(batch.version)
    total = 0
    # One indexed lookup per row; only paid when a version guard is asked for.
    sql = f"SELECT {v} > ? FROM {batch.table.sql} WHERE {_key_filter(batch)}"
    for row in rows:
        found = session.fetchall(sql, (row[at], *(row[i] for i in batch.key_index)))
        total += bool(found and found[0][0])
    return total


def _upsert_row_by_row(
    session: SQLiteSession, batch: Batch, rows: list[tuple[Any, ...]], sql: str
) -> UpsertResult:
    version = quote_identifier(batch.version) if batch.version is not None else "1"
    at = batch.columns.index(batch.version) if batch.version is not None else None
    probe = f"SELECT {version} > ? FROM {batch.table.sql} WHERE {_key_filter(batch)}"
    inserted: list[tuple[Any, ...]] = []
    updated: list[tuple[Any, ...]] = []
    stale = 0
    for row in rows:
        key = tuple(row[i] for i in batch.key_index)
        found = session.fetchall(probe, (row[at] if at is not None else 0, *key))
        changed = session.execute(sql, row)
        if changed and not found:
            inserted.append(key)
        elif changed:
            updated.append(key)
        elif found and at is not None and found[0][0]:
            stale += 1
    keys = batch.returning
    return UpsertResult(
        inserted=len(inserted),
        updated=len(updated),
        unchanged=len(rows) - len(inserted) - len(updated) - stale,
        stale=stale,
        duplicates=batch.duplicates,
        inserted_keys=tuple(inserted) if keys else (),
        updated_keys=tuple(updated) if keys else (),
    )
