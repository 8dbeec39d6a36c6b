"""The quarantine's JSON codec: typed values in, the same typed values out.

A quarantined row is stored as JSON that every sink accepts: a JSONL file
(UTF-8), SQLite text and PostgreSQL ``jsonb``. Values JSON cannot hold are
*tagged*: a one-key object whose key starts with ``$``
(``{"$decimal": "12.50"}``, ``{"$date": "2026-11-28"}``).

Format 2 (written since 0.x, see ``FORMAT``) makes the round trip exact:

* a dict of the row's own that could be mistaken for a tag (one key starting
  with ``$``), or whose keys are not plain text, is written as a list of
  pairs, ``{"$dict": [[key, value], ...]}``, so user data never decodes as a tag;
* text PostgreSQL or UTF-8 refuses (NUL, lone surrogates) is written as
  ``{"$text": ["acme", 0]}``: runs of text and the code points of the
  characters in between;
* tuples, sets, frozensets, bytearrays, timedeltas and integers too long for
  JSON numbers get tags of their own, and floats PostgreSQL's ``numeric``
  would change (``-0.0``, ``1e+16``, ``inf``) are tagged ``$float``.

Format 1 (no ``format`` key) is still read, with the ambiguities it had; a
format-1 tag whose payload cannot be decoded (``{"$uuid": None}``) was the
row's own data and is read back as a plain dict.

Nesting is bounded (:data:`MAX_DEPTH` levels of JSON): deeper values raise
:class:`TooDeep` before anything is written, never ``RecursionError``.
"""

from __future__ import annotations

import base64
import enum
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ._issues import FieldValues

__all__ = ["FORMAT", "MAX_DEPTH", "Corrupt", "TooDeep", "decode", "decode_v1", "encode", "is_safe"]

FORMAT = 2
"""The version written by :func:`encode`; records carry it as ``"format"``."""

MAX_DEPTH = 128
"""Levels of JSON nesting a stored value may have (far beyond any real row).

Bounded so that encoding, ``json``, the database and decoding all stay well
inside Python's recursion limit, whatever the caller's own stack depth.
"""

# Integers longer than this many bits are tagged: str(int) refuses more than
# 4300 digits (CPython's int_max_str_digits), hex has no limit.
_INT_BITS = 9_000


class TooDeep(Exception):
    """A value nests deeper than :data:`MAX_DEPTH`; ``path`` lists the keys down to it."""

    def __init__(self) -> None:
        super().__init__("too deep")
        self.path: list[object] = []


class Corrupt(ValueError):
    """Stored JSON that this codec never writes (damaged, or edited by hand)."""


def is_safe(text: str) -> bool:
    """Whether ``text`` can be stored as a JSON string by every sink (no NUL, no surrogate)."""
    if text.isascii():
        return "\x00" not in text
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_UNSAFE = re.compile("([\x00\ud800-\udfff])")


def _encode_text(text: str) -> Any:
    if is_safe(text):
        return text
    # split() with a group keeps the separators: every odd item is one unsafe character.
    pieces = _UNSAFE.split(text)
    parts: list[str | int] = []
    for index, piece in enumerate(pieces):
        if index % 2:
            parts.append(ord(piece))
        elif piece:
            parts.append(piece)
    return {"$text": parts}


def _encode_float(value: float) -> Any:
    text = repr(value)
    # jsonb keeps numbers as numeric: no -0.0, no infinities, and "1e+16" comes
    # back as the integer 10000000000000000. A plain "digits.digits" is exact.
    if "." in text and "e" not in text and text != "-0.0":
        return value
    return {"$float": text}


def _plain_keys(value: Mapping[Any, Any]) -> bool:
    """Whether a dict can be a JSON object that no decoder mistakes for a tag."""
    if len(value) == 1:
        ((key, _),) = value.items()
        if type(key) is str and key.startswith("$"):
            return False
    return all(type(key) is str and is_safe(key) for key in value)


def encode(value: Any, depth: int = 0) -> Any:
    """A JSON-ready form of ``value`` that :func:`decode` turns back into it.

    ``depth`` is the JSON nesting the caller already used. Raises
    :class:`TooDeep` past :data:`MAX_DEPTH`.

    Examples:
        >>> encode({"$date": "2026-11-28", "n": (1, 2)})
        {'$date': '2026-11-28', 'n': {'$tuple': [1, 2]}}
        >>> encode({"$date": "2026-11-28"})
        {'$dict': [['$date', '2026-11-28']]}
    """
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is str:
        return _encode_text(value)
    if kind is int:
        return value if value.bit_length() <= _INT_BITS else {"$int": format(value, "x")}
    if kind is float:
        return _encode_float(value)
    if isinstance(value, enum.Enum):  # the class cannot be stored; its value can
        return encode(value.value, depth)
    if depth >= MAX_DEPTH:
        raise TooDeep
    inner = depth + 1
    key: object = None
    try:
        if isinstance(value, FieldValues):
            return {"$fields": encode(dict(value), inner)}
        if isinstance(value, Mapping):
            if _plain_keys(value):
                result = {}
                for key, item in value.items():
                    result[key] = encode(item, inner)
                return result
            pairs = []
            for key, item in value.items():
                pairs.append([encode(key, inner + 2), encode(item, inner + 2)])
            key = None
            return {"$dict": pairs}
        if isinstance(value, list):
            items = []
            for key in range(len(value)):
                items.append(encode(value[key], inner))
            return items
        if isinstance(value, tuple | set | frozenset):
            tag = "$tuple" if isinstance(value, tuple) else "$frozenset"
            if isinstance(value, set):
                tag = "$set"
            items = [encode(item, inner + 1) for item in value]
            return {tag: items}
    except TooDeep as exc:
        exc.path.append(key)
        raise
    return _encode_scalar(value)


def _encode_scalar(value: Any) -> Any:
    if isinstance(value, int):  # a subclass (bool and enums are handled before)
        return encode(int(value))
    if isinstance(value, float):
        return _encode_float(float(value))
    if isinstance(value, str):
        return _encode_text(str(value))
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, bytearray):
        return {"$bytearray": base64.b64encode(value).decode("ascii")}
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not keep the row out of quarantine
        text = f"<{type(value).__qualname__} object>"
    return {"$repr": _encode_text(text)}  # kept for the record; replays as text


# ---------------------------------------------------------------------- decode
def _text(payload: Any) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        value = decode(payload)
        if isinstance(value, str):
            return value
    raise Corrupt("expected text")


def _decode_text(payload: Any) -> str:
    if not isinstance(payload, list):
        raise Corrupt("$text expects a list")
    parts = []
    for part in payload:
        if isinstance(part, str):
            parts.append(part)
        elif type(part) is int and 0 <= part <= 0x10FFFF:
            parts.append(chr(part))
        else:
            raise Corrupt("$text expects text and code points")
    return "".join(parts)


# Loops rather than comprehensions below: before Python 3.12 each comprehension
# is a frame of its own, and decoding should cost one frame per level of nesting.
def _items(payload: Any) -> list[Any]:
    if not isinstance(payload, list):
        raise Corrupt("expected a list")
    items = []
    for item in payload:
        items.append(decode(item))  # noqa: PERF401 -- a loop: one frame per level (see above)
    return items


def _decode_dict(payload: Any) -> dict[Any, Any]:
    if not isinstance(payload, list):
        raise Corrupt("$dict expects [key, value] pairs")
    result = {}
    for pair in payload:
        if not isinstance(pair, list) or len(pair) != 2:
            raise Corrupt("$dict expects [key, value] pairs")
        result[decode(pair[0])] = decode(pair[1])
    return result


def _decode_fields(payload: Any) -> FieldValues:
    value = decode(payload)
    if not isinstance(value, dict):
        raise Corrupt("$fields expects an object")
    return FieldValues(value)


def _decode_timedelta(payload: Any) -> timedelta:
    if not isinstance(payload, list) or len(payload) != 3:
        raise Corrupt("$timedelta expects [days, seconds, microseconds]")
    days, seconds, micros = payload
    return timedelta(days=days, seconds=seconds, microseconds=micros)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$bytearray": lambda v: bytearray(base64.b64decode(_text(v), validate=True)),
    "$bytes": lambda v: base64.b64decode(_text(v), validate=True),
    "$date": lambda v: date.fromisoformat(_text(v)),
    "$datetime": lambda v: datetime.fromisoformat(_text(v)),
    "$decimal": lambda v: Decimal(_text(v)),
    "$dict": _decode_dict,
    "$fields": _decode_fields,
    "$float": lambda v: float(_text(v)),
    "$frozenset": lambda v: frozenset(_items(v)),
    "$int": lambda v: int(_text(v), 16),
    "$repr": _text,
    "$set": lambda v: set(_items(v)),
    "$text": _decode_text,
    "$time": lambda v: time.fromisoformat(_text(v)),
    "$timedelta": _decode_timedelta,
    "$tuple": lambda v: tuple(_items(v)),
    "$uuid": lambda v: uuid.UUID(_text(v)),
}


def decode(value: Any) -> Any:
    """The value :func:`encode` described (format 2); raises :class:`Corrupt` otherwise.

    Examples:
        >>> decode({"$dict": [["$date", "2026-11-28"]]})
        {'$date': '2026-11-28'}
        >>> decode({"$date": "2026-11-28"})
        datetime.date(2026, 11, 28)
    """
    if isinstance(value, list):
        return _items(value)
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, payload),) = value.items()
            if tag.startswith("$"):
                decoder = _DECODERS.get(tag)
                if decoder is None:
                    raise Corrupt(f"unknown tag {tag!r}")
                try:
                    return decoder(payload)
                except Corrupt:
                    raise
                except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
                    # The message names the tag, never the stored value (it may be secret).
                    raise Corrupt(f"bad {tag} value ({type(exc).__name__})") from None
        result = {}
        for key, item in value.items():
            result[key] = decode(item)
        return result
    return value


# ---------------------------------------------------------------- format 1
_V1_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$float": float,
    "$decimal": Decimal,
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$uuid": uuid.UUID,
    "$bytes": base64.b64decode,
    "$fields": lambda v: FieldValues((k, decode_v1(x)) for k, x in v.items()),
    "$repr": str,
}


def decode_v1(value: Any) -> Any:
    """Format 1 (records written before ``format`` existed), read as it was written.

    A tag whose payload does not decode was the row's own dict (format 1
    did not escape them): it comes back as that dict instead of failing.

    Examples:
        >>> decode_v1({"$uuid": None}), decode_v1({"$date": "2026-11-28"})
        ({'$uuid': None}, datetime.date(2026, 11, 28))
    """
    if isinstance(value, list):
        return [decode_v1(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, payload),) = value.items()
            decoder = _V1_DECODERS.get(tag)
            if decoder is not None:
                try:
                    return decoder(payload)
                except (ValueError, TypeError, AttributeError, OverflowError, ArithmeticError):
                    pass
        return {k: decode_v1(v) for k, v in value.items()}
    return value
