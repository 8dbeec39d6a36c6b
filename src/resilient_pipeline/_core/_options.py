"""One vocabulary for option checks, in the style of attrs validators.

Each factory returns a frozen, reusable check with a readable ``repr``. Use it
as an attrs validator (``attrs.field(validator=number(gt=0))``, the option is
named after the attribute) or call ``.check(option, value)`` from plain code.
Every failure is a :class:`~resilient_pipeline.exceptions.ConfigurationError`
naming the option, the value and the requirement, worded the same way
everywhere: ``max_attempts=0 is invalid: must be an int >= 1``.

Examples:
    >>> positive = number(gt=0, finite=True)
    >>> positive
    <option check: must be a finite number > 0>
    >>> positive.check("base_delay", 0.5)
    0.5
    >>> positive.check("base_delay", float("nan"))
    Traceback (most recent call last):
    ...
    resilient_pipeline.exceptions.ConfigurationError: base_delay=nan is invalid: ...
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeVar

from resilient_pipeline.exceptions import ConfigurationError

if TYPE_CHECKING:
    import attrs

__all__ = [
    "callable_or_none",
    "exception_types",
    "in_",
    "integer",
    "non_empty_str",
    "number",
]

T = TypeVar("T")


# Plain slotted classes, not attrs: they are built while the library is imported,
# and an attrs class costs about a millisecond to create.
class _Check:
    """The shared shape: an attrs validator that delegates to ``check``."""

    __slots__ = ()

    def __call__(self, _: object, attribute: attrs.Attribute[Any], value: object) -> None:
        self.check(attribute.alias or attribute.name, value)

    def check(self, option: str, value: T) -> T:
        """Return ``value`` unchanged, or raise ``ConfigurationError`` naming ``option``."""
        if not self.accepts(value):
            raise ConfigurationError.for_option(option, value, self.requirement)
        return value

    def accepts(self, value: object) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def requirement(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<option check: {self.requirement}>"


class _Number(_Check):
    __slots__ = ("finite", "ge", "gt", "le", "optional", "whole")

    def __init__(
        self,
        whole: bool,
        ge: float | None,
        gt: float | None,
        le: float | None,
        finite: bool,
        optional: bool,
    ) -> None:
        self.whole, self.ge, self.gt, self.le = whole, ge, gt, le
        self.finite, self.optional = finite, optional

    def accepts(self, value: object) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and (
            self.whole or math.isnan(value) or (self.finite and math.isinf(value))
        ):
            return False
        # Compared as given: float() of a huge int would overflow.
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
        )

    @property
    def requirement(self) -> str:
        kind = "an int" if self.whole else ("a finite number" if self.finite else "a number")
        bounds = [f">= {_show(self.ge)}"] if self.ge is not None else []
        bounds += [f"> {_show(self.gt)}"] if self.gt is not None else []
        bounds += [f"<= {_show(self.le)}"] if self.le is not None else []
        text = f"must be {kind}" + (" " + " and ".join(bounds) if bounds else "")
        return text + (" or None" if self.optional else "")


def _show(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


class _CallableOrNone(_Check):
    __slots__ = ()

    def accepts(self, value: object) -> bool:
        return value is None or callable(value)

    @property
    def requirement(self) -> str:
        return "must be callable or None"


class _In(_Check):
    __slots__ = ("choices",)

    def __init__(self, choices: tuple[object, ...]) -> None:
        self.choices = choices

    def accepts(self, value: object) -> bool:
        return any(value == choice and type(value) is type(choice) for choice in self.choices)

    @property
    def requirement(self) -> str:
        *rest, last = [repr(choice) for choice in self.choices]
        return "must be " + (f"{', '.join(rest)} or {last}" if rest else last)


class _NonEmptyStr(_Check):
    __slots__ = ("blank",)

    def __init__(self, blank: bool) -> None:
        self.blank = blank

    def accepts(self, value: object) -> bool:
        return isinstance(value, str) and bool(value if self.blank else value.strip())

    @property
    def requirement(self) -> str:
        return "must be a non-empty str" if self.blank else "must be a non-blank str"


class _ExceptionTypes(_Check):
    __slots__ = ()

    def accepts(self, value: object) -> bool:
        kinds = value if isinstance(value, tuple) else (value,)
        return all(isinstance(kind, type) and issubclass(kind, Exception) for kind in kinds)

    @property
    def requirement(self) -> str:
        return (
            "must be an Exception subclass or a tuple of them "
            "(BaseException-only types such as cancellation are never caught)"
        )

    def types(self, option: str, value: object) -> tuple[type[Exception], ...]:
        """``value`` as a tuple of exception types, or a ``ConfigurationError``."""
        self.check(option, value)
        return value if isinstance(value, tuple) else (value,)


def number(
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    finite: bool = False,
    optional: bool = False,
) -> _Number:
    """A real number (never a bool or NaN) within the bounds given; ``None`` if ``optional``.

    Examples:
        >>> number(ge=0, le=1)
        <option check: must be a number >= 0 and <= 1>
    """
    return _Number(False, ge, gt, le, finite, optional)


def integer(*, ge: int | None = None, optional: bool = False) -> _Number:
    """An ``int`` (never a bool) of at least ``ge``; ``None`` if ``optional``.

    Examples:
        >>> integer(ge=1).check("max_attempts", 3)
        3
    """
    return _Number(True, ge, None, None, False, optional)


def callable_or_none() -> _CallableOrNone:
    """A callable, or ``None`` for "not set".

    Examples:
        >>> callable_or_none().check("retry_if", None) is None
        True
    """
    return _CallableOrNone()


def in_(*choices: object) -> _In:
    """Exactly one of ``choices`` (compared by value and type, so ``True`` is not ``1``).

    Examples:
        >>> in_("wait", "reject")
        <option check: must be 'wait' or 'reject'>
    """
    return _In(choices)


def non_empty_str(*, blank: bool = True) -> _NonEmptyStr:
    """A ``str`` that is not empty; with ``blank=False`` not only white space either.

    Examples:
        >>> non_empty_str(blank=False).check("title", "meta_ads incomplete")
        'meta_ads incomplete'
    """
    return _NonEmptyStr(blank)


def exception_types() -> _ExceptionTypes:
    """An ``Exception`` subclass or a tuple of them; ``.types()`` returns the tuple.

    Examples:
        >>> exception_types().types("retry_on", ConnectionError)
        (<class 'ConnectionError'>,)
    """
    return _ExceptionTypes()
