"""Cross-field rules over one row, and completeness rules over a whole batch.

Row rules are called with the row as a mapping (objects are wrapped in a
read-only view) and return ``None`` or a problem, like value rules. The
built-in ones name the fields they read in ``fields``, so the validator can
reject a rule naming an unknown field when it is built, and skip a rule whose
fields already failed their own checks (one mistake, one issue). Conditions
(``where``, ``compare``) are rules too: a condition *holds* when it reports no
problem, which is what :func:`implies`, :func:`required_if` and
:func:`~resilient_pipeline.validation.rules.when` test.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, ClassVar

import attrs

from resilient_pipeline.exceptions import ConfigurationError

from ._combinators import fields_of
from ._rules import NUMERIC_TYPES, Binder, Rule, _is_number, check_op, compare_values

__all__ = ["compare", "expect_keys", "expect_non_empty", "implies", "required_if", "where"]


def _field_name(option: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigurationError.for_option(option, name, "must be a non-empty field name")
    return name


def _describe(condition: Rule) -> str:
    describe = getattr(condition, "describe", None)
    return describe() if callable(describe) else repr(condition)


@attrs.frozen(repr=False)
class _Where:
    field: str
    op: str
    value: Any
    name: ClassVar[str] = "where"

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.field,)

    def describe(self) -> str:
        return f"{self.field} {self.op} {self.value!r}"

    def __call__(self, row: Mapping[str, Any]) -> str | None:
        ok = compare_values(row[self.field], self.op, self.value)
        return None if ok else f"{self.field} must be {self.op} {self.value!r}"

    def _holds(
        self, var: dict[str, str], kinds: dict[str, type | None], bind: Binder
    ) -> str | None:
        if kinds[self.field] not in NUMERIC_TYPES or not _is_number(self.value):
            return None
        return f"{var[self.field]} {self.op} {bind(self.value)}"

    def __repr__(self) -> str:
        return f"where({self.field!r}, {self.op!r}, {self.value!r})"


def where(field: str, op: str, value: object) -> Rule:
    """The condition ``row[field] <op> value``; as a rule, reports when it is false.

    Examples:
        >>> where("spend", ">", 0)({"spend": 0})
        'spend must be > 0'
    """
    return _Where(_field_name("field", field), check_op(op), value)


@attrs.frozen(repr=False)
class _Compare:
    left: str
    op: str
    right: str
    name: ClassVar[str] = "compare"

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.left, self.right)

    def describe(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    def __call__(self, row: Mapping[str, Any]) -> str | None:
        left, right = row[self.left], row[self.right]
        ok = compare_values(left, self.op, right)
        if ok is None:
            return (
                f"{self.left} ({type(left).__name__}) cannot be compared with "
                f"{self.right} ({type(right).__name__})"
            )
        return None if ok else f"{self.left} must be {self.op} {self.right}"

    def _holds(
        self, var: dict[str, str], kinds: dict[str, type | None], bind: Binder
    ) -> str | None:
        if kinds[self.left] not in NUMERIC_TYPES or kinds[self.right] not in NUMERIC_TYPES:
            return None
        return f"{var[self.left]} {self.op} {var[self.right]}"

    def __repr__(self) -> str:
        return f"compare({self.left!r}, {self.op!r}, {self.right!r})"


def compare(left: str, op: str, right: str) -> Rule:
    """Cross-field comparison: ``row[left] <op> row[right]`` (e.g. clicks <= impressions).

    Examples:
        >>> compare("clicks", "<=", "impressions")({"clicks": 9, "impressions": 4})
        'clicks must be <= impressions'
    """
    return _Compare(_field_name("left", left), check_op(op), _field_name("right", right))


def _condition(option: str, rule: object) -> Rule:
    if not callable(rule):
        raise ConfigurationError.for_option(option, rule, "must be a row rule such as where()")
    return rule


@attrs.frozen(repr=False)
class _Implies:
    condition: Rule
    then: Rule
    name: ClassVar[str] = "implies"

    @property
    def fields(self) -> tuple[str, ...]:
        return fields_of(self.condition, self.then)

    def __call__(self, row: Mapping[str, Any]) -> str | None:
        if self.condition(row) is not None:
            return None
        problem = self.then(row)
        return None if problem is None else f"{problem} when {_describe(self.condition)}"

    def _fails(
        self, var: dict[str, str], kinds: dict[str, type | None], bind: Binder
    ) -> str | None:
        holds = getattr(self.condition, "_holds", None)
        then = getattr(self.then, "_holds", None)
        if holds is None or then is None:
            return None
        cond_src, then_src = holds(var, kinds, bind), then(var, kinds, bind)
        if cond_src is None or then_src is None:
            return None
        return f"({cond_src}) and not ({then_src})"

    def __repr__(self) -> str:
        return f"implies({self.condition!r}, {self.then!r})"


def implies(condition: Rule, then: Rule) -> Rule:
    """Where ``condition`` holds, ``then`` must hold too (spend > 0 ⇒ impressions > 0).

    Examples:
        >>> rule = implies(where("spend", ">", 0), where("impressions", ">", 0))
        >>> rule({"spend": 12.5, "impressions": 0})
        'impressions must be > 0 when spend > 0'
    """
    return _Implies(_condition("condition", condition), _condition("then", then))


@attrs.frozen(repr=False)
class _RequiredIf:
    field: str
    condition: Rule
    name: ClassVar[str] = "required_if"

    @property
    def fields(self) -> tuple[str, ...]:
        return fields_of(_Where(self.field, "==", None), self.condition)

    @property
    def needs(self) -> tuple[str, ...]:
        """Only the condition's fields must be valid; the required one may be missing."""
        return fields_of(self.condition)

    def __call__(self, row: Mapping[str, Any]) -> str | None:
        if self.condition(row) is not None or row.get(self.field) is not None:
            return None
        return f"{self.field} is required when {_describe(self.condition)}"

    def __repr__(self) -> str:
        return f"required_if({self.field!r}, {self.condition!r})"


def required_if(field: str, condition: Rule) -> Rule:
    """``field`` must be present (and not ``None``) wherever ``condition`` holds.

    Examples:
        >>> rule = required_if("currency", where("spend", ">", 0))
        >>> rule({"spend": 3})
        'currency is required when spend > 0'
    """
    return _RequiredIf(_field_name("field", field), _condition("condition", condition))


# --------------------------------------------------------------------- batches
@attrs.frozen(repr=False)
class _NonEmpty:
    name: ClassVar[str] = "expect_non_empty"
    fields: ClassVar[tuple[str, ...]] = ()

    def __call__(self, rows: Collection[Mapping[str, Any]]) -> str | None:
        return None if len(rows) else "the batch is empty"

    def __repr__(self) -> str:
        return "expect_non_empty()"


def expect_non_empty() -> Rule:
    """A batch rule: the batch must hold at least one row.

    Examples:
        >>> expect_non_empty()([])
        'the batch is empty'
    """
    return _NonEmpty()


@attrs.frozen(repr=False)
class _ExpectKeys:
    fields: tuple[str, ...]
    keys: frozenset[Any]
    name: ClassVar[str] = "expect_keys"

    def __call__(self, rows: Collection[Mapping[str, Any]]) -> str | None:
        fields = self.fields
        if len(fields) == 1:
            seen = {row.get(fields[0]) for row in rows}
        else:
            seen = {tuple(row.get(f) for f in fields) for row in rows}
        missing = self.keys - seen
        if not missing:
            return None
        shown = sorted(map(repr, missing))
        listed = ", ".join(shown[:20]) + (", ..." if len(shown) > 20 else "")
        return (
            f"missing {len(missing)} of {len(self.keys)} expected {'/'.join(fields)} "
            f"value(s): {listed}"
        )

    def __repr__(self) -> str:
        return f"expect_keys({', '.join(map(repr, self.fields))}, keys=<{len(self.keys)} keys>)"


def expect_keys(*fields: str, keys: Iterable[object]) -> Rule:
    """A batch rule: every expected key must appear in some row.

    With one field, ``keys`` are values of it (all 16 clients present); with
    several, tuples of their values (every client *and* date). Tag rows with
    the sub-collection they come from to require each one: ``expect_keys(
    "kind", keys={"campaign", "conversion"})`` fails a batch that has campaigns
    but no conversions.

    Examples:
        >>> rule = expect_keys("client", keys={"acme", "globex"})
        >>> rule([{"client": "acme"}])
        "missing 1 of 2 expected client value(s): 'globex'"
    """
    if not fields:
        raise ConfigurationError.for_option("fields", fields, "name at least one field")
    for name in fields:
        _field_name("fields", name)
    try:
        expected = frozenset(keys)
    except TypeError as exc:
        raise ConfigurationError.for_option("keys", keys, f"must be hashable ({exc})") from exc
    if not expected:
        raise ConfigurationError.for_option("keys", keys, "give at least one expected key")
    if len(fields) > 1 and not all(
        isinstance(k, tuple) and len(k) == len(fields) for k in expected
    ):
        raise ConfigurationError.for_option(
            "keys", keys, f"must be tuples of {len(fields)} values, one per field"
        )
    return _ExpectKeys(tuple(fields), expected)
