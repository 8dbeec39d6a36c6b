"""Combinators over rules: ``all_of``, ``any_of``, ``optional``, ``when`` and ``warning``.

They work on value rules and on row rules alike: a combinator only calls the
rules it holds and combines their answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import attrs

from resilient_pipeline.exceptions import ConfigurationError

from ._rules import Rule, Severity, _check_callable, rule_name

__all__ = ["all_of", "any_of", "optional", "severity_of", "unwrap", "warning", "when"]


def _rules(option: str, rules: Iterable[object]) -> tuple[Rule, ...]:
    checked = tuple(rules)
    if not checked:
        raise ConfigurationError.for_option(option, checked, "give at least one rule")
    for rule in checked:
        _check_callable(option, rule)
    return checked  # type: ignore[return-value]


def fields_of(*rules: object) -> tuple[str, ...]:
    """The row fields ``rules`` read, in order, once each (so combined row rules are checked
    against the validator's fields, and skipped when one of them failed)."""
    names: list[str] = []
    for rule in rules:
        names += [f for f in getattr(rule, "fields", ()) if f not in names]
    return tuple(names)


def needs_of(*rules: object) -> tuple[str, ...]:
    """The fields that must be valid before ``rules`` can run (``required_if`` needs
    only its condition's fields: the required one may be missing)."""
    names: list[str] = []
    for rule in rules:
        needed = getattr(rule, "needs", getattr(rule, "fields", ()))
        names += [f for f in needed if f not in names]
    return tuple(names)


class _Combined:
    """A combinator reads the row fields of the rules it holds (none, for value rules)."""

    __slots__ = ()

    def _parts(self) -> tuple[object, ...]:
        raise NotImplementedError

    @property
    def fields(self) -> tuple[str, ...]:
        """Row fields the held rules read."""
        return fields_of(*self._parts())

    @property
    def needs(self) -> tuple[str, ...]:
        """Row fields that must be valid before the held rules can run."""
        return needs_of(*self._parts())


@attrs.frozen(repr=False)
class _AllOf(_Combined):
    rules: tuple[Rule, ...]
    name: ClassVar[str] = "all_of"

    def _parts(self) -> tuple[object, ...]:
        return self.rules

    def __call__(self, value: object) -> str | None:
        problems = [p for rule in self.rules if (p := rule(value)) is not None]
        return "; ".join(problems) if problems else None

    def __repr__(self) -> str:
        return f"all_of({', '.join(map(repr, self.rules))})"


def all_of(*rules: Rule) -> Rule:
    """Every rule must pass; reports every failing rule's problem.

    Examples:
        >>> from resilient_pipeline.validation.rules import ge, le, predicate
        >>> all_of(ge(0), le(10))(11)
        'must be <= 10'
    """
    return _AllOf(_rules("rules", rules))


@attrs.frozen(repr=False)
class _AnyOf(_Combined):
    rules: tuple[Rule, ...]
    name: ClassVar[str] = "any_of"

    def _parts(self) -> tuple[object, ...]:
        return self.rules

    def __call__(self, value: object) -> str | None:
        problems = []
        for rule in self.rules:
            problem = rule(value)
            if problem is None:
                return None
            problems.append(problem)
        return "must satisfy one of: " + " | ".join(problems)

    def __repr__(self) -> str:
        return f"any_of({', '.join(map(repr, self.rules))})"


def any_of(*rules: Rule) -> Rule:
    """At least one rule must pass.

    Examples:
        >>> from resilient_pipeline.validation.rules import ge, le, predicate
        >>> any_of(le(0), ge(10))(5)
        'must satisfy one of: must be <= 0 | must be >= 10'
    """
    return _AnyOf(_rules("rules", rules))


@attrs.frozen(repr=False)
class _Optional(_Combined):
    rule: Rule

    def _parts(self) -> tuple[object, ...]:
        return (self.rule,)

    @property
    def name(self) -> str:
        return rule_name(self.rule)

    def __call__(self, value: object) -> str | None:
        return None if value is None else self.rule(value)

    def __repr__(self) -> str:
        return f"optional({self.rule!r})"


def optional(rule: Rule) -> Rule:
    """``None`` passes; anything else must pass ``rule``.

    Examples:
        >>> from resilient_pipeline.validation.rules import ge, le, predicate
        >>> optional(ge(0))(None), optional(ge(0))(-1)
        (None, 'must be >= 0')
    """
    _check_callable("rule", rule)
    return _Optional(rule)


@attrs.frozen(repr=False)
class _When(_Combined):
    condition: Rule
    rule: Rule

    @property
    def name(self) -> str:
        return rule_name(self.rule)

    def _parts(self) -> tuple[object, ...]:
        return (self.condition, self.rule)

    def __call__(self, value: object) -> str | None:
        if self.condition(value) is not None:
            return None
        return self.rule(value)

    def __repr__(self) -> str:
        return f"when({self.condition!r}, {self.rule!r})"


def when(condition: Rule, rule: Rule) -> Rule:
    """Apply ``rule`` only where ``condition`` holds (reports no problem).

    Works on values and, with row rules such as ``where`` or ``compare``, on rows.

    Examples:
        >>> from resilient_pipeline.validation.rules import ge, le, predicate
        >>> big = when(ge(100), predicate(lambda n: n % 100 == 0, "must be round"))
        >>> big(7), big(150)
        (None, 'must be round')
    """
    _check_callable("condition", condition)
    _check_callable("rule", rule)
    return _When(condition, rule)


@attrs.frozen(repr=False)
class _Warning(_Combined):
    rule: Rule
    severity: ClassVar[Severity] = "warning"

    @property
    def name(self) -> str:
        return rule_name(self.rule)

    def _parts(self) -> tuple[object, ...]:
        return (self.rule,)

    def __call__(self, value: object) -> str | None:
        return self.rule(value)

    def __repr__(self) -> str:
        return f"warning({self.rule!r})"


def warning(rule: Rule) -> Rule:
    """Report ``rule``'s problems as warnings: reported, but the row still passes.

    Examples:
        >>> from resilient_pipeline.validation.rules import ge, le, predicate
        >>> warning(le(0.5))
        warning(le(0.5))
    """
    _check_callable("rule", rule)
    return _Warning(rule)


def severity_of(rule: object) -> Severity:
    """``"warning"`` for rules wrapped in :func:`warning`, else ``"error"``."""
    return "warning" if isinstance(rule, _Warning) else "error"


def unwrap(rule: Rule) -> Rule:
    """The rule inside a :func:`warning` wrapper (for inlining)."""
    return rule.rule if isinstance(rule, _Warning) else rule
