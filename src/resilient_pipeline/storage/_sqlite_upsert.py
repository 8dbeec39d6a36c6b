"""How SQLite applies an upsert batch: multi-row statements in one transaction, exact counts.

Counting without a round trip per row: the transaction holds SQLite's write
lock (``BEGIN IMMEDIATE``), so between our statements nobody else writes.
The statements' change count is inserted + updated (an identical row is
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

import contextlib
from itertools import chain
from typing import TYPE_CHECKING, Any

from resilient_pipeline.exceptions import StoreError

from ._batch import Batch, ColumnInfo, TableInfo, UpsertResult
from ._sql import quote_columns, quote_identifier
from ._sqlite_values import DEFAULT_MAX_LENGTH, SQLiteValues, accepted_types, affinity

if TYPE_CHECKING:
    from ._sqlite import SQLiteSession

__all__ = ["describe_table", "upsert_batch"]

_SQLITE_LIMIT_LENGTH = 0  # sqlite3.SQLITE_LIMIT_LENGTH, which Python 3.10 lacks
_SQLITE_LIMIT_SQL_LENGTH = 1
_SQLITE_LIMIT_VARIABLE_NUMBER = 9
ROWS_PER_STATEMENT = 256
"""Rows bound to one multi-row ``INSERT`` (fewer if SQLite's limits say so):
past a few dozen, more rows per statement save nothing measurable (callgrind)."""
# A column may shadow a name of the rowid; SQLite answers to any of the three.
_ROWID_NAMES = ("rowid", "_rowid_", "oid")
_SAVEPOINT = quote_identifier("rp_upsert")


def _max_length(session: SQLiteSession) -> int:
    getlimit = getattr(session.connection, "getlimit", None)
    return int(getlimit(_SQLITE_LIMIT_LENGTH)) if getlimit is not None else DEFAULT_MAX_LENGTH


def _is_strict(session: SQLiteSession, name: str) -> bool:
    try:  # PRAGMA table_list is SQLite 3.37+; STRICT tables are too
        found = session.fetchall("SELECT strict FROM pragma_table_list(?)", (name,))
    except StoreError:
        return False
    return bool(found and found[0][0])


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
    strict = _is_strict(session, name)
    columns = {
        col: ColumnInfo(
            col, declared or "ANY", not notnull and not pk, accepted_types(declared, strict=strict)
        )
        for _, col, declared, notnull, _, pk in described
    }
    values = SQLiteValues(
        {col: affinity(declared, strict=strict) for _, col, declared, _, _, _ in described},
        _max_length(session),
    )
    primary = [col for _, col, _, _, _, pk in sorted(described, key=lambda r: r[5]) if pk]
    unique = {frozenset(primary)} if primary else set()
    for _, index, is_unique, _, partial in session.fetchall(f"PRAGMA index_list({table})"):
        if is_unique and not partial:
            # The index name is SQLite's or the user's (sqlite_autoindex_..., any
            # length): a bound parameter, never an identifier we validate.
            names = [row[0] for row in session.fetchall(_INDEX_COLUMNS, (index,))]
            if None not in names:
                unique.add(frozenset(names))
    taken = {col.casefold() for col in columns}
    rowid = next((r for r in _ROWID_NAMES if r not in taken), None)
    has_rowid = rowid is not None
    if rowid is not None:
        try:
            session.fetchall(f"SELECT {rowid} FROM {table} LIMIT 0")
        except StoreError:  # WITHOUT ROWID
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
        extra={"has_rowid": has_rowid, "rowid": rowid, "rowid_alias": alias, "values": values},
        check_values=values,
        convert_values=values.comparable,  # a date and its ISO text are one key
    )
    session.store.cache[cache_key] = info
    return info


_INDEX_COLUMNS = "SELECT name FROM pragma_index_info(?) ORDER BY seqno"


def _statement(batch: Batch, rows: int = 1) -> str:
    table = batch.table.sql
    values = ", ".join(["(" + ", ".join("?" * len(batch.columns)) + ")"] * rows)
    sql = (
        f"INSERT INTO {table} ({quote_columns(batch.columns)}) VALUES {values}"
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


def _rows_per_statement(session: SQLiteSession, batch: Batch) -> int:
    """``ROWS_PER_STATEMENT``, or fewer: SQLite's variable and SQL length limits hold."""
    getlimit = getattr(session.connection, "getlimit", None)
    if getlimit is None:  # Python 3.10: SQLite's defaults before 3.32 (variables) or ever
        variables, length = 999, 1_000_000_000
    else:
        variables = int(getlimit(_SQLITE_LIMIT_VARIABLE_NUMBER))
        length = int(getlimit(_SQLITE_LIMIT_SQL_LENGTH))
    one = len(_statement(batch).encode())
    more = len(", (" + ", ".join("?" * len(batch.columns)) + ")")
    by_length = 1 + (length - one) // more if length >= one else 1
    return max(1, min(ROWS_PER_STATEMENT, variables // len(batch.columns), by_length))


def _insert(session: SQLiteSession, batch: Batch, rows: list[tuple[Any, ...]]) -> int:
    """Every row through multi-row statements, the rest one row at a time; the rows changed.

    A statement of many rows runs SQLite's VM once and crosses from Python into
    C once per statement instead of once per row, with the same per-row upsert
    semantics (each row sees the rows inserted before it). The values are bound
    here (``bind_flat``): the batch's exact dates are still ``date`` objects.
    """
    values: SQLiteValues = batch.table.extra["values"]
    width = len(batch.columns)
    per = _rows_per_statement(session, batch)
    whole = len(rows) - len(rows) % per if per > 1 else 0
    changed = 0
    if whole:
        sql = _statement(batch, per)
        # Bound once for the whole batch (a date seen in many rows is formatted once).
        flat = values.bind_flat(batch.columns, list(chain.from_iterable(rows[:whole])))
        step = per * width
        for start in range(0, len(flat), step):
            changed += session.execute(sql, flat[start : start + step])
    if whole < len(rows):
        rest = values.bind(batch.columns, rows[whole:])
        changed += session.executemany(_statement(batch), rest)
    return changed


def _key_filter(batch: Batch) -> str:
    return " AND ".join(f"{quote_identifier(k)} = ?" for k in batch.key)


def upsert_batch(session: SQLiteSession, batch: Batch) -> UpsertResult:
    """Apply ``batch`` in multi-row statements; exact counts (see docs/idempotency.md).

    In a savepoint: a statement that fails half-way through the batch (a
    CHECK constraint, a trigger) leaves none of its rows behind, even when
    the caller catches the error and commits the rest of the unit of work.
    """
    session.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        result = _write(session, batch)
    except BaseException:
        with contextlib.suppress(StoreError):  # the error that matters is the first one
            session.execute(f"ROLLBACK TO {_SAVEPOINT}")
            session.execute(f"RELEASE {_SAVEPOINT}")
        raise
    session.execute(f"RELEASE {_SAVEPOINT}")
    return result


def _write(session: SQLiteSession, batch: Batch) -> UpsertResult:
    rows = batch.rows  # as SQLite compares them (TableInfo.convert_values), dates aside
    table = batch.table.sql
    alias = batch.table.extra["rowid_alias"]
    fast = batch.table.extra["has_rowid"] and alias not in batch.columns and not batch.returning
    if fast:
        rowid = batch.table.extra["rowid"]
        top = session.fetchall(f"SELECT max({rowid}) FROM {table}")[0][0] or 0
        fast = top < 2**62  # new rowids are max + 1 until the rowid space runs out
    if not fast:
        return _upsert_row_by_row(
            session, batch, batch.table.extra["values"].bind(batch.columns, rows)
        )
    stale = _count_stale(session, batch) if batch.version is not None else 0
    changed = _insert(session, batch, rows)
    # Inserted rows, and only they, got a rowid above the old maximum: we hold
    # the write lock (BEGIN IMMEDIATE), so no other writer can interleave.
    inserted = session.fetchall(f"SELECT count(*) FROM {table} WHERE {rowid} > ?", (top,))[0][0]
    return UpsertResult(
        inserted=inserted,
        updated=changed - inserted,
        unchanged=len(rows) - changed - stale,
        stale=stale,
        duplicates=batch.duplicates,
    )


def _count_stale(session: SQLiteSession, batch: Batch) -> int:
    assert batch.version is not None
    v = quote_identifier(batch.version)
    at = batch.columns.index(batch.version)
    rows = batch.table.extra["values"].bind(batch.columns, batch.rows)
    total = 0
    # One indexed lookup per row; only paid when a version guard is asked for.
    sql = f"SELECT {v} > ? FROM {batch.table.sql} WHERE {_key_filter(batch)}"
    for row in rows:
        found = session.fetchall(sql, (row[at], *(row[i] for i in batch.key_index)))
        total += bool(found and found[0][0])
    return total


def _upsert_row_by_row(
    session: SQLiteSession, batch: Batch, rows: list[tuple[Any, ...]]
) -> UpsertResult:
    sql = _statement(batch)
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
