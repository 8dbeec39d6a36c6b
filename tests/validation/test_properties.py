"""Properties over random rule sets and random rows: compiled == reference, nothing is lost."""

from __future__ import annotations

import math
import types
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_pipeline import Field, Validator
from resilient_pipeline.validation import Issue
from resilient_pipeline.validation.rules import (
    all_of,
    any_of,
    between,
    compare,
    ge,
    gt,
    implies,
    le,
    length,
    lt,
    matches,
    one_of,
    optional,
    predicate,
    required_if,
    warning,
    when,
    where,
)

NAMES = ("a", "b", "c", "d", "e")
NUMBER_TYPES = (int, float, Decimal)

numbers = st.one_of(
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.decimals(-5, 5, allow_nan=False, allow_infinity=False, places=1),
)
# Everything a field can meet in the wild: right and wrong types, NaN/inf, bools, text numbers.
values = st.one_of(
    numbers,
    st.sampled_from([math.nan, math.inf, -math.inf, Decimal("NaN"), Decimal("-Infinity")]),
    st.booleans(),
    st.none(),
    st.text("ab1", max_size=3),
    st.sampled_from(["3", "-1", "", "abc"]),
    st.lists(st.integers(0, 3), max_size=3),
)


def _number_rules() -> st.SearchStrategy[Any]:
    bound = st.integers(-3, 3)
    simple = st.one_of(
        bound.map(ge),
        bound.map(gt),
        bound.map(le),
        bound.map(lt),
        st.tuples(bound, bound).map(sorted).map(lambda b: between(*b)),
        st.just(predicate(lambda v: v != 2, "must not be 2")),
    )
    return st.one_of(
        simple,
        simple.map(warning),
        st.tuples(simple, simple).map(lambda r: all_of(*r)),
        st.tuples(simple, simple).map(lambda r: any_of(*r)),
        st.tuples(simple, simple).map(lambda r: when(*r)),
        simple.map(optional),
    )


def _text_rules() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(0, 2).map(lambda n: length(min=n)),
        st.integers(0, 2).map(lambda n: length(max=n)),
        st.sampled_from(["a+", "[ab]*", "1?"]).map(matches),
        st.just(one_of("a", "ab", "b1")),
        st.just(warning(one_of("a"))),
    )


@st.composite
def validators(draw: st.DrawFn) -> Validator:
    """A random validator: typed or untyped fields, value rules, cross-field rules."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    fields = {}
    kinds: dict[str, type | None] = {}
    for name in names:
        kind = draw(st.sampled_from([*NUMBER_TYPES, str, None]))
        kinds[name] = kind
        rule_strategy = _text_rules() if kind is str else _number_rules()
        rules = draw(st.lists(rule_strategy, max_size=3)) if kind is not None else []
        fields[name] = Field(
            kind,
            *rules,
            required=draw(st.booleans()),
            secret=draw(st.booleans()),
            severity=draw(st.sampled_from(["error", "error", "warning"])),
        )
    numeric = [n for n in names if kinds[n] in NUMBER_TYPES]
    row_rules: list[Any] = []
    if numeric:
        pick = st.sampled_from(numeric)
        op = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
        condition = st.one_of(
            st.builds(where, pick, op, st.integers(-2, 2)),
            st.builds(compare, pick, op, pick),
        )
        simple = st.one_of(
            condition,
            st.builds(implies, condition, condition),
            st.builds(required_if, st.sampled_from(names), condition),
            st.just(lambda row: "odd row" if len(row) == 3 else None),
        )
        row_rules = draw(
            st.lists(
                st.one_of(
                    simple,
                    simple.map(warning),
                    st.builds(all_of, simple, simple),
                    st.builds(any_of, simple, simple),
                    st.builds(when, condition, simple),
                ),
                max_size=3,
            )
        )
    unknown = draw(st.sampled_from(["ignore", "ignore", "warning", "error"]))
    return Validator(fields=fields, rules=row_rules, unknown_fields=unknown)


@st.composite
def rows(draw: st.DrawFn) -> Any:
    """A dict row with any subset of fields (plus an unknown one), or sometimes not a row."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from([None, 3, "row", [1, 2]]))
    present = draw(st.lists(st.sampled_from((*NAMES, "zz")), unique=True))
    row = {name: draw(values) for name in present}
    shape = draw(st.sampled_from(["dict", "dict", "object", "mapping"]))
    if shape == "object":
        return types.SimpleNamespace(**row)
    return types.MappingProxyType(row) if shape == "mapping" else row


def key(issues: list[Issue] | tuple[Issue, ...]) -> list[tuple[object, ...]]:
    """Issues made comparable although NaN != NaN."""
    return [(i.field, i.rule, i.message, repr(i.value), i.severity) for i in issues]


@settings(max_examples=150)
@given(validators(), st.lists(rows(), max_size=8))
def test_compiled_and_reference_evaluation_agree(validator: Validator, batch: list[Any]) -> None:
    """The generated function reports exactly the issues the reference interpreter does."""
    for row in batch:
        assert key(validator._interpret(row)) == key(validator.issues(row))


@settings(max_examples=100)
@given(validators(), st.lists(rows(), max_size=12))
def test_partition_conserves_rows(validator: Validator, batch: list[Any]) -> None:
    """valid + quarantined == input, in order; valid rows are exactly those without errors."""
    result = validator.partition(batch)
    assert len(batch) == len(result.valid) + len(result.quarantined)
    indexes = {q.index for q in result.quarantined}
    assert [row for i, row in enumerate(batch) if i not in indexes] == list(result.valid)
    for q in result.quarantined:
        assert batch[q.index] is q.row
        assert any(i.severity == "error" for i in q.issues)
    for i in set(range(len(batch))) - indexes:
        assert validator.validate(batch[i]).valid


def _oracle_problem_count(validator: Validator, row: dict[str, Any]) -> int:
    """Count failing checks by applying each rule directly (no validator machinery)."""
    failures = 0
    sound: dict[str, bool] = {}
    for name, spec in validator.fields.items():
        value = row.get(name)
        if value is None:
            failures += spec.required
            sound[name] = False
            continue
        type_rule, rules = spec.checked(name)
        if type_rule is not None and type_rule(value) is not None:
            failures += 1
            sound[name] = False
            continue
        problems = [rule for rule in rules if rule(value) is not None]
        failures += len(problems)
        sound[name] = not problems or (
            spec.severity == "warning" or all(repr(r).startswith("warning(") for r in problems)
        )
    if validator.unknown_fields != "ignore":
        failures += len(set(row) - set(validator.fields))
    for rule in validator.rules:
        inner = rule.rule if repr(rule).startswith("warning(") else rule  # type: ignore[attr-defined]
        needs = getattr(inner, "needs", getattr(inner, "fields", ()))
        if all(sound[n] for n in needs) and rule(row) is not None:
            failures += 1
    return failures


@settings(max_examples=100)
@given(validators(), rows().filter(lambda r: type(r) is dict))
def test_a_row_has_no_issue_iff_no_rule_reports_one(validator: Validator, row: Any) -> None:
    """Issue count equals the number of rules that, applied by hand, report a problem."""
    assert _oracle_problem_count(validator, row) == len(validator.issues(row))
