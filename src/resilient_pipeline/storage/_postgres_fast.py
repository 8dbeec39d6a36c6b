"""The cheaper statements a COPY-staged upsert tries first, and how they give way.

``INSERT ... ON CONFLICT`` probes the unique index before every insert and
writes a lock record before every update: about a third of the server's work
on a large batch. When no other writer touches the batch's rows meanwhile, a
cheaper statement stores and counts the same:

* ``MERGE`` (PostgreSQL 15+; batches without ``version=`` or ``returning=True``):
  one join of the staged rows with the table, then an ``UPDATE`` of the
  changed rows and an ``INSERT`` of the new keys. ``MERGE`` cannot return
  rows before PostgreSQL 17, so the split between inserted and updated rows
  is read from the transaction's own statistics counters for the table
  (``pg_stat_get_xact_tuples_inserted`` / ``_updated``) before and after it;
  the two differences must add up to the rows ``MERGE`` reports written, or
  it gives way. Against a writer that commits while it runs, it does what the
  one statement would: a key inserted meanwhile is a unique violation (it
  gives way), a row changed meanwhile is compared again and updated only if
  still different (or left alone and counted unchanged, as ``ON CONFLICT ...
  WHERE`` would), a row deleted meanwhile is inserted.
* otherwise a plain ``INSERT`` of the keys new at the snapshot and a plain
  ``UPDATE`` of the changed rows, which reports (an ``'x'`` row) any row it
  meant to write but did not: another writer deleted it, or made it
  identical or newer, after the snapshot.

Either runs in a savepoint with a 1 ms ``lock_timeout``, so it never waits
for a lock and cannot deadlock anyone (its writes are not in key order). On
any error, lock wait or miss the savepoint is rolled back and the one
``INSERT ... ON CONFLICT`` statement runs instead, with the same result (or
error) as if it had run alone. Neither is tried for tables with triggers,
rules or row security (they tell an ``INSERT ... ON CONFLICT`` from an
``UPDATE`` or a ``MERGE``; checked for every such batch, under the table lock
the write takes, so one added after the table was described is seen), for
partitioned tables, nor for keys only PostgreSQL can compare.
"""

# Every identifier in these statements went through quote_identifier and every
# value is a bound parameter; S608 cannot see that.
# ruff: noqa: S608

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resilient_pipeline.exceptions import StoreError

from ._postgres_parts import _assignments, _changed, _counts, _new_flag, _on, _q, _src
from ._sql import quote_columns, quote_identifier

if TYPE_CHECKING:
    from ._batch import Batch
    from ._postgres import PostgresSession

__all__ = ["_try_fast"]

# Whether a plain INSERT or UPDATE does what INSERT ... ON CONFLICT would: a
# plain table (a partitioned one's partitions may have triggers of their
# own), with no rules, row security or user triggers (BEFORE INSERT triggers
# fire for every row ON CONFLICT tries, updated ones too). Any of these can be
# added after the table was described, so it is asked again for every batch
# that could take the fast path (one catalog lookup, in a round trip that is
# made anyway), after taking the lock the write needs: CREATE TRIGGER, CREATE
# RULE and ALTER TABLE wait for it, so the answer holds until commit.
_PLAIN_WRITES = """
SELECT c.relkind = 'r' AND NOT c.relhasrules AND NOT c.relrowsecurity
       AND NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal)
FROM pg_class c WHERE c.oid = %s::regclass
"""


def _fast_statement(batch: Batch, raw: str) -> str:
    """Plain ``INSERT`` of the keys new at the snapshot, plain ``UPDATE`` of the changed rows.

    Only right when no other writer touches these keys meanwhile: then it
    stores and counts what :func:`_statement` would, for less work
    (``ON CONFLICT`` probes the index before each insert, and locks a
    conflicting row in a WAL record of its own before updating it). Whether
    it was right is in its result: an ``'x'`` row when some row of ``src``
    was neither inserted nor updated (deleted, changed or newer meanwhile).
    """
    flag = _new_flag(batch)
    new = quote_identifier(flag)
    cols = quote_columns(batch.columns)
    aliases = ", ".join(f"k{i}" for i in range(len(batch.key)))
    # Only counted, unless the keys are wanted: a smaller tuplestore to keep.
    returned = ", ".join(_q(batch.key, "t.")) if batch.returning else "1"
    names = f"({aliases})" if batch.returning else "(one)"
    ctes = [
        raw,
        _src(batch, guard=False, new_flag=flag),
        f"ins {names} AS (INSERT INTO {batch.table.sql} AS t ({cols}) "
        f"SELECT {cols} FROM src WHERE {new} ORDER BY {quote_columns(batch.key)} "
        f"RETURNING {returned})",
    ]
    inserted, updated = "(SELECT count(*) FROM ins)", "0"
    if batch.update_columns:
        ctes.append(
            f"upd {names} AS (UPDATE {batch.table.sql} AS t "
            f"SET {_assignments(batch, 's.')} FROM src s WHERE NOT s.{new} "
            f"AND {_on(batch, 't.', 's.')} AND {_changed(batch, 't.', 's.')} "
            f"RETURNING {returned})"
        )
        updated = "(SELECT count(*) FROM upd)"
    parts = [_counts(batch, inserted, updated)]
    if batch.returning:
        # In key order, as the one-statement path returns them.
        parts.append(f"SELECT 'i', NULL, NULL, NULL, NULL, {aliases}, NULL FROM ins")
        if batch.update_columns:
            parts.append(
                f"(SELECT 'u', NULL, NULL, NULL, NULL, {aliases}, NULL FROM upd ORDER BY {aliases})"
            )
    nulls = ", ".join(["NULL"] * len(batch.key))
    parts.append(
        f"SELECT 'x', NULL, NULL, NULL, NULL, {nulls}, NULL "
        f"WHERE (SELECT count(*) FROM src) <> {inserted} + {updated}"
    )
    return f"WITH {', '.join(ctes)} " + " UNION ALL ".join(parts)


def _merges(session: PostgresSession, batch: Batch) -> bool:
    """Whether :func:`_merge_statement` can do this batch's work (and count it)."""
    return (
        batch.version is None
        and not batch.returning
        and session.connection.info.server_version >= _MERGE_SINCE
    )


def _merge_statement(batch: Batch, stage: str) -> str:
    """One ``MERGE`` of the staged rows: changed rows updated, new keys inserted."""
    matched = ""
    if batch.update_columns:
        matched = (
            f"WHEN MATCHED AND {_changed(batch, 't.', 's.')} "
            f"THEN UPDATE SET {_assignments(batch, 's.')} "
        )
    return (
        f"MERGE INTO {batch.table.sql} AS t USING {stage} AS s ON {_on(batch, 't.', 's.')} "
        f"{matched}WHEN NOT MATCHED THEN INSERT ({quote_columns(batch.columns)}) "
        f"VALUES ({', '.join(_q(batch.columns, 's.'))})"
    )


def _merged(
    batch: Batch, written: int, inserted: int, updated: int
) -> list[tuple[Any, ...]] | None:
    """The ``'c'`` result row of a ``MERGE``, or ``None`` when its counts do not add up.

    ``written`` is what ``MERGE`` reports, ``inserted`` and ``updated`` what
    the statistics counters moved by: off (``track_counts``), flushed meanwhile
    or anything else that makes them disagree, and the one statement runs instead.
    """
    if inserted < 0 or updated < 0 or inserted + updated != written or written > len(batch.rows):
        return None
    return [("c", None, inserted, updated, 0, *([None] * len(batch.key)), None)]


_FAST_SAVEPOINT = quote_identifier("rp_upsert_fast")
_MERGE_SINCE = 150_000  # server_version of PostgreSQL 15
_WRITTEN = (
    "pg_stat_get_xact_tuples_inserted(%s::regclass), pg_stat_get_xact_tuples_updated(%s::regclass)"
)
# The subquery (not flattened: OFFSET 0) reads the setting before it is changed.
# Also asks whether the fast path is right for the table now (_PLAIN_WRITES),
# and how many rows of the table this transaction has inserted and updated so far.
_NO_LOCK_WAITS = (
    "SELECT p.previous, set_config('lock_timeout', '1ms', true), "
    f"({_PLAIN_WRITES.strip()}), {_WRITTEN} "
    "FROM (SELECT current_setting('lock_timeout') AS previous OFFSET 0) p"
)
# Restores the caller's lock_timeout; the same counters, after the statement.
_RESTORE = f"SELECT set_config('lock_timeout', %s, true), {_WRITTEN}"


def _try_fast(
    session: PostgresSession, batch: Batch, raw: str, stage: str
) -> list[tuple[Any, ...]] | None:
    """The result rows of a cheaper statement, or ``None`` when it was not right.

    ``raw`` is the staged rows as a ``WITH`` part, ``stage`` the staging table.
    It runs in a savepoint and never waits for a lock: a row lock (or key)
    another writer holds makes it give up at once, its own locks with it,
    so it cannot deadlock anyone (its writes are not in key order). On any
    refusal, a conflict, a row another writer changed meanwhile, or counts
    that do not add up, the savepoint is rolled back and the caller runs the
    one-statement path, which then reports (or survives) it exactly as before.
    """
    table = batch.table.sql
    session.execute(f"SAVEPOINT {_FAST_SAVEPOINT}")
    # The lock the write takes anyway (with the caller's lock_timeout, as the
    # ON CONFLICT statement would wait for it): from here until commit no
    # trigger, rule or row security can be added, so the answer below holds.
    session.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
    previous, _, plain, inserted, updated = session.fetchall(_NO_LOCK_WAITS, (table, table, table))[
        0
    ]
    rows: list[tuple[Any, ...]] | None = None
    merge = plain and _merges(session, batch)
    if plain:
        try:
            if merge:
                written = session.execute(_merge_statement(batch, stage))
            else:
                rows = session.fetchall(_fast_statement(batch, raw))
        except StoreError as exc:
            if exc.sqlstate is None or exc.sqlstate.startswith(("08", "57")):
                raise  # the connection, a cancel or a shutdown: nothing to fall back on
            merge = False
    if merge:
        _, inserted_now, updated_now = session.fetchall(_RESTORE, (previous, table, table))[0]
        rows = _merged(batch, written, inserted_now - inserted, updated_now - updated)
    if rows is None or any(row[0] == "x" for row in rows):
        # Also restores lock_timeout, set inside the savepoint.
        session.execute(f"ROLLBACK TO SAVEPOINT {_FAST_SAVEPOINT}")
        session.execute(f"RELEASE SAVEPOINT {_FAST_SAVEPOINT}")
        return None
    if not merge:
        session.execute("SELECT set_config('lock_timeout', %s, true)", (previous,))
    session.execute(f"RELEASE SAVEPOINT {_FAST_SAVEPOINT}")
    return rows
