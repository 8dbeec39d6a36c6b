"""How PostgreSQL applies an upsert batch: one statement, in key order, exact counts.

Small batches go in one ``INSERT ... SELECT ... FROM (VALUES ...)`` with
typed parameters; large ones are streamed with ``COPY`` into a temporary
table first. Both paths send the same values (checked and converted by
``_postgres_types``), so they store the same rows or refuse the same ones.
Either way a single statement does the work::

    WITH raw AS (...),
    src AS (SELECT s.* FROM raw s LEFT JOIN t x ON key
            WHERE x.key IS NULL OR (changed AND not older)),
    up AS (
        INSERT INTO t AS t (...) SELECT ... FROM src ORDER BY key
        ON CONFLICT (key) DO UPDATE SET ... WHERE ROW(t....) IS DISTINCT FROM ROW(EXCLUDED....)
        RETURNING (t.xmax = 0)
    ) SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up

``src`` drops the rows identical to (or older than) the stored ones before
the ``INSERT``: ``ON CONFLICT DO UPDATE ... WHERE`` locks every conflicting
row even when its ``WHERE`` skips the update, so without it re-running a
batch would lock every row it touches. ``ORDER BY key`` makes every writer
take its row locks in one order, so concurrent upserts of overlapping keys
wait for each other instead of deadlocking (within one statement; a unit of
work that upserts several batches can still deadlock with another, and is
retried as a :class:`~resilient_pipeline.exceptions.TransientStoreError`).

A freshly inserted row version has no ``xmax``, an updated one has ours:
that tells inserts from updates, and ``unchanged = batch - inserted -
updated - stale``. A partitioned table cannot return ``xmax`` (PostgreSQL:
"cannot retrieve a system column in this context"); there a written row
counts as inserted when its key was new at the statement's snapshot (the
``LEFT JOIN`` in ``src``). The rows written are the same; only the split
between inserted and updated can differ, and only under concurrent writers:
a key another writer inserts after the snapshot and this statement then
updates counts as inserted, one another writer deletes meanwhile and this
statement inserts again counts as updated. With ``version``, a row that reached the ``INSERT`` but
was skipped (another writer committed the same row, or a newer version,
after this statement's snapshot) is classified by a second query, which
sees the rows this statement locked as they are now. ``INSERT ... ON
CONFLICT`` (unlike ``MERGE``) is safe against concurrent inserts of the same
key, which is why it is used even on PostgreSQL 15+.

A COPY-staged batch first tries a cheaper statement (``_postgres_fast``: a
``MERGE``, or a plain ``INSERT`` and ``UPDATE``) in a savepoint that never waits
for a lock; when it cannot be sure it did what the statement above would, it
is rolled back and the statement above runs instead.
"""

# Every identifier in these statements went through quote_identifier and every
# value is a bound parameter; S608 cannot see that.
# ruff: noqa: S608

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from resilient_pipeline.exceptions import (
    DuplicateKeyError,
    InvalidBatchError,
    ResilientPipelineError,
    RowProblem,
    StoreError,
    TransientStoreError,
)

from ._batch import Batch, ColumnInfo, TableInfo, UpsertResult
from ._postgres_fast import _try_fast
from ._postgres_parts import _assignments, _changed, _counts, _new_flag, _on, _q, _src
from ._postgres_types import PgColumn, PgValues, accepted_types
from ._sql import quote_columns, quote_identifier, quote_qualified

if TYPE_CHECKING:
    from ._postgres import PostgresSession

__all__ = ["describe_table", "upsert_batch"]

# A VALUES statement holds at most this many parameters (the protocol's limit is 65535).
_MAX_PARAMETERS = 30_000

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, -1),
       t.typname, a.atttypmod, NOT a.attnotnull, COALESCE(c.collisdeterministic, true),
       CASE WHEN a.attcollation <> t.typcollation
            THEN quote_ident(n.nspname) || '.' || quote_ident(c.collname) END,
       t.typlen, t.typalign
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_collation c ON c.oid = a.attcollation
LEFT JOIN pg_namespace n ON n.oid = c.collnamespace
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_UNIQUE = """
SELECT array_agg(a.attname::text)
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
GROUP BY i.indexrelid
"""


_PARTITIONED = "SELECT relkind = 'p' FROM pg_class WHERE oid = %s::regclass"


# The schema a table name resolves to (the store's, or the search path's).
_SCHEMA = """
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%s)
"""


def describe_table(session: PostgresSession, name: str) -> TableInfo:
    """Columns and unique column sets of ``name`` from the catalog (cached on the store)."""
    cache_key = f"table:{name}"
    cached: TableInfo | None = session.store.cache.get(cache_key)
    if cached is not None:
        return cached
    table = session.table(name)
    schema = session.fetchall(_SCHEMA, (table,))
    if not schema:
        raise StoreError(f"table {table} does not exist", sqlstate="42P01")
    # Always qualified with the schema it resolves to: the upsert's statements name
    # their parts raw, src, up, dup, ...; an unqualified table of one of those names
    # would be read as that part (a table named "raw" was never written).
    table = quote_qualified(name, schema[0][0])
    columns: dict[str, ColumnInfo] = {}
    pg: dict[str, PgColumn] = {}
    described = session.fetchall(_COLUMNS, (table,))
    for col, full, base, typname, typmod, nullable, deterministic, collation, *layout in described:
        columns[col] = ColumnInfo(col, full, nullable, accepted_types(typname))
        pg[col] = PgColumn(col, full, base, typname, typmod, deterministic, collation, *layout)
    unique = frozenset(frozenset(cols) for (cols,) in session.fetchall(_UNIQUE, (table,)))
    # Fixed for the table's life (what the fast path may do is not: _try_fast).
    partitioned = bool(session.fetchall(_PARTITIONED, (table,))[0][0])
    extra = {"pg": pg, "partitioned": partitioned}
    info = TableInfo(name, table, columns, unique, extra=extra, convert_values=PgValues(name, pg))
    session.store.cache[cache_key] = info
    return info


def _conflict(batch: Batch) -> str:
    target = f"ON CONFLICT ({quote_columns(batch.key)}) DO "
    if not batch.update_columns:
        return target + "NOTHING"
    where = _changed(batch, "t.", "EXCLUDED.")
    return target + f"UPDATE SET {_assignments(batch, 'EXCLUDED.')} WHERE {where}"


def _dup(batch: Batch) -> str:
    # Keys PostgreSQL holds equal though Python does not (a case-insensitive
    # collation, citext): the first such pair, by position; then nothing is written.
    n = len(batch.key)
    aliases = ", ".join(f"k{i}" for i in range(n))
    keys = ", ".join(_q(batch.key, "s."))
    numbered = f"SELECT row_number() OVER () - 1, {keys} FROM raw s"
    return (
        f"dup (o, {aliases}) AS (SELECT (array_agg(o ORDER BY o))[1:2], {aliases} "
        f"FROM ({numbered}) r(o, {aliases}) GROUP BY {aliases} HAVING count(*) > 1 "
        # The pair Python would report: the first row whose key came before.
        "ORDER BY (array_agg(o ORDER BY o))[2] LIMIT 1)"
    )


def _statement(batch: Batch, raw: str, *, guard: bool) -> str:
    cols = quote_columns(batch.columns)
    keys = quote_columns(batch.key)
    ctes = [raw]
    if guard:
        ctes.append(_dup(batch))
    # xmax tells an inserted row from an updated one, except on a partitioned
    # table: there the key's being new at the snapshot does (module docstring).
    flag = _new_flag(batch) if batch.table.extra["partitioned"] else None
    ctes.append(_src(batch, guard, new_flag=flag))
    n = len(batch.key)
    aliases = ", ".join(f"k{i}" for i in range(n))
    insert = (
        f"INSERT INTO {batch.table.sql} AS t ({cols}) "
        f"SELECT {cols} FROM src ORDER BY {keys} {_conflict(batch)} "
    )
    written = ", ".join(_q(batch.key, "t."))
    if flag is None:
        ctes.append(f"up (i, {aliases}) AS ({insert}RETURNING (t.xmax = 0), {written})")
    else:
        # One src row per written key: keys are NOT NULL, and unique in src
        # (by Python, or by PostgreSQL's equality under the dup guard).
        on = " AND ".join(f"w.k{i} = s.{q}" for i, q in enumerate(_q(batch.key, "")))
        ctes.append(f"ins ({aliases}) AS ({insert}RETURNING {written})")
        ctes.append(
            f"up (i, {aliases}) AS (SELECT s.{quote_identifier(flag)}, "
            f"{', '.join(f'w.k{i}' for i in range(n))} FROM ins w JOIN src s ON {on})"
        )
    # One result row per fact: ('i'|'u', key) for each written key with
    # returning=True; ('s', key, version) for each row skipped after reaching the
    # INSERT, with version=; ('d', positions, key) for keys only PostgreSQL
    # holds equal; ('c', inserted, updated, stale at the snapshot).
    # The first row types the NULLs of the others (UNION would make them text).
    counts = _counts(batch, "count(*) FILTER (WHERE i)", "count(*) FILTER (WHERE NOT i)")
    parts = [f"{counts} FROM up"]
    if batch.returning:
        written_keys = (
            f"SELECT CASE WHEN i THEN 'i' ELSE 'u' END, NULL, NULL, NULL, NULL, {aliases}, NULL "
            "FROM up"
        )
        # In key order, as RETURNING gives them; a join promises no order.
        parts.append(written_keys if flag is None else f"({written_keys} ORDER BY {aliases})")
    if batch.version is not None:
        v = quote_identifier(batch.version)
        missing = " AND ".join(f"u.k{i} = s.{q}" for i, q in enumerate(_q(batch.key, "")))
        parts.append(
            f"SELECT 's', NULL, NULL, NULL, NULL, {', '.join(_q(batch.key, 's.'))}, s.{v} "
            f"FROM src s WHERE NOT EXISTS (SELECT FROM up u WHERE {missing})"
        )
    if guard:
        parts.append(f"SELECT 'd', o, NULL, NULL, NULL, {aliases}, NULL FROM dup")
    return f"WITH {', '.join(ctes)} " + " UNION ALL ".join(parts)


def _guarded(batch: Batch) -> bool:
    pg: dict[str, PgColumn] = batch.table.extra["pg"]
    return not all(pg[k].exact_key for k in batch.key)


def _values_source(batch: Batch) -> tuple[str, list[Any]]:
    pg: dict[str, PgColumn] = batch.table.extra["pg"]
    casts = ", ".join(f"%s::{pg[c].cast_sql}" for c in batch.columns)
    values = ", ".join([f"({casts})"] * len(batch.rows))
    params = [value for row in batch.rows for value in row]
    return f"raw ({quote_columns(batch.columns)}) AS (VALUES {values})", params


def _binary(batch: Batch) -> list[int] | None:
    """The binary COPY types of the batch's columns, or ``None`` for text COPY."""
    pg: dict[str, PgColumn] = batch.table.extra["pg"]
    oids = [pg[c].binary_oid for c in batch.columns]
    if None in oids:
        return None
    for position, name in enumerate(batch.columns):
        if pg[name].typname == "timestamptz" and any(
            isinstance(row[position], datetime.datetime) and row[position].tzinfo is None
            for row in batch.rows
        ):
            # A naive datetime means the session's time zone, which only the
            # server applies (binary timestamptz is UTC): text COPY, like VALUES.
            return None
    return [oid for oid in oids if oid is not None]


def _copy_stage(session: PostgresSession, batch: Batch) -> str:
    stage = quote_identifier(f"rp_stage_{id(batch):x}")
    cols = quote_columns(batch.columns)
    pg: dict[str, PgColumn] = batch.table.extra["pg"]
    # Its columns in the order that wastes no alignment padding (COPY names them
    # in the batch's order): about a tenth smaller than in the table's order for
    # typical rows, and the staged rows stay in temp_buffers (8 MB by default)
    # longer before PostgreSQL writes them out to read them back.
    packed = quote_columns(sorted(batch.columns, key=lambda c: pg[c].packing))
    session.execute(
        f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
        f"SELECT {packed} FROM {batch.table.sql} WITH NO DATA"
    )
    types = _binary(batch)
    options = " (FORMAT BINARY)" if types is not None else ""
    session.copy_rows(f"COPY {stage} ({cols}) FROM STDIN{options}", batch.rows, types)
    return stage


def upsert_batch(session: PostgresSession, batch: Batch) -> UpsertResult:
    """Apply ``batch`` in one statement (COPY-staged when large); exact counts."""
    small = (
        len(batch.rows) < session.store.copy_threshold
        and len(batch.rows) * len(batch.columns) < _MAX_PARAMETERS
    )
    guard = _guarded(batch)
    try:
        if small:
            raw, params = _values_source(batch)
            rows = session.fetchall(_statement(batch, raw, guard=guard), params)
        else:
            stage = _copy_stage(session, batch)
            raw = f"raw AS (SELECT {quote_columns(batch.columns)} FROM {stage})"
            fast = not guard and not batch.table.extra["partitioned"]
            fast_rows = _try_fast(session, batch, raw, stage) if fast else None
            if fast_rows is None:
                rows = session.fetchall(_statement(batch, raw, guard=guard))
            else:
                rows = fast_rows
            session.execute(f"DROP TABLE {stage}")
    except StoreError as exc:
        # No SQLSTATE and not a lost connection: psycopg refused a value before
        # sending it (a type the value rules do not cover). Say which.
        if exc.sqlstate is None and not isinstance(exc, TransientStoreError):
            located = _unsendable(session, batch)
            if located is not None:
                raise located from exc
        raise
    except ResilientPipelineError:
        raise
    except Exception as exc:
        raise _unsendable(session, batch) or StoreError(
            f"could not send the batch for {batch.table.name}: {type(exc).__name__}: {exc!s:.200}"
        ) from exc
    return _result(session, batch, rows)


def _unsendable(session: PostgresSession, batch: Batch) -> InvalidBatchError | None:
    where = session.find_unsendable(batch.columns, batch.rows)
    if where is None:
        return None
    index, column, problem = where
    return InvalidBatchError(table=batch.table.name, problems=[RowProblem(index, column, problem)])


def _result(session: PostgresSession, batch: Batch, rows: list[tuple[Any, ...]]) -> UpsertResult:
    n = len(batch.key)
    inserted = updated = stale = 0
    inserted_keys: list[tuple[Any, ...]] = []
    updated_keys: list[tuple[Any, ...]] = []
    skipped: list[tuple[Any, ...]] = []
    for tag, positions, a, b, c, *rest in rows:
        key = tuple(rest[:n])
        if tag == "c":
            inserted, updated, stale = a, b, c
        elif tag == "i":
            inserted_keys.append(key)
        elif tag == "u":
            updated_keys.append(key)
        elif tag == "s":
            skipped.append((*key, rest[n]))
        else:  # "d": nothing was written
            raise DuplicateKeyError(
                table=batch.table.name,
                key_columns=batch.key,
                key=key,
                indexes=(positions[0], positions[1]),
            )
    if skipped:
        stale += _stale_now(session, batch, skipped)
    return UpsertResult(
        inserted=inserted,
        updated=updated,
        unchanged=len(batch.rows) - inserted - updated - stale,
        stale=stale,
        duplicates=batch.duplicates,
        inserted_keys=tuple(inserted_keys),
        updated_keys=tuple(updated_keys),
    )


def _stale_now(session: PostgresSession, batch: Batch, skipped: Sequence[tuple[Any, ...]]) -> int:
    """How many rows the INSERT skipped because a newer version was committed meanwhile.

    The skipped rows are locked by this transaction (ON CONFLICT locks the
    rows it skips), so this new snapshot sees them as they stay until commit.
    """
    assert batch.version is not None
    pg: dict[str, PgColumn] = batch.table.extra["pg"]
    names = [*batch.key, batch.version]
    casts = ", ".join(f"%s::{pg[c].cast_sql}" for c in names)
    values = ", ".join([f"({casts})"] * len(skipped))
    v = quote_identifier(batch.version)
    sql = (
        f"SELECT count(*) FROM {batch.table.sql} x JOIN (VALUES {values}) "
        f"s ({quote_columns(names)}) ON {_on(batch, 'x.', 's.')} WHERE x.{v} > s.{v}"
    )
    return int(session.fetchall(sql, [value for row in skipped for value in row])[0][0])
