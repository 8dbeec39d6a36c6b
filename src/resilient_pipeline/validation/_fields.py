"""Field specifications, strict type checks, and fields derived from class definitions.

Type checks never convert: ``"12"`` is not an int, ``True`` is not an int,
``nan`` is not a usable float and a ``datetime`` is not a ``date``. Each gets
its own precise problem instead of a silent pass (or a crash later on).
"""

from __future__ import annotations

import builtins
import dataclasses
import enum
import math
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar, Literal, Union
from uuid import UUID

import attrs
import typing_extensions

from resilient_pipeline._core import in_
from resilient_pipeline.exceptions import ConfigurationError

from ._rules import Binder, Rule, Severity, _check_callable, one_of

__all__ = ["Field", "fields_from_class"]

SUPPORTED_TYPES: tuple[type, ...] = (
    int,
    float,
    Decimal,
    str,
    bool,
    bytes,
    date,
    datetime,
    time,
    UUID,
    list,
    tuple,
    dict,
)
_INF = math.inf


def _got(value: object) -> str:
    kind = type(value).__name__
    if isinstance(value, str | bytes):
        return f"got {kind} (text is never converted to a number)"
    return f"got {kind}"


@attrs.frozen(repr=False)
class TypeRule:
    """The strict type check of one field (the ``"type"`` rule)."""

    kind: type
    name: ClassVar[str] = "type"

    def __call__(self, value: object) -> str | None:
        kind = self.kind
        if isinstance(value, bool) and kind is not bool:
            return f"expected {kind.__name__}, got bool"
        if kind is float:
            if type(value) is Decimal or not isinstance(value, int | float):
                return f"expected float, {_got(value)}"
            return None if -_INF < value < _INF else "must be a finite number (not NaN/inf)"
        if kind is Decimal:
            if isinstance(value, float):
                return "expected Decimal, got float (inexact: build it with Decimal(str(x)))"
            if isinstance(value, int):
                return None
            if not isinstance(value, Decimal):
                return f"expected Decimal, {_got(value)}"
            return None if value.is_finite() else "must be a finite number (not NaN/inf)"
        if kind is int and not isinstance(value, int):
            return f"expected int, {_got(value)}"
        if kind is date and isinstance(value, datetime):
            return "expected date, got datetime"
        if not isinstance(value, kind):
            return f"expected {kind.__name__}, got {type(value).__name__}"
        return None

    def _passes(self, var: str, bind: Binder) -> str:
        """An expression true for the common valid values (others go to ``__call__``)."""
        if self.kind is float:
            return f"({var}.__class__ is float and {bind(-_INF)} < {var} < {bind(_INF)})"
        if self.kind is Decimal:
            return f"({var}.__class__ is {bind(Decimal)} and {var}.is_finite())"
        return f"{var}.__class__ is {bind(self.kind)}"

    def __repr__(self) -> str:
        return f"type_rule({self.kind.__name__})"


def _check_type(name: str, kind: object) -> type | None:
    if kind is None:
        return None
    if isinstance(kind, type) and (kind in SUPPORTED_TYPES or issubclass(kind, enum.Enum)):
        return kind
    raise ConfigurationError.for_option(
        f"fields[{name!r}].type",
        kind,
        "cannot be checked; use int, float, Decimal, str, bool, bytes, date, datetime, time, "
        "UUID, an Enum, list, tuple or dict (or None and rules)",
    )


@attrs.frozen(init=False)
class Field:
    """How one field must look: its type, value rules, and whether it may be absent.

    Args:
        type: The value's type, checked strictly (no conversion); ``None`` to
            check only the rules.
        *rules: Value rules (:mod:`resilient_pipeline.validation.rules`), all checked.
        required: Whether the field must be present and not ``None``. An
            absent optional field skips its rules.
        secret: Mask the value in issues, messages and reprs.
        severity: ``"warning"`` reports problems but lets the row through.

    Examples:
        >>> from resilient_pipeline.validation.rules import ge
        >>> Field(int, ge(0), required=False)
        Field(type=<class 'int'>, rules=(ge(0),), required=False, secret=False, severity='error')
    """

    type: builtins.type | None
    rules: tuple[Rule, ...]
    required: bool
    secret: bool
    severity: Severity

    def __init__(
        self,
        type: builtins.type | None = None,
        *rules: Rule,
        required: bool = True,
        secret: bool = False,
        severity: Severity = "error",
    ) -> None:
        for rule in rules:
            _check_callable("rules", rule)
        in_("error", "warning").check("severity", severity)
        for option, flag in (("required", required), ("secret", secret)):
            if not isinstance(flag, bool):
                raise ConfigurationError.for_option(option, flag, "must be a bool")
        self.__attrs_init__(type, tuple(rules), required, secret, severity)

    def checked(self, name: str) -> tuple[TypeRule | None, tuple[Rule, ...]]:
        """The type rule and value rules, after checking they suit each other."""
        kind = _check_type(name, self.type)
        sized = (str, bytes, list, tuple, dict)
        for rule in self.rules:
            if getattr(rule, "name", None) == "length" and kind is not None and kind not in sized:
                raise ConfigurationError.for_option(
                    f"fields[{name!r}].rules", rule, f"a {kind.__name__} has no length"
                )
            if getattr(rule, "name", None) == "matches" and kind not in (None, str):
                raise ConfigurationError.for_option(
                    f"fields[{name!r}].rules", rule, "patterns only apply to str fields"
                )
        return (None if kind is None else TypeRule(kind)), self.rules


# ------------------------------------------------------------ from definitions
_KEY_QUALIFIERS = {
    getattr(module, name, None)
    for module in (typing, typing_extensions)
    for name in ("NotRequired", "Required", "ReadOnly")
} - {None}


def _from_annotation(name: str, hint: object) -> Field:
    """The Field an annotation describes (``int | None``, ``Literal``, ``Annotated``)."""
    required = True
    rules: list[Rule] = []
    qualifier = typing.get_origin(hint)
    if qualifier in _KEY_QUALIFIERS:  # TypedDict's NotRequired[X], Required[X]
        # Read here too: under `from __future__ import annotations` the
        # TypedDict itself cannot tell NotRequired keys from required ones.
        required = getattr(qualifier, "_name", "") != "NotRequired"
        (hint,) = typing.get_args(hint)
        if not required:
            inner = _from_annotation(name, hint)
            return Field(inner.type, *inner.rules, required=False)
    if typing.get_origin(hint) is typing.Annotated:
        hint, *metadata = typing.get_args(hint)
        rules += [m for m in metadata if callable(m)]
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        required = len(args) == len(typing.get_args(hint))
        if len(args) != 1:
            raise ConfigurationError.for_option(
                f"fields[{name!r}].type", hint, "unions other than `X | None` cannot be checked"
            )
        inner = _from_annotation(name, args[0])
        return Field(inner.type, *inner.rules, *rules, required=required and inner.required)
    if origin is Literal:
        return Field(None, one_of(*typing.get_args(hint)), *rules, required=required)
    if origin is not None:  # list[int], dict[str, int]: the container type only
        hint = origin
    if hint is Any or hint is object:  # None is an Any too
        return Field(None, *rules, required=False)
    return Field(_check_type(name, hint), *rules)


def fields_from_class(
    cls: type, field_rules: Mapping[str, Iterable[Rule]] | None = None
) -> dict[str, Field]:
    """Field specs read from an attrs class, a dataclass or a TypedDict.

    Examples:
        >>> import dataclasses
        >>> @dataclasses.dataclass
        ... class Row:
        ...     client: str
        ...     clicks: int | None = None
        >>> fields_from_class(Row)["clicks"].required
        False
    """
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:
        raise ConfigurationError.for_option("cls", cls, f"its type hints fail ({exc})") from exc
    if attrs.has(cls):
        names = [a.name for a in attrs.fields(cls)]
    elif dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls)]
    elif isinstance(getattr(cls, "__required_keys__", None), frozenset):
        names = list(hints)
    else:
        raise ConfigurationError.for_option(
            "cls", cls, "must be an attrs class, a dataclass or a TypedDict"
        )
    optional_keys: frozenset[str] = getattr(cls, "__optional_keys__", frozenset())
    extra = dict(field_rules or {})
    unknown = set(extra) - set(names)
    if unknown:
        raise ConfigurationError.for_option(
            "field_rules", sorted(unknown), f"names fields {cls.__name__} does not have"
        )
    specs = {}
    for name in names:
        spec = _from_annotation(name, hints.get(name, Any))
        specs[name] = Field(
            spec.type,
            *spec.rules,
            *extra.get(name, ()),
            required=spec.required and name not in optional_keys,
        )
    return specs
