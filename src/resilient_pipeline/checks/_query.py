"""Run one read query with ``:name`` parameters on SQLite or PostgreSQL; rows as dicts.

Checks are written once, in the portable ``:name`` style that ``sqlite3``
understands natively; for psycopg the placeholders are rewritten to
``%(name)s`` outside string literals, quoted identifiers and ``::`` casts.
Values are always bound, never formatted into the SQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["fetch_rows", "to_pyformat"]

_TOKENS = re.compile(
    r"""'(?:[^']|'')*'          # a string literal
      | "(?:[^"]|"")*"          # a quoted identifier
      | ::                      # a PostgreSQL cast
      | :(?P<name>[A-Za-z_]\w*) # a named parameter
      | %                       # a literal percent, doubled for pyformat
    """,
    re.VERBOSE,
)


def to_pyformat(sql: str) -> str:
    """Rewrite ``:name`` placeholders as ``%(name)s`` (psycopg's style).

    Examples:
        >>> to_pyformat("SELECT ':x', a::text FROM t WHERE d = :day AND p LIKE 'a%'")
        "SELECT ':x', a::text FROM t WHERE d = %(day)s AND p LIKE 'a%%'"
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if match.group("name"):
            return f"%({match.group('name')})s"
        return token.replace("%", "%%")  # psycopg reads % even inside quotes

    return _TOKENS.sub(replace, sql)


def _is_psycopg(connection: object) -> bool:
    return type(connection).__module__.startswith("psycopg")


def fetch_rows(connection: Any, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run ``sql`` with ``params`` on a sqlite3 or psycopg connection, a store or a unit of work.

    A store lends one of its connections for the query; a unit of work runs
    it on its own connection (so it sees the transaction's writes).

    Examples:
        >>> import contextlib, sqlite3
        >>> with contextlib.closing(sqlite3.connect(":memory:")) as db:
        ...     fetch_rows(db, "SELECT :n + 1 AS m", {"n": 41})
        [{'m': 42}]
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> fetch_rows(store, "SELECT :n * 2 AS m", {"n": 21})
        [{'m': 42}]
        >>> store.close()
    """
    if callable(getattr(connection, "connect", None)) and hasattr(connection, "dialect"):
        session = connection.connect()  # a Store
        try:
            return fetch_rows(session.connection, sql, params)
        finally:
            session.release()
    session = getattr(connection, "session", None)  # a unit of work's Transaction
    raw = getattr(session if session is not None else connection, "connection", connection)
    if _is_psycopg(raw):
        # A savepoint (or a transaction): a failing check must not abort the
        # caller's transaction and make every later check fail too.
        with raw.transaction():
            return _fetch(raw, to_pyformat(sql), params)
    return _fetch(raw, sql, params)


def _fetch(raw: Any, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    cursor = raw.cursor()
    try:
        cursor.execute(sql, dict(params))
        if cursor.description is None:
            return []
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        cursor.close()
