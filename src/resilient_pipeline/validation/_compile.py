"""The compiled fast path: one specialised Python function per validator.

Interpreting a rule tree per row costs a call (or several) per rule; a
hand-written checker costs an ``if`` per rule. So the validator writes the
hand-written checker for you: straight-line code with the field lookups, the
exact-type fast checks and the common comparisons inlined, and a call to the
rule object only where a rule cannot be inlined (custom callables,
combinators) or where a check failed (to build the issue).

Safety: no user data is ever written into the generated source. Field names,
bounds, patterns and rule objects are passed into a factory function as
arguments and reach the code as closure variables named ``_b0``, ``_b1``, ...;
the source text holds only those names, local variable names and operators
the rules produced from a fixed set. Issues are built by the same helpers the
reference interpreter uses, so both report the very same issues.
"""

from __future__ import annotations

import functools
import itertools
import linecache
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

from ._combinators import severity_of, unwrap
from ._fields import Field, TypeRule
from ._issues import (
    MISSING,
    Issue,
    accessor,
    missing_issue,
    not_a_row,
    row_rule_issues,
    unknown_field_issues,
    value_issue,
    view,
)
from ._rules import Rule, Severity

__all__ = ["compile_validator"]

_counter = itertools.count()

Spec = tuple[str, "TypeRule | None", tuple[Rule, ...], Field]


class _Source:
    """Collects the generated lines and the objects they refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.bound: list[object] = []

    def bind(self, obj: object) -> str:
        self.bound.append(obj)
        return f"_b{len(self.bound) - 1}"

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)


def _push(issues: list[Issue] | None, issue: Issue) -> list[Issue]:
    if issues is None:
        return [issue]
    issues.append(issue)
    return issues


def _extend(issues: list[Issue] | None, more: list[Issue]) -> list[Issue] | None:
    if not more:
        return issues
    if issues is None:
        return more
    issues += more
    return issues


def _row_failed(
    rule: Rule, names: tuple[str, ...], secrets: frozenset[str], row: Any
) -> list[Issue]:
    return row_rule_issues(rule, view(row, names), secrets)


class _Compiler:
    """Writes the body that checks one ``row`` into local ``iss`` (``None`` or issues)."""

    def __init__(
        self,
        specs: Sequence[Spec],
        rules: Sequence[Rule],
        secrets: frozenset[str],
        unknown: Severity | None,
    ) -> None:
        self.unknown = unknown
        self.src = _Source()
        self.specs = specs
        self.rules = rules
        self.secrets = secrets
        self.names = tuple(spec[0] for spec in specs)
        self.needed = {f for rule in rules for f in getattr(unwrap(rule), "needs", _fields(rule))}
        bind = self.src.bind
        self.missing, self.push, self.extend = bind(MISSING), bind(_push), bind(_extend)
        self.keys = [bind(name) for name in self.names]

    def body(self, d: int, not_a_row_action: str) -> None:
        add, bind = self.src.add, self.src.bind
        required = [i for i, spec in enumerate(self.specs) if spec[3].required]
        optional = [i for i, spec in enumerate(self.specs) if not spec[3].required]
        add(d, "if row.__class__ is dict:")
        if required:
            # Subscripting is twice as fast as .get(); a missing key takes the slow path.
            add(d + 1, "try:")
            if len(required) == 1:
                add(d + 2, f"v{required[0]} = row[{self.keys[required[0]]}]")
            else:  # one C call fetches them all
                fetch = bind(operator.itemgetter(*(self.names[i] for i in required)))
                add(d + 2, f"{', '.join(f'v{i}' for i in required)} = {fetch}(row)")
            add(d + 1, "except KeyError:")
            for i in required:
                add(d + 2, f"v{i} = row.get({self.keys[i]}, {self.missing})")
        for i in optional:
            add(d + 1, f"v{i} = row.get({self.keys[i]}, {self.missing})")
        add(d, "else:")
        add(d + 1, f"g = {bind(accessor)}(row)")
        add(d + 1, "if g is None:")
        add(d + 2, not_a_row_action)
        for i in range(len(self.specs)):
            add(d + 1, f"v{i} = g({self.keys[i]}, {self.missing})")
        add(d, "iss = None")
        for i, spec in enumerate(self.specs):
            self.field(d, i, spec)
        if self.unknown is not None:
            known = frozenset(self.names)
            check = functools.partial(unknown_field_issues, known=known, severity=self.unknown)
            add(d, f"iss = {self.extend}(iss, {bind(check)}(row))")
        self.row_rules(d)

    def _fail(self, d: int, i: int, issue: str, valid: bool) -> None:
        self.src.add(d, f"iss = {self.push}(iss, {issue})")
        if not valid and self.names[i] in self.needed:
            self.src.add(d, f"ok{i} = False")

    def _ok(self, d: int, i: int) -> None:
        if self.names[i] in self.needed:
            self.src.add(d, f"ok{i} = True")

    def field(self, d: int, i: int, spec: Spec) -> None:
        add, bind = self.src.add, self.src.bind
        name, type_rule, _, field = spec
        v = f"v{i}"
        missing = f"if {v} is None or {v} is {self.missing}:"
        if type_rule is not None:
            # The common case first: an exact type match skips the None and type checks.
            add(d, f"if {type_rule._passes(v, bind)}:")
            self.value_rules(d + 1, i, spec)
            missing = "el" + missing
        add(d, missing)
        if field.required:
            issue = bind(functools.partial(missing_issue, name, field.severity))
            self._fail(d + 1, i, f"{issue}({v})", valid=False)
        elif name in self.needed:
            add(d + 1, f"ok{i} = False")
        else:
            add(d + 1, "pass")
        if type_rule is not None:
            fail = functools.partial(value_issue, name, type_rule, field.severity, field.secret)
            add(d, f"elif (m := {bind(type_rule)}({v})) is not None:")
            # Even a warning: later rules cannot trust a mistyped value.
            self._fail(d + 1, i, f"{bind(fail)}({v}, m)", valid=False)
        add(d, "else:")
        self.value_rules(d + 1, i, spec)

    def value_rules(self, d: int, i: int, spec: Spec) -> None:
        add, bind = self.src.add, self.src.bind
        name, type_rule, rules, field = spec
        v = f"v{i}"
        self._ok(d, i)
        if not rules and name not in self.needed:
            add(d, "pass")
        kind = None if type_rule is None else type_rule.kind
        for rule in rules:
            severity = "warning" if severity_of(rule) == "warning" else field.severity
            fail = bind(functools.partial(value_issue, name, rule, severity, field.secret))
            inline = getattr(unwrap(rule), "_inline", None)
            expression = inline(v, bind, kind) if inline is not None else None
            if expression is not None:
                add(d, f"if {expression}:")
                self._fail(d + 1, i, f"{fail}({v}, None)", valid=severity == "warning")
            else:
                add(d, f"if (m := {bind(rule)}({v})) is not None:")
                self._fail(d + 1, i, f"{fail}({v}, m)", valid=severity == "warning")

    def row_rules(self, d: int) -> None:
        add, bind = self.src.add, self.src.bind
        var = {name: f"v{i}" for i, name in enumerate(self.names)}
        oks = {name: f"ok{i}" for i, name in enumerate(self.names)}
        kinds = {spec[0]: (None if spec[1] is None else spec[1].kind) for spec in self.specs}
        for rule in self.rules:
            needs = getattr(unwrap(rule), "needs", _fields(rule))
            guard = " and ".join(oks[f] for f in needs) or "True"
            expression = _failure_expression(rule, var, kinds, bind)
            if expression is not None:  # inlined: the rule itself runs only to word the issue
                guard = f"{guard} and ({expression})"
            run = functools.partial(_row_failed, rule, self.names, self.secrets)
            add(d, f"if {guard}:")
            add(d + 1, f"iss = {self.extend}(iss, {bind(run)}(row))")


def _fields(rule: Rule) -> tuple[str, ...]:
    return tuple(getattr(unwrap(rule), "fields", ()))


def _failure_expression(
    rule: Rule, var: dict[str, str], kinds: dict[str, type | None], bind: Callable[[object], str]
) -> str | None:
    inner = unwrap(rule)
    fails = getattr(inner, "_fails", None)
    if fails is not None:
        result: str | None = fails(var, kinds, bind)
        return result
    holds = getattr(inner, "_holds", None)
    if holds is not None:
        expression = holds(var, kinds, bind)
        return None if expression is None else f"not ({expression})"
    return None


Validate: TypeAlias = Callable[[Any], "list[Issue] | None"]
PartitionRows: TypeAlias = Callable[
    [Iterable[Any]], "tuple[list[Any], list[tuple[int, Any, list[Issue]]]]"
]


def compile_validator(
    specs: Sequence[Spec],
    rules: Sequence[Rule],
    secrets: frozenset[str],
    unknown: Severity | None = None,
) -> tuple[Validate, PartitionRows, str]:
    """Generate and compile ``validate(row)`` and ``partition(rows)``; also return the source.

    ``validate`` returns ``None`` for a row without issues (no list to build
    for the common case). ``partition`` returns the rows without issues and
    ``(index, row, issues)`` for the others, warnings-only rows included.
    """
    compiler = _Compiler(specs, rules, secrets, unknown)
    src = compiler.src
    not_a_row_issues = src.bind(not_a_row)
    src.add(0, "def _validate(row):")
    compiler.body(1, f"return {not_a_row_issues}(row)")
    src.add(1, "return iss")
    src.add(0, "def _partition(rows):")
    src.add(1, "valid = []")
    src.add(1, "bad = []")
    src.add(1, "keep = valid.append")
    src.add(1, "for index, row in enumerate(rows):")
    compiler.body(2, f"bad.append((index, row, {not_a_row_issues}(row))); continue")
    src.add(2, "if iss is None:")
    src.add(3, "keep(row)")
    src.add(2, "else:")
    src.add(3, "bad.append((index, row, iss))")
    src.add(1, "return valid, bad")

    params = ", ".join(f"_b{i}" for i in range(len(src.bound)))
    # In the batch loop, bound objects become default arguments: fast local
    # loads, paid once per batch (per row, in _validate, closures are cheaper).
    defaults = ", ".join(f"_b{i}=_b{i}" for i in range(len(src.bound)))
    lines = [
        f"def _partition(rows, {defaults}):" if line == "def _partition(rows):" else line
        for line in src.lines
    ]
    body = "\n".join("    " + line for line in lines)
    text = f"def _factory({params}):\n{body}\n    return _validate, _partition\n"
    filename = f"<resilient_pipeline validator {next(_counter)}>"
    # Registered so tracebacks through the generated code show its lines.
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(text, filename, "exec"), namespace)  # noqa: S102 -- fixed fragments only
    validate, partition = namespace["_factory"](*src.bound)
    return validate, partition, text
