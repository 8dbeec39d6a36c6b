"""Value, row and batch rules: what each accepts, what it says, and what it refuses to build."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import pytest

from resilient_pipeline import ConfigurationError
from resilient_pipeline.validation.rules import (
    all_of,
    any_of,
    between,
    compare,
    expect_keys,
    expect_non_empty,
    ge,
    gt,
    implies,
    le,
    length,
    lt,
    matches,
    non_negative,
    one_of,
    optional,
    positive,
    predicate,
    required_if,
    warning,
    when,
    where,
)


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        (ge(0), 0, None),
        (ge(0), -1, "must be >= 0"),
        (gt(0), 0, "must be > 0"),
        (gt(0), 0.001, None),
        (le(10), 10, None),
        (le(10), 11, "must be <= 10"),
        (lt(10), 10, "must be < 10"),
        (non_negative(), Decimal("-0.01"), "must be >= 0"),
        (positive(), 0, "must be > 0"),
        (between(0, 1), 1, None),
        (between(0, 1), 1.5, "must be between 0 and 1"),
        (ge(0), math.nan, "must be >= 0"),
        (ge(0), "a", "must be >= 0, and a str is not comparable"),
        (length(min=1), "", "length must be >= 1 (got 0)"),
        (length(max=2), [1, 2, 3], "length must be <= 2 (got 3)"),
        (length(min=1, max=2), "ab", None),
        (length(min=1), 5, "must have a length, and a int has none"),
        (matches("[a-z]+"), "abc", None),
        (matches("[a-z]+"), "abc1", "must match '[a-z]+'"),
        (matches("[a-z]+"), 3, "must be a str matching '[a-z]+', not a int"),
        (one_of("EUR", "USD"), "EUR", None),
        (one_of("EUR", "USD"), "GBP", "must be one of 'EUR', 'USD'"),
        (one_of(0, 1), True, "must be one of 0, 1"),
        (one_of([1], [2]), [2], None),
        (one_of("a"), ["unhashable"], "must be one of 'a'"),
    ],
)
def test_value_rule_messages(rule: object, value: object, expected: str | None) -> None:
    """Each value rule passes what it should and words its problem precisely."""
    assert expected == rule(value)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (ge(0), "ge(0)"),
        (between(1, 2), "between(1, 2)"),
        (length(min=1, max=3), "length(min=1, max=3)"),
        (matches("x+"), "matches('x+')"),
        (one_of("b", "a"), "one_of('a', 'b')"),
        (optional(le(1)), "optional(le(1))"),
        (all_of(ge(0), le(1)), "all_of(ge(0), le(1))"),
        (any_of(ge(0), le(1)), "any_of(ge(0), le(1))"),
        (when(ge(0), le(1)), "when(ge(0), le(1))"),
        (warning(le(1)), "warning(le(1))"),
        (compare("a", "<", "b"), "compare('a', '<', 'b')"),
        (where("a", "==", 1), "where('a', '==', 1)"),
        (
            implies(where("a", ">", 0), where("b", ">", 0)),
            "implies(where('a', '>', 0), where('b', '>', 0))",
        ),
        (required_if("c", where("a", ">", 0)), "required_if('c', where('a', '>', 0))"),
        (expect_non_empty(), "expect_non_empty()"),
        (expect_keys("a", keys={1, 2}), "expect_keys('a', keys=<2 keys>)"),
    ],
)
def test_rules_have_readable_reprs(rule: object, expected: str) -> None:
    """Every factory returns a callable whose repr reads like the call that built it."""
    assert expected == repr(rule)


def test_rules_are_frozen_values() -> None:
    """Rules are immutable and compare by value, like attrs validators."""
    assert ge(1) == ge(1)
    with pytest.raises(AttributeError):
        ge(1).bound = 2  # type: ignore[attr-defined]


def test_combinators() -> None:
    """all_of reports every failure, any_of needs one pass, optional lets None through."""
    assert "must be >= 5; must be <= 1" == all_of(ge(5), le(1))(3)
    assert None is any_of(le(0), ge(10))(11)
    assert "must satisfy one of: must be <= 0 | must be >= 10" == any_of(le(0), ge(10))(5)
    assert None is optional(ge(0))(None)
    assert "must be >= 0" == optional(ge(0))(-1)


def test_when_applies_the_rule_only_where_the_condition_holds() -> None:
    """when(cond, rule) is silent wherever cond reports a problem."""
    rule = when(ge(100), predicate(lambda n: n % 100 == 0, "must be round"))
    assert (None, None, "must be round") == (rule(7), rule(200), rule(150))


def test_predicate_names_itself_after_the_function() -> None:
    """A predicate's name (used in issues) defaults to the test function's name."""

    def even(n: int) -> bool:
        return n % 2 == 0

    assert "even" == predicate(even, "must be even").name  # type: ignore[attr-defined]


def test_matches_remembers_only_strings_that_matched() -> None:
    """The compiled path's cache holds passing values only, and stays bounded."""
    rule = matches("[a-z]+")
    assert (False, True) == (rule._slow("abc"), rule._slow("ABC"))  # type: ignore[attr-defined]
    assert {"abc"} == rule._seen  # type: ignore[attr-defined]
    for i in range(5000):
        rule._slow("x" * (i % 50 + 1) + "a" * (i // 50))  # type: ignore[attr-defined]
    assert 4096 >= len(rule._seen)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("build", "option"),
    [
        (lambda: between(5, 1), "low"),
        (lambda: between(1, "a"), "low"),
        (lambda: ge(math.nan), "bound"),
        (lambda: ge(None), "bound"),
        (length, "max"),
        (lambda: length(min=3, max=1), "min"),
        (lambda: length(min=-1), "min"),
        (lambda: length(min=True), "min"),
        (lambda: matches("("), "pattern"),
        (lambda: matches(re.compile(b"x")), "pattern"),
        (one_of, "values"),
        (lambda: predicate(lambda v: True, ""), "message"),
        (lambda: predicate("nope", "x"), "test"),  # type: ignore[arg-type]
        (all_of, "rules"),
        (lambda: all_of(ge(0), 3), "rules"),  # type: ignore[arg-type]
        (lambda: optional(3), "rule"),  # type: ignore[arg-type]
        (lambda: when(3, ge(0)), "condition"),  # type: ignore[arg-type]
        (lambda: warning(None), "rule"),  # type: ignore[arg-type]
        (lambda: compare("a", "=>", "b"), "op"),
        (lambda: compare("", "<", "b"), "left"),
        (lambda: where(3, "<", 1), "field"),  # type: ignore[arg-type]
        (lambda: implies(where("a", ">", 0), "b"), "then"),  # type: ignore[arg-type]
        (lambda: required_if("a", None), "condition"),  # type: ignore[arg-type]
        (lambda: expect_keys(keys={1}), "fields"),
        (lambda: expect_keys("a", keys=()), "keys"),
        (lambda: expect_keys("a", keys=[[1]]), "keys"),
        (lambda: expect_keys("a", "b", keys={1}), "keys"),
    ],
)
def test_rules_that_cannot_work_fail_at_construction(build: object, option: str) -> None:
    """An impossible rule raises ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError) as info:
        build()  # type: ignore[operator]
    assert option == info.value.option


def test_row_rules_word_their_problems() -> None:
    """Cross-field rules name the fields involved."""
    row = {"clicks": 9, "impressions": 0, "spend": 5}
    assert "clicks must be <= impressions" == compare("clicks", "<=", "impressions")(row)
    rule = implies(where("spend", ">", 0), where("impressions", ">", 0))
    assert "impressions must be > 0 when spend > 0" == rule(row)
    assert None is rule({"spend": 0, "impressions": 0})
    assert "currency is required when spend > 0" == required_if("currency", where("spend", ">", 0))(
        row
    )
    assert None is required_if("currency", where("spend", ">", 0))({**row, "currency": "EUR"})
    assert "a (str) cannot be compared with b (int)" == compare("a", "<", "b")({"a": "x", "b": 1})


def test_batch_rules() -> None:
    """expect_keys lists the missing keys; expect_non_empty refuses an empty batch."""
    rows = [{"client": "a", "kind": "campaign"}, {"client": "b", "kind": "campaign"}]
    assert "the batch is empty" == expect_non_empty()([])
    assert None is expect_non_empty()(rows)
    kinds = expect_keys("kind", keys={"campaign", "conversion"})
    assert "missing 1 of 2 expected kind value(s): 'conversion'" == kinds(rows)
    pairs = expect_keys("client", "kind", keys={("a", "campaign"), ("c", "campaign")})
    assert "missing 1 of 2 expected client/kind value(s): ('c', 'campaign')" == pairs(rows)
