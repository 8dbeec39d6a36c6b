"""How PostgreSQL applies an upsert batch: one statement, exact counts.

Small batches go in one ``INSERT ... SELECT ... FROM (VALUES ...)`` with
typed parameters; large ones are streamed with ``COPY`` into a temporary
table first. Either way a single statement does the work::

    WITH up AS (
        INSERT INTO t AS t (...) SELECT ... FROM src
        ON CONFLICT (key) DO UPDATE SET ... WHERE ROW(t....) IS DISTINCT FROM ROW(EXCLUDED....)
        RETURNING (t.xmax = 0) AS inserted
    ) SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up

Identical rows fail the ``WHERE`` and are neither written nor returned, so
``unchanged = batch - inserted - updated``. A freshly inserted row version has
no ``xmax``, an updated one has ours: that tells inserts from updates.
``INSERT ... ON CONFLICT`` (unlike ``MERGE``) is safe against concurrent
inserts of the same key, which is why it is used even on PostgreSQL 15+.
"""

# Every identifier in these statements went through quote_identifier and every
# value is a bound parameter; S608 cannot see that.
# ruff: noqa: S608

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import TYPE_CHECKING, Any

from resilient_pipeline.exceptions import StoreError

from ._batch import Batch, ColumnInfo, TableInfo, UpsertResult
from ._sql import quote_columns, quote_identifier

if TYPE_CHECKING:
    from ._postgres import PostgresSession

__all__ = ["describe_table", "upsert_batch"]

_NUMBER = (int, float, decimal.Decimal)
_BY_TYPE: dict[str, tuple[type, ...] | None] = {
    "int2": (int,),
    "int4": (int,),
    "int8": (int,),
    "float4": _NUMBER,
    "float8": _NUMBER,
    "numeric": _NUMBER,
    "text": (str,),
    "varchar": (str,),
    "bpchar": (str,),
    "citext": (str,),
    "name": (str,),
    "bool": (bool,),
    "date": (datetime.date,),
    "timestamp": (datetime.datetime,),
    "timestamptz": (datetime.datetime,),
    "time": (datetime.time,),
    "interval": (datetime.timedelta,),
    "uuid": (uuid.UUID, str),
    "bytea": (bytes, bytearray, memoryview),
}

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, NOT a.attnotnull,
       a.atttypid::int
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_UNIQUE = """
SELECT array_agg(a.attname::text)
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid
"""


def describe_table(session: PostgresSession, name: str) -> TableInfo:
    """Columns and unique column sets of ``name`` from the catalog (cached on the store)."""
    cache_key = f"table:{name}"
    cached: TableInfo | None = session.store.cache.get(cache_key)
    if cached is not None:
        return cached
    table = session.table(name)
    if session.fetchall("SELECT to_regclass(%s)", (table,))[0][0] is None:
        raise StoreError(f"table {table} does not exist", sqlstate="42P01")
    described = session.fetchall(_COLUMNS, (table,))
    columns = {
        col: ColumnInfo(col, formatted, nullable, _BY_TYPE.get(typname))
        for col, formatted, typname, nullable, _ in described
    }
    # Binary COPY needs the type oids; only for the types we check (and so know psycopg dumps).
    oids = {row[0]: row[4] for row in described if row[2] in _BY_TYPE}
    unique = frozenset(frozenset(cols) for (cols,) in session.fetchall(_UNIQUE, (table,)))
    info = TableInfo(name, table, columns, unique, extra={"oids": oids})
    session.store.cache[cache_key] = info
    return info


def _conflict(batch: Batch) -> str:
    target = f"ON CONFLICT ({quote_columns(batch.key)}) DO "
    if not batch.update_columns:
        return target + "NOTHING"
    quoted = [quote_identifier(c) for c in batch.update_columns]
    assignments = ", ".join(f"{q} = EXCLUDED.{q}" for q in quoted)
    old = ", ".join(f"t.{q}" for q in quoted)
    new = ", ".join(f"EXCLUDED.{q}" for q in quoted)
    where = f"ROW({old}) IS DISTINCT FROM ROW({new})"
    if batch.version is not None:
        v = quote_identifier(batch.version)
        where += f" AND (t.{v} IS NULL OR EXCLUDED.{v} >= t.{v})"
    return target + f"UPDATE SET {assignments} WHERE {where}"


def _prefilter(batch: Batch) -> str:
    # Drop rows identical to the stored ones before the INSERT: ON CONFLICT DO
    # UPDATE ... WHERE locks (and so dirties) every conflicting row even when
    # its WHERE skips the update. A row changed concurrently after our snapshot
    # is then simply "ours first, theirs after".
    on = " AND ".join(f"x.{quote_identifier(k)} = s.{quote_identifier(k)}" for k in batch.key)
    new = f"x.{quote_identifier(batch.key[0])} IS NULL"
    if batch.update_columns:
        quoted = [quote_identifier(c) for c in batch.update_columns]
        old = ", ".join(f"x.{q}" for q in quoted)
        incoming = ", ".join(f"s.{q}" for q in quoted)
        new += f" OR ROW({old}) IS DISTINCT FROM ROW({incoming})"
    return f"src AS (SELECT s.* FROM raw s LEFT JOIN {batch.table.sql} x ON {on} WHERE {new})"


def _statement(batch: Batch, source: str, *, prefilter: bool = False) -> str:
    cols = quote_columns(batch.columns)
    keys = ", ".join(f"t.{quote_identifier(k)}" for k in batch.key)
    source += ", " + (_prefilter(batch) if prefilter else "src AS (SELECT * FROM raw)")
    up = (
        f"up AS (INSERT INTO {batch.table.sql} AS t ({cols}) SELECT {cols} FROM src "
        f"{_conflict(batch)} RETURNING (t.xmax = 0) AS inserted, {keys})"
    )
    stale = "0"
    if batch.version is not None:
        v = quote_identifier(batch.version)
        on = " AND ".join(f"x.{quote_identifier(k)} = s.{quote_identifier(k)}" for k in batch.key)
        stale = f"(SELECT count(*) FROM raw s JOIN {batch.table.sql} x ON {on} WHERE x.{v} > s.{v})"
    if batch.returning:
        # One row per written key, then one row (inserted IS NULL) with the stale count.
        nulls = ", ".join(["NULL"] * len(batch.key))
        select = f"SELECT *, NULL::bigint FROM up UNION ALL SELECT NULL, {nulls}, {stale}"
    else:
        select = (
            "SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted), "
            f"{stale} FROM up"
        )
    return f"WITH {source}, {up} {select}"


def upsert_batch(session: PostgresSession, batch: Batch) -> UpsertResult:
    """Apply ``batch`` in one statement (COPY-staged when large); exact counts."""
    width = len(batch.columns)
    small = len(batch.rows) < session.store.copy_threshold and len(batch.rows) * width < 30_000
    if small:
        casts = ", ".join(f"%s::{batch.table.columns[c].type_name}" for c in batch.columns)
        values = ", ".join([f"({casts})"] * len(batch.rows))
        source = f"raw ({quote_columns(batch.columns)}) AS (VALUES {values})"
        params = [value for row in batch.rows for value in row]
        rows = session.fetchall(_statement(batch, source), params)
    else:
        stage = quote_identifier(f"rp_stage_{id(batch):x}")
        cols = quote_columns(batch.columns)
        session.execute(
            f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
            f"SELECT {cols} FROM {batch.table.sql} WITH NO DATA"
        )
        oids = batch.table.extra["oids"]
        if all(c in oids for c in batch.columns):
            # Binary COPY: no text parsing on the server.
            types = [oids[c] for c in batch.columns]
            session.copy_rows(
                f"COPY {stage} ({cols}) FROM STDIN (FORMAT BINARY)", batch.rows, types
            )
        else:
            session.copy_rows(f"COPY {stage} ({cols}) FROM STDIN", batch.rows)
        statement = _statement(batch, f"raw AS (SELECT * FROM {stage})", prefilter=True)
        rows = session.fetchall(statement)
        session.execute(f"DROP TABLE {stage}")
    return _result(batch, rows)


def _result(batch: Batch, rows: list[tuple[Any, ...]]) -> UpsertResult:
    size = len(batch.rows)
    if not batch.returning:
        inserted, updated, stale = rows[0]
        return UpsertResult(
            inserted=inserted,
            updated=updated,
            unchanged=size - inserted - updated - stale,
            stale=stale,
            duplicates=batch.duplicates,
        )
    n = len(batch.key)
    inserted_keys = tuple(tuple(r[1 : 1 + n]) for r in rows if r[0] is True)
    updated_keys = tuple(tuple(r[1 : 1 + n]) for r in rows if r[0] is False)
    stale = next(r[-1] for r in rows if r[0] is None)
    return UpsertResult(
        inserted=len(inserted_keys),
        updated=len(updated_keys),
        unchanged=size - len(inserted_keys) - len(updated_keys) - stale,
        stale=stale,
        duplicates=batch.duplicates,
        inserted_keys=inserted_keys,
        updated_keys=updated_keys,
    )
