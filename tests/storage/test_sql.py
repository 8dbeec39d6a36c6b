"""The one identifier validation and quoting helper, against hostile names on a real database."""

from __future__ import annotations

import contextlib
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import ConfigurationError
from resilient_pipeline.storage import quote_identifier
from resilient_pipeline.storage._sql import (
    MAX_IDENTIFIER_BYTES,
    quote_qualified,
    validate_identifier,
)

HOSTILE_BUT_QUOTABLE = [
    "x; DROP TABLE y",
    'x"; DROP TABLE y; --',
    '"',
    '""',
    "it's",
    "Robert'); DROP TABLE students;--",
    "a.b",
    "select",
    "naïve",
    "日付",
    "a b",
    "-- comment",
    "/* c */",
]

REJECTED = [
    "",
    "nul\x00byte",
    "tab\tname",
    "new\nline",
    "bidi\u202ename",
    "zero\u200bwidth",
    "bom\ufeff",
    "\uff43lient",  # fullwidth 'c'
    "ﬁle",  # a ligature: NFKC turns it into "file"
    " padded",
    "padded ",
    "x" * (MAX_IDENTIFIER_BYTES + 1),
    "é" * 32,  # 64 bytes in UTF-8
    "\ud800",
    "\ue000private",
]


@pytest.mark.parametrize("name", HOSTILE_BUT_QUOTABLE)
def test_hostile_names_are_one_identifier_on_sqlite(name: str) -> None:
    """A hostile but printable name quotes to exactly one identifier and round-trips."""
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE victim (x)")
        conn.execute(f"CREATE TABLE {quote_identifier(name)} ({quote_identifier(name)} INTEGER)")
        conn.execute(f"INSERT INTO {quote_identifier(name)} VALUES (1)")
        query = "SELECT name FROM sqlite_master WHERE type='table'"
        tables = {row[0] for row in conn.execute(query)}
        assert {"victim", name} == tables
        info = conn.execute(f"PRAGMA table_info({quote_identifier(name)})")
        assert [name] == [row[1] for row in info]


@pytest.mark.parametrize("name", REJECTED)
def test_dangerous_names_are_rejected_with_the_option_named(name: str) -> None:
    """Control, format, look-alike, padded and over-long names raise ConfigurationError."""
    with pytest.raises(ConfigurationError) as info:
        quote_identifier(name, option="key")
    assert "key" == info.value.option
    assert name == info.value.value


@pytest.mark.parametrize("value", [None, 1, b"bytes", ("a",)])
def test_non_strings_are_rejected(value: object) -> None:
    """Only str names are identifiers."""
    with pytest.raises(ConfigurationError, match="must be a str"):
        validate_identifier(value)


def test_quote_qualified_quotes_each_part() -> None:
    """Schema and table are quoted separately, so a dot in a name stays inside it."""
    assert '"s"."a.b"' == quote_qualified("a.b", "s")


@given(st.text(min_size=1, max_size=40))
def test_quoting_is_exactly_one_identifier(name: str) -> None:
    """Any name either is rejected or quotes to one identifier that round-trips."""
    try:
        quoted = quote_identifier(name)
    except ConfigurationError:
        return
    assert ('"', '"') == (quoted[0], quoted[-1])
    assert name == quoted[1:-1].replace('""', '"')
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        assert [(1,)] == conn.execute(f"SELECT 1 AS {quoted}").fetchall()
        assert [name] == [d[0] for d in conn.execute(f"SELECT 1 AS {quoted}").description]
