"""What a PostgreSQL column keeps: the checks and conversions both write paths share.

``idempotent_upsert`` writes small batches with one ``INSERT ... VALUES`` of
typed parameters and large ones with ``COPY`` into a staging table. Left to
themselves the two disagree: an explicit cast truncates (``varchar(8)``) where
``COPY`` raises, binary ``COPY`` wraps an ``int`` too big for ``int4`` where
the cast raises, and some values only one of them can send. So every value
is checked and converted here first, the same way for both, and what either
path then sends is something PostgreSQL stores exactly as given (or after
the column's own, documented rounding: ``numeric(p, s)`` and ``real``).

Refused, one :class:`~resilient_pipeline.exceptions.RowProblem` per value:

* an ``int`` outside ``smallint`` / ``integer`` / ``bigint``, or one that a
  ``real`` or ``double precision`` column cannot hold exactly;
* a number too large or too small (non-zero, but rounding to zero) for
  ``real`` or ``double precision``; a number that overflows ``numeric(p, s)``
  or PostgreSQL's ``numeric`` limits; infinity in ``numeric(p, s)``;
* text with NUL or a lone surrogate; text longer than ``varchar(n)`` or
  ``char(n)`` (PostgreSQL would silently cut trailing spaces) or than 63
  bytes for ``name``;
* a ``str`` that is not a UUID, for a ``uuid`` column;
* a ``datetime`` for a ``date`` column (the time would be dropped), a
  ``datetime`` or ``time`` with a ``tzinfo`` for ``timestamp`` or ``time``
  (PostgreSQL would convert or drop the offset), and for ``timestamptz`` one
  whose ``tzinfo`` gives no offset. A naive ``datetime`` for ``timestamptz``
  is the session's ``TimeZone``, as PostgreSQL reads it (on both paths).

Converted, so that the same value reaches both paths, and keys PostgreSQL
holds equal are equal in Python before duplicates are looked for:
``char(n)`` text loses its trailing spaces (PostgreSQL pads it anyway);
every NaN becomes one ``float`` or one ``Decimal`` object; a value for a
``numeric`` column becomes a ``Decimal`` (a ``float`` through its shortest
repr, so ``float(stored) == value``), rounded half away from zero to the
column's scale; a value for ``real`` is rounded to single precision; a
``str`` for ``uuid`` becomes a ``UUID``; ``int``, ``str``, ``float`` and
``Decimal`` subclasses (enums) become the plain type.
"""

from __future__ import annotations

import datetime
import decimal
import math
import struct
import uuid
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import repeat
from operator import attrgetter, is_not, itemgetter
from typing import Any

import attrs

from resilient_pipeline.exceptions import InvalidBatchError, RowProblem

__all__ = ["PgColumn", "PgValues", "accepted_types"]

_INT_RANGES = {
    "int2": ("smallint", -(2**15), 2**15 - 1),
    "int4": ("integer", -(2**31), 2**31 - 1),
    "int8": ("bigint", -(2**63), 2**63 - 1),
}
# Python equality is PostgreSQL's for these key types once converted; keys of
# any other type (or collation) are also checked for duplicates by PostgreSQL.
_INEXACT_KEYS = frozenset({"citext", "timestamptz"})
_EXACT_KEYS_WITHOUT_TYPMOD = frozenset({"timestamp", "time", "interval"})

_NUMERIC_MAX_BEFORE = 131072  # digits before the decimal point (PostgreSQL's limit)
_NUMERIC_MAX_AFTER = 16383  # digits after it
_NAN = float("nan")
_DECIMAL_NAN = decimal.Decimal("NaN")
_WIDE = decimal.Context(
    prec=_NUMERIC_MAX_BEFORE + _NUMERIC_MAX_AFTER + 2, Emax=10**6, Emin=-(10**6)
)
_VARHDRSZ = 4
_NOT_NONE = partial(is_not, None)
_NONE_TYPE = type(None)
_TZINFO = attrgetter("tzinfo")
_OFFSET_ZONES = (datetime.timezone, zoneinfo.ZoneInfo)
_MAX_PROBLEMS = 100
_ALIGN_BYTES = {"c": 1, "s": 2, "i": 4, "d": 8}


class _Refused(Exception):
    """A value the column cannot keep exactly; the message says why."""


@attrs.frozen
class PgColumn:
    """A column as the catalog describes it.

    Attributes:
        type_sql: The full type (``character varying(8)``): what small batches cast to.
        base_sql: The type without modifier (``character varying``).
        typname: The type's internal name (``varchar``).
        typmod: The type modifier (``-1``: none).
        deterministic: Whether its collation compares text byte by byte.
        collation: Its collation, quoted and qualified, when not its type's default.
        length: The type's stored size in bytes (``typlen``; negative: variable).
        align: The type's alignment (``typalign``: ``c``, ``s``, ``i`` or ``d``).
    """

    name: str
    type_sql: str
    base_sql: str
    typname: str
    typmod: int
    deterministic: bool = True
    collation: str | None = None
    length: int = -1
    align: str = "i"

    @property
    def packing(self) -> tuple[bool, int]:
        """Sorts columns so that a row needs no padding: widest alignment first, variable last."""
        return self.length < 0, -_ALIGN_BYTES.get(self.align, 8)

    @property
    def known(self) -> bool:
        """Whether the value rules here cover this column's type."""
        return self.typname in _TYPES

    @property
    def cast_sql(self) -> str:
        """The type (and collation) a small batch's parameter is cast to.

        Known types get the full type: their values were checked, so an
        explicit cast changes nothing an assignment would not. Other types get
        the bare type, so a too-long value fails on assignment instead of being
        cut by the cast (``bit(3)``, ``varchar(3)[]``).
        """
        cast = self.type_sql if self.known else self.base_sql
        # Keys compare (and group) with the column's collation, as in the table.
        return cast if self.collation is None else f"{cast} COLLATE {self.collation}"

    @property
    def binary_oid(self) -> int | None:
        """The oid to send this column's values with in binary COPY, if any."""
        known = _TYPES.get(self.typname)
        return known[1] if known else None

    @property
    def exact_key(self) -> bool:
        """Whether two converted values are equal in PostgreSQL exactly when equal in Python."""
        if not self.deterministic or not self.known or self.typname in _INEXACT_KEYS:
            return False
        return self.typname not in _EXACT_KEYS_WITHOUT_TYPMOD or self.typmod < 0


# ------------------------------------------------------------------ the rules
Rule = Callable[[Any], Any]


def _int_rule(column: PgColumn) -> Rule:
    name, low, high = _INT_RANGES[column.typname]

    def rule(value: Any) -> Any:
        value = int(value)
        if not low <= value <= high:
            raise _Refused(f"{value!r:.40} is out of range for {name} [{low}, {high}]")
        return value

    return rule


def _to_float(value: Any, type_name: str) -> float:
    if isinstance(value, float):
        return _NAN if math.isnan(value) else float(value)
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return _NAN
        result = float(value)
        if math.isinf(result) and value.is_finite():
            raise _Refused(f"{value!s:.40} is out of range for {type_name}")
        if result == 0.0 and not value.is_zero():
            raise _Refused(f"{value!s:.40} is too small for {type_name} (it would become 0)")
        return result
    try:
        result = float(value)
    except OverflowError:
        raise _Refused(f"{value!r:.40} is out of range for {type_name}") from None
    if result != value:
        raise _Refused(f"{value!r:.40} is an int {type_name} cannot hold exactly")
    return result


def _float8_rule(column: PgColumn) -> Rule:
    return lambda value: _to_float(value, "double precision")


def _float4_rule(column: PgColumn) -> Rule:
    def rule(value: Any) -> Any:
        double = _to_float(value, "real")
        try:
            (single,) = struct.unpack("f", struct.pack("f", double))
        except OverflowError:
            raise _Refused(f"{value!r:.40} is out of range for real") from None
        if single == 0.0 and double != 0.0:
            raise _Refused(f"{value!r:.40} is too small for real (it would become 0)")
        if isinstance(value, int) and single != double:
            raise _Refused(f"{value!r:.40} is an int real cannot hold exactly")
        return _NAN if math.isnan(single) else single

    return rule


def _numeric_typmod(typmod: int) -> tuple[int, int] | None:
    if typmod < _VARHDRSZ:
        return None
    packed = typmod - _VARHDRSZ
    # The scale is an 11-bit signed field (negative scales since PostgreSQL 15).
    return (packed >> 16) & 0xFFFF, ((packed & 0x7FF) ^ 1024) - 1024


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, decimal.Decimal):
        return _DECIMAL_NAN if value.is_nan() else value
    if isinstance(value, float):
        if math.isnan(value):
            return _DECIMAL_NAN
        # Through the shortest repr: float(stored) == value, 0.1 is stored as 0.1.
        return decimal.Decimal(repr(float(value)))
    return decimal.Decimal(int(value))


def _numeric_rule(column: PgColumn) -> Rule:
    typmod = _numeric_typmod(column.typmod)

    def rule(value: Any) -> Any:
        number = _to_decimal(value)
        if not number.is_finite():
            if typmod is not None and number.is_infinite():
                raise _Refused(f"{column.type_sql} cannot hold {number}")
            return number
        if number.is_zero() and int(number.as_tuple().exponent) > 0:
            number = decimal.Decimal(0)  # 0E+9 is 0; PostgreSQL keeps no exponent
        if typmod is None:
            digits = number.as_tuple()
            after = max(0, -int(digits.exponent))
            before = number.adjusted() + 1
            if before > _NUMERIC_MAX_BEFORE or after > _NUMERIC_MAX_AFTER:
                raise _Refused(f"{number!s:.40} is beyond PostgreSQL's numeric limits")
            return number
        precision, scale = typmod
        limit = precision - scale  # |rounded| < 10 ** limit
        if not number.is_zero() and number.adjusted() >= limit:
            raise _Refused(f"{number!s:.40} overflows {column.type_sql}")
        rounded = number.quantize(
            decimal.Decimal(1).scaleb(-scale), rounding=decimal.ROUND_HALF_UP, context=_WIDE
        )
        if not rounded.is_zero() and rounded.adjusted() >= limit:
            raise _Refused(f"{number!s:.40} overflows {column.type_sql} once rounded")
        return rounded

    return rule


def _text(value: Any) -> str:
    text = value if type(value) is str else str.__str__(value)
    if "\x00" in text:
        raise _Refused("text with NUL (U+0000), which PostgreSQL cannot store")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = ord(text[exc.start])
            raise _Refused(f"text with a lone surrogate U+{bad:04X} (not valid Unicode)") from None
    return text


def _length_limit(column: PgColumn) -> int | None:
    return column.typmod - _VARHDRSZ if column.typmod >= _VARHDRSZ else None


def _text_rule(column: PgColumn) -> Rule:
    limit = _length_limit(column) if column.typname in ("varchar", "bpchar") else None
    padded = column.typname == "bpchar"

    def rule(value: Any) -> Any:
        text = _text(value)
        if padded:
            text = text.rstrip(" ")  # insignificant in char(n), which pads with spaces
        if limit is not None and len(text) > limit:
            raise _Refused(f"{len(text)} characters, longer than {column.type_sql}")
        return text

    return rule


def _name_rule(column: PgColumn) -> Rule:
    def rule(value: Any) -> Any:
        text = _text(value)
        if len(text.encode("utf-8")) > 63:
            raise _Refused("longer than 63 bytes, which a name column would cut")
        return text

    return rule


def _date_rule(column: PgColumn) -> Rule:
    def rule(value: Any) -> Any:
        if isinstance(value, datetime.datetime):
            raise _Refused(f"a datetime for a date column would lose its time: {value!s:.40}")
        return value

    return rule


def _timestamp_rule(column: PgColumn) -> Rule:
    def rule(value: Any) -> Any:
        if value.tzinfo is not None:
            raise _Refused(
                f"{value!s:.40} has a tzinfo, for a timestamp without time zone column "
                "(PostgreSQL would convert it to the session's time zone)"
            )
        return value

    return rule


def _timestamptz_rule(column: PgColumn) -> Rule:
    def rule(value: Any) -> Any:
        if value.tzinfo is not None and value.utcoffset() is None:
            raise _Refused(f"{value!s:.40} has a tzinfo that gives no UTC offset")
        return value

    return rule


def _time_rule(column: PgColumn) -> Rule:
    def rule(value: Any) -> Any:
        if value.tzinfo is not None:
            raise _Refused(f"{value!s:.40} has a tzinfo, for a time column (it would be lost)")
        return value

    return rule


def _uuid_rule(column: PgColumn) -> Rule:
    def rule(value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return value
        try:
            return uuid.UUID(_text(value))
        except ValueError:
            raise _Refused(f"{value!r:.50} is not a UUID") from None

    return rule


def _bytes_rule(column: PgColumn) -> Rule:
    return lambda value: value if type(value) is bytes else bytes(value)


_NUMBER = (int, float, decimal.Decimal)
# typname: the Python types a value may have, the oid whose binary dumper sends
# it in binary COPY (the text types share one wire format, and psycopg dumps
# only ``text`` in binary), and its rule. Other types accept anything psycopg
# can adapt, checked by PostgreSQL alone.
_TYPES: dict[str, tuple[tuple[type, ...], int, Callable[[PgColumn], Rule] | None]] = {
    "int2": ((int,), 21, _int_rule),
    "int4": ((int,), 23, _int_rule),
    "int8": ((int,), 20, _int_rule),
    "float4": (_NUMBER, 700, _float4_rule),
    "float8": (_NUMBER, 701, _float8_rule),
    "numeric": (_NUMBER, 1700, _numeric_rule),
    "text": ((str,), 25, _text_rule),
    "varchar": ((str,), 25, _text_rule),
    "bpchar": ((str,), 25, _text_rule),
    "citext": ((str,), 25, _text_rule),
    "name": ((str,), 25, _name_rule),
    "bool": ((bool,), 16, None),
    "date": ((datetime.date,), 1082, _date_rule),
    "timestamp": ((datetime.datetime,), 1114, _timestamp_rule),
    "timestamptz": ((datetime.datetime,), 1184, _timestamptz_rule),
    "time": ((datetime.time,), 1083, _time_rule),
    "interval": ((datetime.timedelta,), 1186, None),
    "uuid": ((uuid.UUID, str), 2950, _uuid_rule),
    "bytea": ((bytes, bytearray, memoryview), 17, _bytes_rule),
}


def accepted_types(typname: str) -> tuple[type, ...] | None:
    """The Python types a column of ``typname`` accepts (``None``: any)."""
    known = _TYPES.get(typname)
    return known[0] if known else None


def _present(rows: Sequence[tuple[Any, ...]], position: int, found: set[type]) -> list[Any]:
    values = map(itemgetter(position), rows)
    return list(filter(_NOT_NONE, values) if _NONE_TYPE in found else values)


def _kept_as_is(
    column: PgColumn, rows: Sequence[tuple[Any, ...]], position: int, found: set[type]
) -> bool:
    """The common cases, decided a column at a time in C loops: nothing to check or convert.

    ``found`` is the column's set of value types (``NoneType`` too); its values
    (``rows``, ``position``) are read only where the types alone do not decide.
    """
    kinds = found - {_NONE_TYPE}
    typname = column.typname
    if _TYPES.get(typname, (None, None, None))[2] is None or not kinds:
        return True
    if typname == "date":
        return kinds == {datetime.date}
    if typname in _INT_RANGES:
        _, low, high = _INT_RANGES[typname]
        present = _present(rows, position, found) if kinds == {int} else None
        return present is not None and low <= min(present) and max(present) <= high
    if typname in ("text", "citext", "varchar", "bpchar"):
        if kinds != {str}:
            return False
        present = _present(rows, position, found)
        joined = "".join(present)
        limit = _length_limit(column) if typname in ("varchar", "bpchar") else None
        return (
            joined.isascii()
            and "\x00" not in joined
            and (limit is None or max(map(len, present)) <= limit)
            and (typname != "bpchar" or not any(map(str.endswith, present, repeat(" "))))
        )
    if typname == "float8":
        if kinds != {float}:
            return False
        present = _present(rows, position, found)
        # NaN makes the sum NaN; a NaN sum without one (inf + -inf) is checked value by value.
        return not math.isnan(sum(present)) or not any(map(math.isnan, present))
    if typname in ("timestamp", "time", "timestamptz"):
        zones = set(map(_TZINFO, _present(rows, position, found)))
        if typname == "timestamptz":  # these always give a datetime its offset
            return all(z is None or type(z) in _OFFSET_ZONES for z in zones)
        return zones == {None}
    return False


@attrs.frozen
class PgValues:
    """The value rules of one table, as :attr:`TableInfo.convert_values`.

    Called with a batch's columns and rows (every value of an accepted type),
    it returns the rows as both write paths will send them, or raises
    :class:`~resilient_pipeline.exceptions.InvalidBatchError` naming every
    value (row and column) the table cannot keep exactly.
    """

    table: str
    columns: Mapping[str, PgColumn]
    _rules: dict[str, Rule] = attrs.field(init=False)

    @_rules.default
    def _build(self) -> dict[str, Rule]:
        rules = {}
        for name, column in self.columns.items():
            make = _TYPES.get(column.typname, (None, None, None))[2]
            if make is not None:
                rules[name] = make(column)
        return rules

    def __call__(
        self, columns: Sequence[str], rows: list[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        return self.with_kinds(columns, rows, None)

    def with_kinds(
        self,
        columns: Sequence[str],
        rows: list[tuple[Any, ...]],
        kinds: Sequence[set[type]] | None,
    ) -> list[tuple[Any, ...]]:
        """The same as calling it, given each column's set of value types (``NoneType`` too).

        ``prepare_batch`` has them from its type check: most columns are then
        decided from the types and one pass over their values, or none.
        """
        if not rows:
            return rows
        problems: list[RowProblem] = []
        converted: dict[int, list[Any]] = {}
        for position, name in enumerate(columns):
            rule = self._rules.get(name)
            if rule is None:
                continue  # nothing to check or convert (bool, interval, other types)
            found = (
                set(map(type, map(itemgetter(position), rows)))
                if kinds is None
                else kinds[position]
            )
            if _kept_as_is(self.columns[name], rows, position, found):
                continue
            out: list[Any] = []
            for index, value in enumerate(map(itemgetter(position), rows)):
                try:
                    out.append(None if value is None else rule(value))
                except _Refused as exc:  # noqa: PERF203 -- rare; the rule is the check
                    problems.append(RowProblem(index, name, str(exc)))
            converted[position] = out
        if problems:
            raise InvalidBatchError(table=self.table, problems=problems[:_MAX_PROBLEMS])
        if not converted:
            return rows
        by_column = [
            converted[p] if p in converted else [row[p] for row in rows]
            for p in range(len(columns))
        ]
        return list(zip(*by_column, strict=True))
