"""Value rules: small frozen callables that say what is wrong with one value.

A rule is any callable ``rule(value) -> str | None``: ``None`` when the value
is fine, otherwise a short problem (``"must be >= 0"``). Problems never repeat
the value itself, so a secret field cannot leak through a message; the
validator prints the value next to the problem, masked when the field is
secret. The factories here follow attrs' validators: a public function returns
a frozen, slotted callable with a readable ``repr``. Rules that the compiled
fast path can inline also offer ``_inline()``: a Python expression over a local
variable that is true exactly when the rule would report a problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal
from numbers import Real
from typing import Any, ClassVar, Literal, TypeAlias

import attrs

from resilient_pipeline.exceptions import ConfigurationError

__all__ = [
    "Rule",
    "Severity",
    "between",
    "ge",
    "gt",
    "le",
    "length",
    "lt",
    "matches",
    "non_negative",
    "one_of",
    "positive",
    "predicate",
]

Rule: TypeAlias = Callable[[Any], "str | None"]
"""A rule: ``rule(value)`` returns ``None`` when fine, else a short problem."""

Severity: TypeAlias = Literal["error", "warning"]

#: Binds a Python object into generated code and returns the name it got.
Binder: TypeAlias = Callable[[object], str]

NUMERIC_TYPES: tuple[type, ...] = (int, float, Decimal)


def rule_name(rule: object) -> str:
    """The name an :class:`~resilient_pipeline.validation.Issue` gives ``rule``."""
    name = getattr(rule, "name", None)
    if isinstance(name, str):
        return name
    return getattr(rule, "__name__", type(rule).__name__)


def _check_callable(option: str, value: object) -> None:
    if not callable(value):
        raise ConfigurationError.for_option(option, value, "must be a callable rule")


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, Real | Decimal):
        return False
    return not (isinstance(value, float | Decimal) and math.isnan(value))


# ------------------------------------------------------------------ comparisons
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def check_op(op: object) -> str:
    """Validate a comparison operator given as text."""
    if op not in _OPS:
        raise ConfigurationError.for_option("op", op, f"must be one of {', '.join(_OPS)}")
    return str(op)


def compare_values(left: object, op: str, right: object) -> bool | None:
    """``left <op> right``, or ``None`` when the two cannot be compared."""
    try:
        return bool(_OPS[op](left, right))
    except TypeError:
        return None


@attrs.frozen(repr=False)
class _Bound:
    """``value <op> bound`` for a fixed bound; ``ge``, ``gt``, ``le`` and ``lt``."""

    op: str
    bound: Any

    @property
    def name(self) -> str:
        return {">=": "ge", ">": "gt", "<=": "le", "<": "lt"}[self.op]

    def __call__(self, value: object) -> str | None:
        ok = compare_values(value, self.op, self.bound)
        if ok is None:
            kind = type(value).__name__
            return f"must be {self.op} {self.bound!r}, and a {kind} is not comparable"
        return None if ok else f"must be {self.op} {self.bound!r}"

    def _inline(self, var: str, bind: Binder, kind: type | None) -> str | None:
        if kind not in NUMERIC_TYPES or not _is_number(self.bound):
            return None
        return f"not ({var} {self.op} {bind(self.bound)})"

    def __repr__(self) -> str:
        return f"{self.name}({self.bound!r})"


def _bound(op: str, bound: object) -> _Bound:
    if bound is None or (isinstance(bound, float | Decimal) and math.isnan(bound)):
        raise ConfigurationError.for_option("bound", bound, "must be a comparable value, not NaN")
    return _Bound(op, bound)


def ge(bound: object) -> Rule:
    """The value must be ``>= bound``.

    Examples:
        >>> ge(0)(-1), ge(0)(3)
        ('must be >= 0', None)
    """
    return _bound(">=", bound)


def gt(bound: object) -> Rule:
    """The value must be ``> bound``.

    Examples:
        >>> gt(0)(0)
        'must be > 0'
    """
    return _bound(">", bound)


def le(bound: object) -> Rule:
    """The value must be ``<= bound``.

    Examples:
        >>> le(100)(101)
        'must be <= 100'
    """
    return _bound("<=", bound)


def lt(bound: object) -> Rule:
    """The value must be ``< bound``.

    Examples:
        >>> lt(1)
        lt(1)
    """
    return _bound("<", bound)


def non_negative() -> Rule:
    """The value must be ``>= 0`` (spend, impressions, clicks, ...).

    Examples:
        >>> non_negative()(-0.5)
        'must be >= 0'
    """
    return _bound(">=", 0)


def positive() -> Rule:
    """The value must be ``> 0``.

    Examples:
        >>> positive()(0)
        'must be > 0'
    """
    return _bound(">", 0)


@attrs.frozen(repr=False)
class _Between:
    low: Any
    high: Any
    name: ClassVar[str] = "between"

    def __call__(self, value: object) -> str | None:
        low_ok = compare_values(value, ">=", self.low)
        high_ok = compare_values(value, "<=", self.high)
        if low_ok and high_ok:
            return None
        return f"must be between {self.low!r} and {self.high!r}"

    def _inline(self, var: str, bind: Binder, kind: type | None) -> str | None:
        if kind not in NUMERIC_TYPES or not (_is_number(self.low) and _is_number(self.high)):
            return None
        return f"not ({bind(self.low)} <= {var} <= {bind(self.high)})"

    def __repr__(self) -> str:
        return f"between({self.low!r}, {self.high!r})"


def between(low: object, high: object) -> Rule:
    """The value must be within ``[low, high]`` (both inclusive).

    Raises:
        ConfigurationError: ``low > high``; no value could ever pass.

    Examples:
        >>> between(0, 1)(1.5)
        'must be between 0 and 1'
    """
    _bound(">=", low)  # the same checks as a single bound
    _bound("<=", high)
    if compare_values(low, ">", high) is not False:
        raise ConfigurationError.for_option(
            "low", low, f"must be <= high={high!r} (and comparable with it)"
        )
    return _Between(low, high)


# ------------------------------------------------------------- size and shape
@attrs.frozen(repr=False)
class _Length:
    min: int | None
    max: int | None
    name: ClassVar[str] = "length"

    def __call__(self, value: object) -> str | None:
        try:
            size = len(value)  # type: ignore[arg-type]
        except TypeError:
            return f"must have a length, and a {type(value).__name__} has none"
        if (self.min is not None and size < self.min) or (self.max is not None and size > self.max):
            return f"length must be {self._range()} (got {size})"
        return None

    def _range(self) -> str:
        if self.max is None:
            return f">= {self.min}"
        if self.min is None:
            return f"<= {self.max}"
        return f"between {self.min} and {self.max}"

    def _inline(self, var: str, bind: Binder, kind: type | None) -> str | None:
        if kind not in (str, bytes, list, tuple, dict):
            return None
        low = "" if self.min is None else f"{bind(self.min)} <= "
        high = "" if self.max is None else f" <= {bind(self.max)}"
        return f"not ({low}len({var}){high})"

    def __repr__(self) -> str:
        return f"length(min={self.min!r}, max={self.max!r})"


def length(*, min: int | None = None, max: int | None = None) -> Rule:
    """The value's ``len()`` must be within ``[min, max]`` (either may be omitted).

    Examples:
        >>> length(min=1, max=3)("abcd")
        'length must be between 1 and 3 (got 4)'
    """
    for option, bound in (("min", min), ("max", max)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise ConfigurationError.for_option(option, bound, "must be an int or None")
        if bound is not None and bound < 0:
            raise ConfigurationError.for_option(option, bound, "must be >= 0")
    if min is None and max is None:
        raise ConfigurationError.for_option("max", max, "give min, max or both")
    if min is not None and max is not None and min > max:
        raise ConfigurationError.for_option("min", min, f"must be <= max={max!r}")
    return _Length(min, max)


@attrs.frozen(repr=False)
class _Matches:
    regex: re.Pattern[str]
    _seen: set[str] = attrs.field(factory=set, init=False, eq=False, alias="_seen")
    name: ClassVar[str] = "matches"

    def __call__(self, value: object) -> str | None:
        if not isinstance(value, str):
            return f"must be a str matching {self.regex.pattern!r}, not a {type(value).__name__}"
        if self.regex.fullmatch(value) is None:
            return f"must match {self.regex.pattern!r}"
        return None

    def _inline(self, var: str, bind: Binder, kind: type | None) -> str | None:
        if kind is not str:
            return None
        return f"{var} not in {bind(self._seen)} and {bind(self._slow)}({var})"

    def _slow(self, value: str) -> bool:
        """Whether ``value`` fails; remembers the values that passed."""
        if self.regex.fullmatch(value) is None:
            return True
        seen = self._seen
        if len(seen) >= _SEEN_LIMIT:
            seen.clear()
        seen.add(value)
        return False

    def __repr__(self) -> str:
        return f"matches({self.regex.pattern!r})"


# Key fields (client ids, currencies, dates as text) repeat a lot, and a regex
# match costs ten times a set lookup: the compiled path remembers strings that
# matched. Bounded, and only ever a cache of facts (a pattern never changes).
_SEEN_LIMIT = 4096


def matches(pattern: str | re.Pattern[str], *, flags: int = 0) -> Rule:
    """The whole string must match ``pattern`` (``re.fullmatch``).

    Examples:
        >>> matches("[a-z]{2}-[0-9]+")("AB-1")
        "must match '[a-z]{2}-[0-9]+'"
    """
    try:
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
    except (re.error, TypeError) as exc:
        raise ConfigurationError.for_option("pattern", pattern, f"is not a regex ({exc})") from exc
    if not isinstance(regex.pattern, str):
        raise ConfigurationError.for_option("pattern", pattern, "must be a str pattern")
    return _Matches(regex)


@attrs.frozen(repr=False)
class _OneOf:
    values: frozenset[Any] | tuple[Any, ...]
    name: ClassVar[str] = "one_of"

    def __call__(self, value: object) -> str | None:
        try:
            ok = value in self.values
        except TypeError:  # an unhashable value is never in a frozenset
            ok = False
        # True == 1, so without the type check one_of(0, 1) would accept booleans.
        if ok and (isinstance(value, bool) == any(isinstance(v, bool) for v in self.values)):
            return None
        return f"must be one of {self._choices()}"

    def _choices(self) -> str:
        shown = sorted(map(repr, self.values))
        return ", ".join(shown[:10]) + (", ..." if len(shown) > 10 else "")

    def _inline(self, var: str, bind: Binder, kind: type | None) -> str | None:
        if kind is not str or not isinstance(self.values, frozenset):
            return None
        return f"{var} not in {bind(self.values)}"

    def __repr__(self) -> str:
        return f"one_of({self._choices()})"


def one_of(*values: object) -> Rule:
    """The value must be one of ``values`` (allowed values).

    Examples:
        >>> one_of("EUR", "USD")("GBP")
        "must be one of 'EUR', 'USD'"
    """
    if not values:
        raise ConfigurationError.for_option("values", values, "give at least one allowed value")
    try:
        return _OneOf(frozenset(values))
    except TypeError:
        return _OneOf(tuple(values))


@attrs.frozen(repr=False)
class _Predicate:
    test: Callable[[Any], bool]
    message: str
    name: str

    def __call__(self, value: object) -> str | None:
        return None if self.test(value) else self.message

    def __repr__(self) -> str:
        return f"predicate({self.name}, {self.message!r})"


def predicate(test: Callable[[Any], bool], message: str, *, name: str | None = None) -> Rule:
    """Turn a ``bool`` test into a rule that reports ``message`` when it is false.

    Examples:
        >>> even = predicate(lambda n: n % 2 == 0, "must be even", name="even")
        >>> even(3), even
        ('must be even', predicate(even, 'must be even'))
    """
    _check_callable("test", test)
    text: object = message
    if not isinstance(text, str) or not text:
        raise ConfigurationError.for_option("message", message, "must be a non-empty str")
    return _Predicate(test, text, str(name or getattr(test, "__name__", "predicate")))
