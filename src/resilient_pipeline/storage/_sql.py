"""The one place identifiers (tables, columns, schemas) are validated and quoted.

Values never go through here: they are always bound parameters. Identifiers
cannot be parameters in SQL, so every table, column and schema name the
library (or your own SQL run through a unit of work) puts into a statement is
checked and double-quoted by :func:`quote_identifier`. The same quoting is
valid on SQLite and PostgreSQL.

What is rejected, and why:

* anything that is not a non-empty ``str``;
* NUL and every other control character (PostgreSQL cannot store NUL, and a
  NUL truncates the name in some C APIs);
* Unicode *format* characters (zero-width joiners, bidi overrides such as
  U+202E), surrogates, private-use and unassigned code points: they make two
  names look alike or hide what a name really is;
* names that change under NFKC normalisation (``"client"`` spelled in
  fullwidth letters looks like ``"client"`` but is another name);
* leading or trailing whitespace (almost always a bug in the caller);
* names longer than 63 UTF-8 bytes, which PostgreSQL would silently truncate.

Everything else, including quotes, semicolons and spaces, is quoted safely:
``x"; DROP TABLE y`` becomes one identifier, ``"x""; DROP TABLE y"``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from resilient_pipeline.exceptions import ConfigurationError

__all__ = ["MAX_IDENTIFIER_BYTES", "quote_identifier", "quote_qualified", "validate_identifier"]

MAX_IDENTIFIER_BYTES = 63
"""PostgreSQL's limit (``NAMEDATALEN - 1``); SQLite has none, but names must work on both."""

_REJECTED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"must be a str, not {type(name).__name__}"
    if not name:
        return "must not be empty"
    if name != name.strip():
        return "must not start or end with whitespace"
    for char in name:
        category = unicodedata.category(char)
        if category in _REJECTED_CATEGORIES:
            return f"contains the forbidden character U+{ord(char):04X} (category {category})"
    if unicodedata.normalize("NFKC", name) != name:
        return "is not in Unicode NFKC normal form (look-alike characters)"
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        return f"is longer than {MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)"
    return None


def validate_identifier(name: object, *, option: str = "identifier") -> str:
    """Return ``name`` unchanged if it is a safe SQL identifier, else raise.

    Raises:
        ConfigurationError: naming ``option``, the value and the reason.

    Examples:
        >>> validate_identifier("client_id")
        'client_id'
        >>> validate_identifier("bad\\u202ename", option="key")
        Traceback (most recent call last):
        ...
        resilient_pipeline.exceptions.ConfigurationError: key='bad\\u202ename' is invalid: ...
    """
    problem = _problem(name)
    if problem is not None:
        raise ConfigurationError.for_option(option, name, f"not a safe SQL identifier: {problem}")
    return name  # type: ignore[return-value]  # _problem proved it is a str


def quote_identifier(name: object, *, option: str = "identifier") -> str:
    """Validate ``name`` and double-quote it for SQLite and PostgreSQL.

    Embedded double quotes are doubled, so the result is always exactly one
    identifier whatever the name contains. Quoted identifiers are
    case-sensitive: ``quote_identifier("Spend")`` is not the column ``spend``.

    Examples:
        >>> quote_identifier("client_id")
        '"client_id"'
        >>> quote_identifier('x"; DROP TABLE y')
        '"x""; DROP TABLE y"'
    """
    return '"' + validate_identifier(name, option=option).replace('"', '""') + '"'


def quote_qualified(table: str, schema: str | None = None, *, option: str = "table") -> str:
    """Quote ``table``, prefixed with the quoted ``schema`` when one is given.

    Examples:
        >>> quote_qualified("kpi", "analytics")
        '"analytics"."kpi"'
        >>> quote_qualified("kpi")
        '"kpi"'
    """
    quoted = quote_identifier(table, option=option)
    if schema is None:
        return quoted
    return f"{quote_identifier(schema, option='schema')}.{quoted}"


def quote_columns(columns: Iterable[str], *, option: str = "columns") -> str:
    """Quote each name and join them with ``", "`` (for column lists)."""
    return ", ".join(quote_identifier(column, option=option) for column in columns)
