"""The ``Validator``: declarative rules checked at the door, every issue collected.

A validator is built once from field specs, row rules and batch rules; every
rule is checked then (unknown fields, impossible ranges, uncheckable types
fail with a :class:`~resilient_pipeline.exceptions.ConfigurationError`). It is
then compiled into one specialised function (``_compile.py``); the reference
interpreter here, :meth:`Validator._interpret`, walks the same rules one by one
and the tests hold the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar

import attrs

from resilient_pipeline._core import EventHandler, emit, normalize_handlers
from resilient_pipeline.exceptions import ConfigurationError, ValidationError

from ._combinators import severity_of, unwrap
from ._compile import PartitionRows, Validate, compile_validator
from ._fields import Field, TypeRule, fields_from_class
from ._issues import (
    MISSING,
    Issue,
    PartitionResult,
    Quarantined,
    RowsQuarantined,
    ValidationReport,
    accessor,
    has_errors,
    missing_issue,
    not_a_row,
    row_rule_issues,
    unknown_field_issues,
    value_issue,
    view,
)
from ._rules import Rule

__all__ = ["Validator"]

R = TypeVar("R")
_NO_ISSUES = ValidationReport(())


def _field_specs(fields: object) -> tuple[tuple[str, Field], ...]:
    if not isinstance(fields, Mapping) or not fields:
        raise ConfigurationError.for_option("fields", fields, "must be a non-empty mapping")
    for name, spec in fields.items():
        if not isinstance(name, str) or not name or not name.isprintable():
            raise ConfigurationError.for_option("fields", name, "names must be printable str")
        if not isinstance(spec, Field):
            raise ConfigurationError.for_option(f"fields[{name!r}]", spec, "must be a Field")
    return tuple(fields.items())


def _as_rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    return tuple(rules)


def _checked_rules(option: str, rules: Iterable[object], known: Iterable[str]) -> tuple[Rule, ...]:
    checked = tuple(rules)
    names = set(known)
    for rule in checked:
        if not callable(rule):
            raise ConfigurationError.for_option(option, rule, "must be callable")
        unknown = [f for f in getattr(unwrap(rule), "fields", ()) if f not in names]
        if unknown:
            raise ConfigurationError.for_option(
                option, rule, f"names unknown field(s) {', '.join(map(repr, unknown))}"
            )
    return checked  # type: ignore[return-value]


@attrs.frozen(kw_only=True)
class Validator:
    """Checks rows against declarative rules and reports every issue at once.

    Args:
        fields: Field name → :class:`Field` (type, value rules, required, secret).
        rules: Row rules across fields (:func:`~resilient_pipeline.validation.rules.compare`,
            :func:`~resilient_pipeline.validation.rules.implies`, ...) or plain callables
            ``row -> problem | None``.
        batch_rules: Completeness rules over a whole batch
            (:func:`~resilient_pipeline.validation.rules.expect_keys`, ...).
        unknown_fields: What to do with keys of a mapping row that no field
            declares (schema drift upstream): ``"ignore"`` (the default),
            report them as ``"warning"`` or as ``"error"``.
        name: Names the validator in events.
        on_event: Handlers for this validator's events.

    Rows may be mappings, attrs instances, dataclasses, named tuples or any
    object with attributes. Nothing is converted: a validator only judges.

    Examples:
        >>> from resilient_pipeline.validation.rules import compare, ge
        >>> v = Validator(
        ...     fields={"clicks": Field(int, ge(0)), "impressions": Field(int, ge(0))},
        ...     rules=[compare("clicks", "<=", "impressions")],
        ... )
        >>> for issue in v.validate({"clicks": 9, "impressions": 4}).issues:
        ...     print(issue)
        clicks=9, impressions=4: clicks must be <= impressions [compare]
    """

    fields: Mapping[str, Field]
    rules: tuple[Rule, ...] = attrs.field(default=(), converter=_as_rules)
    batch_rules: tuple[Rule, ...] = attrs.field(default=(), converter=_as_rules)
    unknown_fields: Literal["ignore", "warning", "error"] = "ignore"
    name: str = "validator"
    on_event: tuple[EventHandler, ...] = attrs.field(default=(), converter=normalize_handlers)

    _specs: tuple[tuple[str, TypeRule | None, tuple[Rule, ...], Field], ...] = attrs.field(
        init=False, repr=False, eq=False
    )
    _names: tuple[str, ...] = attrs.field(init=False, repr=False, eq=False)
    _secrets: frozenset[str] = attrs.field(init=False, repr=False, eq=False)
    _run: Validate = attrs.field(init=False, repr=False, eq=False)
    _partition: PartitionRows = attrs.field(init=False, repr=False, eq=False)
    _source: str = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        specs = _field_specs(self.fields)
        names = tuple(name for name, _ in specs)
        _checked_rules("rules", self.rules, names)
        _checked_rules("batch_rules", self.batch_rules, names)
        name: object = self.name
        if not isinstance(name, str) or not name:
            raise ConfigurationError.for_option("name", self.name, "must be a non-empty str")
        checked = tuple((name, *spec.checked(name), spec) for name, spec in specs)
        setattr_ = object.__setattr__
        setattr_(self, "fields", dict(specs))
        setattr_(self, "_specs", checked)
        setattr_(self, "_names", names)
        setattr_(self, "_secrets", frozenset(name for name, spec in specs if spec.secret))
        if self.unknown_fields not in ("ignore", "warning", "error"):
            raise ConfigurationError.for_option(
                "unknown_fields", self.unknown_fields, "must be 'ignore', 'warning' or 'error'"
            )
        unknown = None if self.unknown_fields == "ignore" else self.unknown_fields
        run, partition, source = compile_validator(checked, self.rules, self._secrets, unknown)
        setattr_(self, "_run", run)
        setattr_(self, "_partition", partition)
        setattr_(self, "_source", source)

    def __reduce__(self) -> tuple[Any, ...]:
        # The compiled functions are closures: rebuild them in the receiving process.
        options = {
            "fields": dict(self.fields),
            "rules": self.rules,
            "batch_rules": self.batch_rules,
            "unknown_fields": self.unknown_fields,
            "name": self.name,
            "on_event": self.on_event,
        }
        return (_rebuild, (options,))

    @classmethod
    def from_class(
        cls,
        row_type: type,
        *,
        field_rules: Mapping[str, Iterable[Rule]] | None = None,
        rules: Iterable[Rule] = (),
        batch_rules: Iterable[Rule] = (),
        unknown_fields: Literal["ignore", "warning", "error"] = "ignore",
        name: str | None = None,
        on_event: EventHandler | Iterable[EventHandler] | None = None,
    ) -> Validator:
        """A validator whose fields come from an attrs class, dataclass or TypedDict.

        Types come from the annotations (``X | None`` is optional, ``Literal``
        lists allowed values, ``Annotated[X, rule, ...]`` adds rules);
        ``field_rules`` adds more rules per field.

        Examples:
            >>> import attrs
            >>> from resilient_pipeline.validation.rules import ge
            >>> @attrs.define
            ... class Kpi:
            ...     client: str
            ...     clicks: int
            >>> v = Validator.from_class(Kpi, field_rules={"clicks": [ge(0)]})
            >>> v.validate(Kpi("acme", -2)).valid
            False
        """
        return cls(
            fields=fields_from_class(row_type, field_rules),
            rules=rules,
            batch_rules=batch_rules,
            unknown_fields=unknown_fields,
            name=name or row_type.__name__,
            on_event=on_event,
        )

    # -- one row --------------------------------------------------------------
    def issues(self, row: object) -> list[Issue]:
        """Every issue in ``row`` (errors and warnings), from the compiled function.

        Examples:
            >>> Validator(fields={"n": Field(int)}).issues({"n": "3"})[0].message
            'expected int, got str (text is never converted to a number)'
        """
        return self._run(row) or []

    def validate(self, row: object) -> ValidationReport:
        """Check one row and report every issue found.

        Examples:
            >>> Validator(fields={"n": Field(int)}).validate({"n": 3}).valid
            True
        """
        issues = self._run(row)
        return _NO_ISSUES if issues is None else ValidationReport(tuple(issues))

    def check(self, row: R) -> R:
        """Return ``row`` if it has no errors; raise :class:`ValidationError` listing all.

        Examples:
            >>> v = Validator(fields={"n": Field(int)})
            >>> v.check({"n": 3})
            {'n': 3}
            >>> v.check({})
            Traceback (most recent call last):
            ...
            resilient_pipeline.exceptions.ValidationError: 1 validation issue:
              - n: is required [required]
        """
        issues = self._run(row)
        if issues is not None and has_errors(issues):
            raise ValidationError(issues)
        return row

    # -- batches --------------------------------------------------------------
    def validate_batch(self, rows: Iterable[object]) -> ValidationReport:
        """Run the batch rules (completeness) over ``rows``; rows themselves are not checked.

        Examples:
            >>> from resilient_pipeline.validation.rules import expect_non_empty
            >>> v = Validator(fields={"n": Field(int)}, batch_rules=[expect_non_empty()])
            >>> [i.message for i in v.validate_batch([]).issues]
            ['the batch is empty']
        """
        return ValidationReport(tuple(self._batch_issues(list(rows))))

    def _batch_issues(self, rows: list[Any]) -> list[Issue]:
        if not self.batch_rules:
            return []
        views = [view(row, self._names) if accessor(row) else {} for row in rows]
        found: list[Issue] = []
        for rule in self.batch_rules:
            found += row_rule_issues(rule, views, self._secrets, batch=True)  # type: ignore[arg-type]
        return found

    def partition(self, rows: Iterable[R]) -> PartitionResult[R]:
        """Split ``rows`` into valid and quarantined ones, in one pass; nothing is dropped.

        Rows with only warnings are valid (and listed in ``warnings``). If a
        batch rule reports an error, every row is quarantined with it.

        Examples:
            >>> v = Validator(fields={"n": Field(int)})
            >>> result = v.partition([{"n": 1}, {"n": "x"}, {"n": 2}])
            >>> result.valid, [q.index for q in result.quarantined]
            (({'n': 1}, {'n': 2}), [1])
        """
        batch = rows if isinstance(rows, list) else list(rows)
        valid, flagged = self._partition(batch)
        bad: list[Quarantined[R]] = []
        warned: list[Quarantined[R]] = []
        for index, row, issues in flagged:
            if has_errors(issues):
                bad.append(Quarantined(row, tuple(issues), index))
            else:
                warned.append(Quarantined(row, tuple(issues), index))
        if warned:  # valid too: put them back in input order
            rejected = {q.index for q in bad}
            valid = [row for index, row in enumerate(batch) if index not in rejected]
        batch_issues = self._batch_issues(batch)
        if has_errors(batch_issues):
            extra = tuple(batch_issues)
            previous = {q.index: q.issues for q in (*bad, *warned)}
            bad = [
                Quarantined(row, previous.get(index, ()) + extra, index)
                for index, row in enumerate(batch)
            ]
            valid, warned = [], []
        if bad:
            emit(
                RowsQuarantined(
                    source=self.name,
                    rows=len(batch),
                    quarantined=len(bad),
                    issues=sum(len(q.issues) for q in (*bad, *warned)),
                    batch_issues=len(batch_issues),
                ),
                self.on_event,
            )
        return PartitionResult(tuple(valid), tuple(bad), tuple(warned), tuple(batch_issues))

    # -- the reference ----------------------------------------------------------
    def _interpret(self, row: object) -> list[Issue]:
        """The reference evaluator: walks the rules one by one (tests compare it)."""
        get = accessor(row)
        if get is None:
            return not_a_row(row)
        issues: list[Issue] = []
        ok: dict[str, bool] = {}
        for name, type_rule, rules, spec in self._specs:
            value = get(name, MISSING)
            if value is MISSING or value is None:
                ok[name] = False
                if spec.required:
                    issues.append(missing_issue(name, spec.severity, value))
                continue
            good = True
            checks: tuple[Rule, ...] = rules if type_rule is None else (type_rule, *rules)
            for rule in checks:
                problem = rule(value)
                if problem is None:
                    continue
                severity = "warning" if severity_of(rule) == "warning" else spec.severity
                issues.append(value_issue(name, rule, severity, spec.secret, value, problem))
                # A mistyped value cannot be trusted by cross-field rules, even as a warning.
                good = good and severity == "warning" and rule is not type_rule
                if rule is type_rule:
                    break
            ok[name] = good
        if self.unknown_fields != "ignore":
            issues += unknown_field_issues(row, frozenset(self._names), self.unknown_fields)
        mapping = view(row, self._names)
        for rule in self.rules:
            inner = unwrap(rule)
            needs = getattr(inner, "needs", getattr(inner, "fields", ()))
            if all(ok[f] for f in needs):
                issues += row_rule_issues(rule, mapping, self._secrets)
        return issues


def _rebuild(options: dict[str, Any]) -> Validator:
    return Validator(**options)
