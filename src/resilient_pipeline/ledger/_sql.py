"""The ledger's tables and statements (the fingerprint of the rows is in ``_fingerprint``).

One DDL serves SQLite and PostgreSQL (``DOUBLE PRECISION`` has REAL affinity
on SQLite). Identifiers come from :meth:`Transaction.table`, values are
always parameters; ``{p}`` is replaced by the store's placeholder.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

from resilient_pipeline.exceptions import ConfigurationError

__all__ = [
    "ADDED_COLUMNS",
    "COLUMNS",
    "LEASE_LOST",
    "SEPARATOR",
    "add_column",
    "checked_text",
    "ddl",
    "key_text",
    "listed",
    "missing_columns_sql",
    "one_of",
    "period_text",
    "source_text",
    "sql",
]

COLUMNS = (
    "source",
    "key",
    "period",
    "status",
    "attempts",
    "last_error",
    "row_count",
    "fingerprint",
    "duration",
    "run_id",
    "lease_owner",
    "lease_expires",
    "updated_at",
    "restatements",
    "error_class",
    "error_at",
    "crashes",
    "measure",
)

# Columns added after the first release, per table suffix ("" or "_restatements"):
# _ensure_schema adds the missing ones to an existing database (ALTER TABLE ... ADD COLUMN).
ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("error_class", "TEXT"),
        ("error_at", "DOUBLE PRECISION"),
        ("crashes", "INTEGER NOT NULL DEFAULT 0"),
        ("measure", "DOUBLE PRECISION"),
    ),
    "_restatements": (
        ("before_measure", "DOUBLE PRECISION"),
        ("after_measure", "DOUBLE PRECISION"),
    ),
}


def ddl(partitions: str, restatements: str, index: str, dialect: str) -> list[str]:
    """CREATE statements (idempotent) for the ledger's two tables and its index."""
    # Byte order on PostgreSQL too, so period ranges and ordering never depend on a locale.
    text = 'TEXT COLLATE "C"' if dialect == "postgres" else "TEXT"
    return [
        f"CREATE TABLE IF NOT EXISTS {partitions} ("
        f" source {text} NOT NULL, key {text} NOT NULL, period {text} NOT NULL,"
        " status TEXT NOT NULL DEFAULT 'pending',"
        " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
        " row_count BIGINT, fingerprint TEXT, duration DOUBLE PRECISION, run_id TEXT,"
        " lease_owner TEXT, lease_expires DOUBLE PRECISION,"
        " updated_at DOUBLE PRECISION NOT NULL DEFAULT 0,"
        " restatements INTEGER NOT NULL DEFAULT 0,"
        " error_class TEXT, error_at DOUBLE PRECISION, crashes INTEGER NOT NULL DEFAULT 0,"
        " measure DOUBLE PRECISION,"
        " PRIMARY KEY (source, period, key))",
        # Covering for gaps(): the succeeded keys of a period range, from the index alone.
        f"CREATE INDEX IF NOT EXISTS {index} ON {partitions} (source, status, period, key)",
        f"CREATE TABLE IF NOT EXISTS {restatements} ("
        " source TEXT NOT NULL, key TEXT NOT NULL, period TEXT NOT NULL,"
        " run_id TEXT, restated_at DOUBLE PRECISION NOT NULL,"
        " before_rows BIGINT, after_rows BIGINT,"
        " before_fingerprint TEXT, after_fingerprint TEXT,"
        " before_measure DOUBLE PRECISION, after_measure DOUBLE PRECISION)",
    ]


def missing_columns_sql(
    dialect: str, placeholder: str, quoted_table: str
) -> tuple[str, tuple[str, ...]]:
    """A query listing a table's column names (no lock taken), and its parameters."""
    if dialect == "postgres":
        return (
            "SELECT attname FROM pg_attribute"  # noqa: S608 -- a placeholder, no value
            f" WHERE attrelid = to_regclass({placeholder}) AND attnum > 0 AND NOT attisdropped",
            (quoted_table,),
        )
    # the table name comes quoted from Transaction.table()
    listing = f"SELECT name FROM pragma_table_info({placeholder})"  # noqa: S608 -- a placeholder
    return listing, (_unquote(quoted_table),)


def add_column(dialect: str, quoted_table: str, column: str, kind: str) -> str:
    """``ALTER TABLE ... ADD COLUMN`` (``IF NOT EXISTS`` where the database has it)."""
    guard = "IF NOT EXISTS " if dialect == "postgres" else ""
    return f"ALTER TABLE {quoted_table} ADD COLUMN {guard}{column} {kind}"


def _unquote(quoted: str) -> str:
    name = quoted.rsplit(".", 1)[-1]
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1].replace('""', '"')
    return name


def sql(template: str, placeholder: str, **tables: str) -> str:
    """Fill in quoted table names and the store's placeholder."""
    return template.format(p=placeholder, **tables)


# Statements, by purpose; {t} is the partitions table, {r} the restatements table.
PLAN = (
    "INSERT INTO {t} (source, key, period, status, updated_at)"
    " VALUES ({p}, {p}, {p}, 'pending', {p}) ON CONFLICT DO NOTHING"
)
# One row per period with its succeeded keys joined by a separator: 365 rows
# instead of 365,000 cross the driver, and Python compares sets in C.
SUCCEEDED_IN_RANGE = (
    "SELECT period, {concat}(key, {p}) FROM {t}"
    " WHERE source = {p} AND status = 'succeeded' AND period >= {p} AND period <= {p}"
    " GROUP BY period"
)
SOURCES = "SELECT DISTINCT source FROM {t}"
RECORDS_IN_RANGE = (
    "SELECT {columns} FROM {t} WHERE source = {p} AND period >= {p} AND period <= {p}{only}"
)
NOT_SUCCEEDED_IN_RANGE = RECORDS_IN_RANGE + " AND status <> 'succeeded'"
# What a claim may take, one branch per status, in the order claims take them:
# new work (pending), failures of earlier runs, expired leases (a crashed
# worker's), then, when asked, exhausted partitions and look-back re-checks of
# succeeded ones. A failed (or exhausted) partition is taken once per run: one
# that failed in this run waits for the next (no hot loop). Each branch walks
# the (source, status, period, key) index in order and stops at its LIMIT, so
# a claim costs the same at 300 partitions as at 3 million (one sorted scan of
# the whole range per claim made a backfill quadratic). An old database may
# still hold 'quarantined', the former name of 'exhausted'.
CLAIM_PENDING = "status = 'pending'"
CLAIM_FAILED = "status = 'failed' AND COALESCE(run_id, '') <> {p}"
CLAIM_EXPIRED = "status = 'running' AND lease_expires < {p}"
CLAIM_EXHAUSTED = "status = {p} AND COALESCE(run_id, '') <> {p}"
# A look-back re-collects a succeeded partition once per run, if nobody holds it.
CLAIM_RECHECK = (
    "status = 'succeeded' AND COALESCE(run_id, '') <> {p}"
    " AND (lease_expires IS NULL OR lease_expires < {p}){recheck}"
)
CLAIMABLE = (
    "SELECT key, period, status, fingerprint, row_count, attempts, lease_owner, measure"
    " FROM {t} WHERE source = {p} AND {claimable} AND period >= {p} AND period <= {p}{only}"
    " ORDER BY period, key LIMIT {limit}"
)
# PostgreSQL: find and lease in one statement (one round trip per claim, not two).
# RETURNING shows the new row: its former status and owner come from the locked
# row's values, c. Rows come back in no particular order.
CLAIM_RETURNING = (
    "UPDATE {t} AS t SET status = CASE WHEN t.status = 'succeeded' THEN t.status"
    " ELSE 'running' END,"
    " crashes = t.crashes + CASE WHEN t.lease_owner IS NULL THEN 0 ELSE 1 END,"
    " lease_owner = {p}, lease_expires = {p}, run_id = {p}, updated_at = {p}"
    " FROM (SELECT source, key, period, status, lease_owner FROM {t}"
    " WHERE source = {p} AND {claimable} AND period >= {p} AND period <= {p}{only}"
    " ORDER BY period, key LIMIT {limit} FOR UPDATE SKIP LOCKED) AS c"
    " WHERE t.source = c.source AND t.period = c.period AND t.key = c.key"
    " RETURNING t.key, t.period, c.status, t.fingerprint, t.row_count, t.attempts,"
    " c.lease_owner, t.measure"
)
# A claim is not an attempt. A succeeded partition stays succeeded while it is
# re-collected (its data is there); a lease taken over from a worker that
# never released it (killed, hung) counts as a crash.
CLAIM = (
    "UPDATE {t} SET status = CASE WHEN status = 'succeeded' THEN status ELSE 'running' END,"
    " crashes = crashes + CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END,"
    " lease_owner = {p}, lease_expires = {p}, run_id = {p}, updated_at = {p}"
    " WHERE source = {p} AND key = {p} AND period = {p}"
)
RENEW = (
    "UPDATE {t} SET lease_expires = {p}"
    " WHERE source = {p} AND key = {p} AND period = {p} AND lease_owner = {p}"
)
CURRENT = (
    "SELECT status, lease_owner, fingerprint, row_count, attempts, lease_expires, measure,"
    " last_error, error_class, error_at FROM {t} WHERE source = {p} AND key = {p} AND period = {p}"
)
SUCCEED = (
    "UPDATE {t} SET status = 'succeeded', last_error = NULL, error_class = NULL,"
    " error_at = NULL, row_count = {p}, fingerprint = {p}, duration = {p}, run_id = {p},"
    " measure = {p}, lease_owner = NULL, lease_expires = NULL, updated_at = {p},"
    " restatements = restatements + {p}"
    " WHERE source = {p} AND key = {p} AND period = {p}"
)
STILL_OURS = " AND lease_owner = {p}"
# PostgreSQL: a claimed partition's success (done: 1 row, or 0 if the lease was
# lost) and the claim of the worker's next pending partition, one round trip.
# They cannot touch the same row: the succeeded one is not pending. A lost lease
# fails the statement in the server (the cast of LEASE_LOST, SQLSTATE 22P02), so
# that a COMMIT sent with it in one pipeline is skipped: see Transaction.fetchall_and_commit.
# Constant statements joined; the tables and the placeholder are filled in by sql().
LEASE_LOST = "resilient_pipeline: lease lost"
SUCCEED_THEN_CLAIM = (
    "WITH done AS (" + SUCCEED + STILL_OURS + " RETURNING 1),"  # noqa: S608
    " taken AS (" + CLAIM_RETURNING + ")"
    " SELECT CAST(CASE (SELECT count(*) FROM done) WHEN 1 THEN '1'"
    " ELSE '" + LEASE_LOST + "' END AS integer), taken.*"
    " FROM (SELECT 1) AS one LEFT JOIN taken ON true"
)
START = (
    "INSERT INTO {t} (source, key, period, status, attempts, lease_owner, lease_expires,"
    " run_id, updated_at) VALUES ({p}, {p}, {p}, 'running', 0, {p}, {p}, {p}, {p})"
    " ON CONFLICT (source, period, key) DO UPDATE SET"
    " status = CASE WHEN {t}.status = 'succeeded' THEN {t}.status ELSE 'running' END,"
    " crashes = {t}.crashes + CASE WHEN {t}.lease_owner IS NULL THEN 0 ELSE 1 END,"
    " lease_owner = excluded.lease_owner,"
    " lease_expires = excluded.lease_expires, run_id = excluded.run_id,"
    " updated_at = excluded.updated_at"
)
UPSERT_SUCCEEDED = (
    "INSERT INTO {t} (source, key, period, status, attempts, row_count, fingerprint, duration,"
    " run_id, measure, updated_at)"
    " VALUES ({p}, {p}, {p}, 'succeeded', 0, {p}, {p}, {p}, {p}, {p}, {p})"
)
FAIL = (
    "UPDATE {t} SET status = {p}, attempts = {p}, last_error = {p}, error_class = {p},"
    " error_at = {p}, duration = {p}, run_id = {p},"
    " lease_owner = NULL, lease_expires = NULL, updated_at = {p}"
    " WHERE source = {p} AND key = {p} AND period = {p}"
    " AND (lease_owner IS NULL OR lease_owner = {p})"
)
RESET = (
    "UPDATE {t} SET status = 'pending', attempts = 0, lease_owner = NULL,"
    " lease_expires = NULL, updated_at = {p}"
    " WHERE source = {p} AND key = {p} AND period = {p} AND status = {p}"
)
RESTATED = (
    "INSERT INTO {r} (source, key, period, run_id, restated_at, before_rows, after_rows,"
    " before_fingerprint, after_fingerprint, before_measure, after_measure)"
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
RESTATEMENTS_SINCE = (
    "SELECT source, key, period, run_id, restated_at, before_rows, after_rows,"
    " before_fingerprint, after_fingerprint, before_measure, after_measure FROM {r}"
    " WHERE source = {p} AND restated_at >= {p} ORDER BY restated_at, period, key"
)


def one_of(
    column: Literal["key", "period", "status"], values: list[str], dialect: str, placeholder: str
) -> tuple[str, object]:
    """An ``AND column IN (values)`` condition and its one parameter, whatever the count.

    An array on PostgreSQL, a JSON list on SQLite: a thousand keys are still
    one parameter (SQLite caps the number of parameters). The array goes as
    the text of its literal: psycopg dumps a list element by element (a regex
    each) on every execution, and a backfill claims with the same list for
    each partition.

    Examples:
        >>> one_of("key", ["1", "2"], "sqlite", "?")
        (' AND key IN (SELECT value FROM json_each(?))', '["1", "2"]')
        >>> one_of("key", ["1", 'say "hi"'], "postgres", "%s")
        (' AND key = ANY(CAST(%s AS text[]))', '{"1","say \\\\"hi\\\\""}')
    """
    if dialect == "postgres":
        return f" AND {column} = ANY(CAST({placeholder} AS text[]))", _text_array(values)
    # column is one of two names, the placeholder the store's; the values are a parameter
    member = f" AND {column} IN (SELECT value FROM json_each({placeholder}))"  # noqa: S608
    return member, json.dumps(values)


def listed(
    column: Literal["key", "period"], values: list[str], dialect: str, placeholder: str
) -> tuple[str, object]:
    """:func:`one_of`, or on SQLite for a short list a search in one separated text.

    SQLite builds the ``json_each`` list anew on every execution: three
    quarters of a backfill's claim. A list of at most ``_SHORT`` characters
    goes instead as one text, each value between two U+001F, searched with
    ``instr``: the same rows whenever no value holds U+001F or NUL (then
    ``json_each`` it is), as the row's own value is required to hold no
    U+001F either. A long list keeps ``json_each`` (``instr`` reads the whole
    text for each row the claim skips), and so does an empty one (its text
    would match the empty value).

    Examples:
        >>> condition, text = listed("key", ["1", "2"], "sqlite", "?")
        >>> condition.split(" > 0")[0], text == "\\x1f1\\x1f2\\x1f"
        (' AND instr(?, char(31) || key || char(31))', True)
        >>> listed("key", ["a\\x1fb"], "sqlite", "?")[0]
        ' AND key IN (SELECT value FROM json_each(?))'
    """
    if dialect == "postgres" or not values or sum(map(len, values)) + len(values) > _SHORT:
        return one_of(column, values, dialect, placeholder)
    flat = "".join(values)
    if SEPARATOR in flat or "\x00" in flat:
        return one_of(column, values, dialect, placeholder)
    # column is one of two names, the placeholder the store's; the values are a parameter
    member = (
        f" AND instr({placeholder}, char(31) || {column} || char(31)) > 0"
        f" AND instr({column}, char(31)) = 0"
    )
    return member, f"{SEPARATOR}{SEPARATOR.join(values)}{SEPARATOR}"


_SHORT = 4096


def _text_array(values: list[str]) -> str:
    """PostgreSQL's literal of a ``text[]``: every element quoted, ``\\`` and ``"`` escaped."""
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


# Joins a period's keys in gaps() and the values of a short claim list; a key may not hold it.
SEPARATOR = "\x1f"


def checked_text(text: str, option: str) -> str:
    """``text`` if it can be a source, key or period; else an error naming ``option``.

    NUL: PostgreSQL text cannot hold it, and SQLite's JSON functions (the
    claim's key and period lists) stop at it, so such a partition would be
    planned but never claimed.

    Examples:
        >>> checked_text("acct-7", "key")
        'acct-7'
        >>> checked_text("a\\x00b", "key")
        Traceback (most recent call last):
        ...
        resilient_pipeline.exceptions.ConfigurationError: key=...must not contain NUL (U+0000)
    """
    if "\x00" in text:
        raise ConfigurationError.for_option(option, text, "must not contain NUL (U+0000)")
    return text


def source_text(source: object) -> str:
    """A source as stored: ``str(source)``, checked by :func:`checked_text`.

    Examples:
        >>> source_text("meta_ads")
        'meta_ads'
    """
    return checked_text(str(source), "source")


def key_text(key: object) -> str:
    """A key as stored: ``str(key)``, checked by :func:`checked_text`, and without U+001F.

    U+001F separates the keys of a partition's older text forms.

    Examples:
        >>> key_text(7)
        '7'
    """
    text = checked_text(str(key), "key")
    if SEPARATOR in text:
        raise ConfigurationError.for_option("key", text, "must not contain U+001F")
    return text


def period_text(period: object) -> str:
    """A period as stored: dates in ISO form (so text order is time order), others as ``str``.

    Examples:
        >>> period_text(dt.date(2026, 11, 28)), period_text("2026-11")
        ('2026-11-28', '2026-11')
    """
    if isinstance(period, (dt.date, dt.datetime)):
        return period.isoformat()
    return checked_text(str(period), "period")
