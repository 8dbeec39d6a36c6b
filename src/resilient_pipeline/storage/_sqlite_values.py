"""What a SQLite column keeps exactly, and how Python values are bound to it.

A SQLite column has an *affinity*, derived from its declared type
(https://sqlite.org/datatype3.html, section 3.1), and SQLite converts what it
is given to that affinity. Some conversions lose information without a word,
so ``idempotent_upsert`` refuses those values before anything is written, one
:class:`~resilient_pipeline.exceptions.RowProblem` per value:

* NaN (``float`` or ``Decimal``), in any column: SQLite binds a NaN as NULL,
  and NULLs never conflict, so a NaN key would add a row on every run;
* an ``int`` outside SQLite's 64-bit range, and in a REAL column an ``int``
  that a double cannot hold exactly (beyond 2**53);
* text with a lone surrogate (not valid UTF-8), and text, bytes or a whole
  row longer than SQLite's length limit (``SQLITE_LIMIT_LENGTH``);
* in a column of NUMERIC affinity (``NUMERIC``, ``DECIMAL``, ``DATE``,
  ``DATETIME``, ``BOOLEAN``, or an unknown type name such as ``MONEY``):
  text SQLite would turn into a number (``"2026"``), and a ``Decimal`` that
  neither a 64-bit integer nor a double holds exactly;
* a value of a type ``sqlite3`` cannot bind and has no adapter for.

How values are bound: ``date`` and ``datetime`` as ISO 8601 text; a
``Decimal`` as its text in a column without affinity (``BLOB`` or no
declared type), as the INTEGER or REAL holding the same number in a NUMERIC
column; everything else as it is.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from operator import is_not, itemgetter
from typing import Any, Literal, TypeAlias

import attrs

from resilient_pipeline.exceptions import RowProblem

__all__ = ["DEFAULT_MAX_LENGTH", "Affinity", "SQLiteValues", "accepted_types", "affinity"]

Affinity: TypeAlias = Literal["INTEGER", "TEXT", "BLOB", "REAL", "NUMERIC"]

DEFAULT_MAX_LENGTH = 1_000_000_000
"""SQLite's default ``SQLITE_LIMIT_LENGTH``, used when ``sqlite3`` cannot say (Python 3.10)."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_DOUBLE_EXACT = 2**53  # every int up to this magnitude is a double exactly
# Each value of a row record costs a header varint (<= 9 bytes); numbers are <= 8 bytes.
_VARINT = 9
# What SQLite's NUMERIC affinity turns into an INTEGER or REAL (checked against
# SQLite itself in tests/storage/test_sqlite_hostile.py): ASCII digits, an
# optional sign, point and exponent, surrounded by ASCII whitespace.
_NUMERIC_TEXT = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)
_SURROGATE = re.compile("[\ud800-\udfff]")
_BYTES = (bytes, bytearray, memoryview)
_NOT_NONE = partial(is_not, None)
_NONE = type(None)


def affinity(declared: str, *, strict: bool = False) -> Affinity:
    """SQLite's affinity for a declared column type, by SQLite's own rules, in their order.

    Examples:
        >>> affinity("VARCHAR(20)"), affinity("FLOATING POINT"), affinity("MONEY")
        ('TEXT', 'INTEGER', 'NUMERIC')
    """
    upper = declared.upper()
    if "INT" in upper:
        return "INTEGER"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in upper or not upper or (strict and upper == "ANY"):
        return "BLOB"  # STRICT tables keep an ANY column's values as given
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def accepted_types(declared: str, *, strict: bool = False) -> tuple[type, ...] | None:
    """The Python types ``idempotent_upsert`` accepts for a declared type (``None``: any)."""
    # The affinity rules, plus the date/datetime names sqlite3 users conventionally declare.
    upper = declared.upper()
    if strict and upper == "BLOB":
        return _BYTES  # a STRICT BLOB column refuses every other type
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


def _decimal_number(value: decimal.Decimal) -> int | float | None:
    """The INTEGER or REAL holding exactly ``value``'s number, or ``None`` if there is none."""
    if not value.is_finite():
        return None if value.is_nan() else float(value)
    if value == value.to_integral_value() and _INT64_MIN <= value <= _INT64_MAX:
        return int(value)
    number = float(value)
    # repr() is the shortest text that reads back as this double: if that is
    # our number, the REAL is it (only the scale, trailing zeros, is not kept).
    return number if math.isfinite(number) and decimal.Decimal(repr(number)) == value else None


def _iso(value: datetime.date) -> str:
    return value.isoformat(" ") if isinstance(value, datetime.datetime) else value.isoformat()


def _bind_as_is(value: object) -> object:
    # Adapt here rather than through sqlite3's global (and, since Python 3.12,
    # deprecated) default adapters, which would affect the whole process.
    if isinstance(value, datetime.date):
        return _iso(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def _bind_numeric(value: object) -> object:
    if isinstance(value, decimal.Decimal):
        return _decimal_number(value)  # never None: the checks refused those
    return _bind_as_is(value)


_ADAPTED = (datetime.date, decimal.Decimal)
# Only these affinities accept a date or a Decimal (accepted_types): TEXT, INTEGER
# and REAL columns hold str, int and float, which sqlite3 binds as they are.
_ADAPTING = frozenset({"BLOB", "NUMERIC"})


def _iso_texts(values: Sequence[Any]) -> Callable[[object], object]:
    """``date.isoformat`` once per distinct date (a batch holds few days, many rows)."""
    distinct = set(values)
    distinct.discard(None)
    texts: dict[object, object] = {day: day.isoformat() for day in distinct}
    texts[None] = None
    return texts.__getitem__


def _binder(kinds: set[type], kind: Affinity, values: Sequence[Any]) -> Callable[[object], object]:
    present = kinds - {_NONE}
    if present == {datetime.date}:  # exactly date: a subclass may format itself otherwise
        return _iso_texts(values)
    if len(kinds) == 1 and present == {decimal.Decimal} and kind != "NUMERIC":
        return str
    return _bind_numeric if kind == "NUMERIC" else _bind_as_is


def _adapted(values: Sequence[Any], kind: Affinity, *, dates: bool) -> list[Any] | None:
    """``values`` (one column) as sqlite3 binds them, or ``None`` when they are already.

    ``dates=False`` leaves a column of exact ``date`` values (and NULLs) as it
    is: their ISO text is one-to-one, so they compare as their text would.
    """
    kinds = set(map(type, values))
    if not any(issubclass(k, _ADAPTED) for k in kinds):
        return None
    if not dates and kinds - {_NONE} == {datetime.date}:
        return None
    return list(map(_binder(kinds, kind, values), values))


def _bindable(value: object) -> bool:
    return (type(value), sqlite3.PrepareProtocol) in sqlite3.adapters or hasattr(
        value, "__conform__"
    )


def _problem(value: object, kind: Affinity, limit: int) -> str | None:
    """Why SQLite would not keep ``value`` exactly in a column of affinity ``kind``."""
    if value is None or isinstance(value, (bool, datetime.date)):
        return None
    if isinstance(value, float):
        return (
            "NaN cannot be stored in SQLite (it would become NULL)" if math.isnan(value) else None
        )
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            return "integer outside SQLite's 64-bit range"
        if kind == "REAL" and float(value) != value:
            return f"{value} has no exact REAL (double) value"
        return None
    if isinstance(value, str):
        if _SURROGATE.search(value):
            return "text with a lone surrogate is not valid UTF-8"
        size = len(value) if value.isascii() else len(value.encode("utf-8"))
        if size > limit:
            return f"text of {size} bytes is over SQLite's length limit ({limit})"
        if kind == "NUMERIC" and _NUMERIC_TEXT.fullmatch(value):
            return f"text {value!r:.40} would be stored as a number (NUMERIC affinity)"
        return None
    if isinstance(value, _BYTES):
        size = memoryview(value).nbytes
        return f"{size} bytes is over SQLite's length limit ({limit})" if size > limit else None
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return "NaN cannot be stored in SQLite"
        if kind == "NUMERIC" and _decimal_number(value) is None:
            return (
                f"Decimal {value!s:.40} has more digits than SQLite's NUMERIC keeps exactly;"
                " store str(value) in a TEXT column"
            )
        if kind != "NUMERIC" and len(str(value)) > limit:
            return f"Decimal text over SQLite's length limit ({limit})"
        return None
    if _bindable(value):
        return None
    return f"a {type(value).__name__} cannot be stored in SQLite"


def _size(value: object, kind: Affinity) -> int:
    """An upper bound of the bytes ``value`` takes in a row record (header excluded)."""
    if isinstance(value, str):
        return len(value) if value.isascii() else 4 * len(value)
    if isinstance(value, _BYTES):
        return memoryview(value).nbytes
    if isinstance(value, decimal.Decimal) and kind != "NUMERIC":
        return len(str(value))
    if isinstance(value, datetime.date):
        return 64  # the longest ISO datetime with microseconds and an offset is 32
    return 8 if value is not None else 0


def _clean(kinds: set[type], present: Sequence[Any], kind: Affinity, limit: int) -> int | None:
    """When one pass in C proves the column fine: an upper bound of its values' size."""
    if kinds <= {bool, datetime.date, datetime.datetime}:
        return 64
    if kinds == {int}:
        low, high = (min(present), max(present)) if present else (0, 0)
        edge = _DOUBLE_EXACT if kind == "REAL" else _INT64_MAX
        return 8 if -edge <= low and high <= edge else None
    if kinds == {float}:
        return None if any(map(math.isnan, present)) else 8
    if kinds == {str}:
        # The column as one text: ASCII (the common case) holds no surrogate, and
        # the total length bounds every value's, both found in one C pass.
        text = "".join(present)
        wide = 1 if text.isascii() else 4
        if wide > 1 and _SURROGATE.search(text):
            return None
        longest = len(text)
        if longest * wide > limit:  # no bound for a long column: measure each value
            longest = max(map(len, present), default=0)
        longest *= wide
        if longest > limit:
            return None
        if kind == "NUMERIC" and any(map(_NUMERIC_TEXT.fullmatch, present)):
            return None
        return longest
    return None


@attrs.frozen
class SQLiteValues:
    """The value rules of one SQLite table (its ``TableInfo.check_values``).

    Attributes:
        affinities: Each column's affinity.
        max_length: SQLite's length limit for a value and for a whole row.
    """

    affinities: Mapping[str, Affinity]
    max_length: int = DEFAULT_MAX_LENGTH

    def __call__(
        self,
        columns: Sequence[str],
        rows: Sequence[tuple[Any, ...]],
        found: Sequence[set[type]] | None = None,
    ) -> list[RowProblem]:
        """Every value SQLite would not keep exactly, with its row and column.

        ``found``: each column's types, when the caller has them (the type check).
        """
        if not rows:
            return []
        limit = self.max_length
        problems: list[RowProblem] = []
        bounds: list[int | None] = []
        for position, name in enumerate(columns):
            kind = self.affinities[name]
            # A getter per column, not zip(*rows): that keeps an iterator per row
            # alive at once, enough to set off the garbage collector's full passes.
            values = list(map(itemgetter(position), rows))
            kinds = set(map(type, values)) if found is None else set(found[position])
            present = values
            if _NONE in kinds:
                kinds.discard(_NONE)
                present = list(filter(_NOT_NONE, values))
            bound = _clean(kinds, present, kind, limit)
            bounds.append(bound)
            if bound is None:
                for index, value in enumerate(values):
                    what = _problem(value, kind, limit)
                    if what is not None:
                        problems.append(RowProblem(index, name, what))
        flagged = {p.index for p in problems}
        problems += (p for p in self._too_big(columns, rows, bounds) if p.index not in flagged)
        return problems

    def _too_big(
        self, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], bounds: list[int | None]
    ) -> Iterator[RowProblem]:
        # SQLite also limits a row record: a header (a varint per column of
        # the table) and the values. An upper bound, cheap when rows are small.
        limit = self.max_length
        header = _VARINT * (1 + len(self.affinities))
        if all(b is not None for b in bounds) and header + sum(bounds) <= limit:  # type: ignore[arg-type]
            return
        kinds = [self.affinities[name] for name in columns]
        for index, row in enumerate(rows):
            sizes = [_size(v, k) for v, k in zip(row, kinds, strict=True)]
            if header + sum(sizes) > limit:
                largest = columns[sizes.index(max(sizes))]
                yield RowProblem(index, largest, f"the row is over SQLite's length limit ({limit})")

    def bind(self, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``rows`` as ``sqlite3`` should bind them (dates as ISO text, Decimals by affinity)."""
        return self._convert(columns, rows, dates=True)

    def comparable(
        self, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """``rows`` with every value SQLite keeps as another Python value converted (its
        ``TableInfo.convert_values``, before deduplication: a date and its ISO text are
        one key), except columns of exact ``date`` values: their ISO text is one-to-one,
        so the writer converts them while binding (:meth:`bind_flat`), sparing a copy
        of every row.
        """
        return self._convert(columns, rows, dates=False)

    def _convert(
        self, columns: Sequence[str], rows: list[tuple[Any, ...]], *, dates: bool
    ) -> list[tuple[Any, ...]]:
        adapted: dict[int, list[Any]] = {}
        # Column by column: one C-level map per adapted column instead of a
        # Python-level tuple rebuild per row.
        for i, name in enumerate(columns):
            kind = self.affinities[name]
            if kind in _ADAPTING and rows:
                column = _adapted(list(map(itemgetter(i), rows)), kind, dates=dates)
                if column is not None:
                    adapted[i] = column
        if not adapted:
            return rows
        values = [adapted.get(i) or list(map(itemgetter(i), rows)) for i in range(len(columns))]
        return list(zip(*values, strict=True))

    def bind_flat(self, columns: Sequence[str], params: list[Any]) -> list[Any]:
        """:meth:`bind` for the parameters of a multi-row statement, row after row.

        Each column is the slice ``params[i::len(columns)]``, adapted in place.
        """
        width = len(columns)
        for i, name in enumerate(columns):
            kind = self.affinities[name]
            if kind in _ADAPTING:
                column = _adapted(params[i::width], kind, dates=True)
                if column is not None:
                    params[i::width] = column
        return params
