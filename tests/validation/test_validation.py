"""The Validator: types, rows of every shape, every issue collected, partition, batches, errors."""

from __future__ import annotations

import dataclasses
import enum
import math
import pickle
import types
import typing
import uuid
from collections import namedtuple
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

import attrs
import pytest
from typing_extensions import NotRequired, TypedDict

from resilient_pipeline import (
    ConfigurationError,
    Field,
    RetryPolicy,
    ValidationError,
    Validator,
    retry_with_backoff,
)
from resilient_pipeline.testing import capture_events
from resilient_pipeline.validation import Issue, RowsQuarantined
from resilient_pipeline.validation.rules import (
    compare,
    expect_keys,
    expect_non_empty,
    ge,
    implies,
    length,
    matches,
    non_negative,
    one_of,
    required_if,
    warning,
    where,
)


class Color(enum.Enum):
    RED = "red"


def kpi_validator(*extra_rules: Any, **options: Any) -> Validator:
    """The KPI validator of the docs: keys, counts, money and the two 'illogical data' rules."""
    return Validator(
        fields={
            "client": Field(str, matches("[a-z]+")),
            "day": Field(date),
            "impressions": Field(int, non_negative()),
            "clicks": Field(int, non_negative()),
            "spend": Field(Decimal, non_negative()),
            "token": Field(str, length(min=8), required=False, secret=True),
        },
        rules=[
            compare("clicks", "<=", "impressions"),
            implies(where("spend", ">", 0), where("impressions", ">", 0)),
            *extra_rules,
        ],
        **options,
    )


GOOD = {
    "client": "acme",
    "day": date(2026, 11, 28),
    "impressions": 100,
    "clicks": 5,
    "spend": Decimal("12.50"),
}


def messages(issues: list[Issue] | tuple[Issue, ...]) -> list[str]:
    """Issues as the one-line strings users see."""
    return [str(issue) for issue in issues]


def test_a_good_row_has_no_issues() -> None:
    """A row that follows every rule is valid, from both evaluators."""
    v = kpi_validator()
    assert (True, ()) == (v.validate(GOOD).valid, v.validate(GOOD).issues)
    assert [] == v._interpret(GOOD)
    assert GOOD is v.check(GOOD)


def test_every_issue_is_collected_not_just_the_first() -> None:
    """Five broken fields give five issues, in field order."""
    row = {
        "client": "ACME",
        "day": datetime(2026, 11, 28, 12),
        "impressions": True,
        "clicks": "5",
        "spend": 1.5,
    }
    assert [
        "client='ACME': must match '[a-z]+' [matches]",
        "day=datetime.datetime(2026, 11, 28, 12, 0): expected date, got datetime [type]",
        "impressions=True: expected int, got bool [type]",
        "clicks='5': expected int, got str (text is never converted to a number) [type]",
        "spend=1.5: expected Decimal, got float (inexact: build it with Decimal(str(x))) [type]",
    ] == messages(kpi_validator().validate(row).issues)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (int, 3, None),
        (int, True, "expected int, got bool"),
        (int, 3.0, "expected int, got float"),
        (int, "3", "expected int, got str (text is never converted to a number)"),
        (float, 3, None),
        (float, 2.5, None),
        (float, math.nan, "must be a finite number (not NaN/inf)"),
        (float, -math.inf, "must be a finite number (not NaN/inf)"),
        (float, Decimal("1"), "expected float, got Decimal"),
        (float, b"1", "expected float, got bytes (text is never converted to a number)"),
        (Decimal, 3, None),
        (Decimal, Decimal("NaN"), "must be a finite number (not NaN/inf)"),
        (Decimal, Decimal("Infinity"), "must be a finite number (not NaN/inf)"),
        (Decimal, "1.5", "expected Decimal, got str (text is never converted to a number)"),
        (bool, 1, "expected bool, got int"),
        (bool, False, None),
        (date, date(2026, 1, 1), None),
        (datetime, date(2026, 1, 1), "expected datetime, got date"),
        (time, time(1), None),
        (uuid.UUID, uuid.UUID(int=1), None),
        (uuid.UUID, str(uuid.UUID(int=1)), "expected UUID, got str"),
        (Color, Color.RED, None),
        (Color, "red", "expected Color, got str"),
        (str, 1, "expected str, got int"),
        (list, (1,), "expected list, got tuple"),
        (dict, {}, None),
    ],
)
def test_types_are_checked_strictly(kind: type, value: object, expected: str | None) -> None:
    """No conversion: bools, text, NaN/inf and near-miss types each get a precise issue."""
    v = Validator(fields={"x": Field(kind)})
    issues = v.issues({"x": value})
    assert expected == (issues[0].message if issues else None)
    assert messages(issues) == messages(v._interpret({"x": value}))


@pytest.mark.parametrize("kind", [set, object, complex, list[int], "int"])
def test_a_type_that_cannot_be_checked_fails_at_construction(kind: object) -> None:
    """Unsupported types are refused when the validator is built."""
    with pytest.raises(ConfigurationError, match=r"fields\['x'\]\.type"):
        Validator(fields={"x": Field(kind)})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"fields": {}}, "fields"),
        ({"fields": {1: Field(int)}}, "fields"),
        ({"fields": {"a\nb": Field(int)}}, "fields"),
        ({"fields": {"a": int}}, "fields['a']"),
        ({"fields": {"a": Field(int, length(min=1))}}, "fields['a'].rules"),
        ({"fields": {"a": Field(int, matches("x"))}}, "fields['a'].rules"),
        ({"fields": {"a": Field(int)}, "rules": [compare("a", "<", "b")]}, "rules"),
        ({"fields": {"a": Field(int)}, "rules": [3]}, "rules"),
        ({"fields": {"a": Field(int)}, "batch_rules": [expect_keys("z", keys={1})]}, "batch_rules"),
        ({"fields": {"a": Field(int)}, "name": ""}, "name"),
        ({"fields": {"a": Field(int)}, "on_event": [3]}, "on_event"),
    ],
)
def test_bad_validator_options_fail_at_construction(options: dict[str, Any], option: str) -> None:
    """Unknown fields in rules, misplaced rules and bad options name the culprit."""
    with pytest.raises(ConfigurationError) as info:
        Validator(**options)
    assert option == info.value.option


@pytest.mark.parametrize(
    ("build", "option"),
    [
        (lambda: Field(int, 3), "rules"),
        (lambda: Field(int, severity="fatal"), "severity"),
        (lambda: Field(int, required="yes"), "required"),
    ],
)
def test_bad_field_options_fail_at_construction(build: Any, option: str) -> None:
    """Field checks its own options."""
    with pytest.raises(ConfigurationError) as info:
        build()
    assert option == info.value.option


@pytest.mark.parametrize("row", [None, 3, "client=acme", [("client", "acme")], {"a"}, b"x"])
def test_things_that_are_not_rows_get_one_precise_issue(row: object) -> None:
    """A non-row is reported, never a crash and never a pass."""
    (issue,) = kpi_validator().issues(row)
    assert ("row", None) == (issue.rule, issue.field)
    assert f"expected a mapping or an object with fields, got {type(row).__name__}" == issue.message


@attrs.define
class KpiAttrs:
    client: str
    day: date
    impressions: int
    clicks: int
    spend: Decimal


@dataclasses.dataclass
class KpiData:
    client: str
    day: date
    impressions: int
    clicks: int
    spend: Decimal


KpiTuple = namedtuple("KpiTuple", list(GOOD))


@pytest.mark.parametrize(
    "make",
    [KpiAttrs, KpiData, KpiTuple, types.SimpleNamespace, lambda **kw: types.MappingProxyType(kw)],
)
def test_rows_of_every_shape(make: Any) -> None:
    """Mappings, attrs instances, dataclasses, named tuples and plain objects all validate."""
    v = kpi_validator()
    assert [] == v.issues(make(**GOOD))
    bad = make(**{**GOOD, "clicks": 500})
    assert ["clicks=500, impressions=100: clicks must be <= impressions [compare]"] == messages(
        v.issues(bad)
    )
    assert messages(v.issues(bad)) == messages(v._interpret(bad))


def test_missing_none_and_optional_fields() -> None:
    """A missing or None required field is reported; an absent optional one skips its rules."""
    v = kpi_validator()
    row = {**GOOD, "client": None}
    del row["day"]
    assert ["client: is required (got None) [required]", "day: is required [required]"] == messages(
        v.issues(row)
    )
    assert [] == v.issues({**GOOD, "token": None})


def test_cross_field_rules_skip_fields_that_already_failed() -> None:
    """One mistake, one issue: a mistyped field does not also trip the comparison."""
    assert ["clicks='x': expected int, got str (text is never converted to a number) [type]"] == (
        messages(kpi_validator().issues({**GOOD, "clicks": "x"}))
    )


def test_the_illogical_data_rules() -> None:
    """clicks > impressions and spend without impressions are both caught, with values."""
    row = {**GOOD, "impressions": 0, "clicks": 3}
    assert [
        "clicks=3, impressions=0: clicks must be <= impressions [compare]",
        "spend=Decimal('12.50'), impressions=0: impressions must be > 0 when spend > 0 [implies]",
    ] == messages(kpi_validator().issues(row))


def test_conditional_requirement() -> None:
    """required_if reports the missing field and the condition that requires it."""
    v = Validator(
        fields={"spend": Field(float), "currency": Field(str, required=False)},
        rules=[required_if("currency", where("spend", ">", 0))],
    )
    assert ["spend=3.0: currency is required when spend > 0 [required_if]"] == messages(
        v.issues({"spend": 3.0})
    )
    assert [] == v.issues({"spend": 0.0})


def test_custom_row_rules_may_return_text_issues_or_lists_and_may_raise() -> None:
    """Plain callables are row rules; an exception they raise becomes an issue, not a crash."""

    def weekend(row: Any) -> str | None:
        return "no data on Sundays" if row["day"].weekday() == 6 else None

    def several(row: Any) -> list[object]:
        return ["first", Issue("clicks", "mine", "second", 1, "warning")]

    def broken(row: Any) -> None:
        raise KeyError("currency")

    v = kpi_validator(weekend, several, broken)
    sunday = {**GOOD, "day": date(2026, 11, 29)}
    assert [
        "row: no data on Sundays [weekend]",
        "row: first [several]",
        "clicks=1: second [mine] (warning)",
        "row: raised KeyError: 'currency' [broken]",
    ] == messages(v.issues(sunday))


def test_secret_values_are_masked_everywhere() -> None:
    """A secret field's value never reaches issues, messages or the error."""
    v = kpi_validator(compare("token", "!=", "client"))
    with pytest.raises(ValidationError) as info:
        v.check({**GOOD, "token": "hunter2"})
    assert ["token='***': length must be >= 8 (got 7) [length]"] == messages(info.value.issues)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValidationError) as info:
        v.check({**GOOD, "client": "sesameopen", "token": "sesameopen"})
    assert ["token='***', client='sesameopen': token must be != client [compare]"] == messages(
        info.value.issues
    )


def test_check_raises_a_value_error_listing_every_issue() -> None:
    """ValidationError is a ValueError, carries the issues and survives pickling."""
    with pytest.raises(ValueError, match="2 validation issues") as info:
        kpi_validator().check({**GOOD, "clicks": -1, "spend": Decimal("-2")})
    error = info.value
    assert isinstance(error, ValidationError)
    clone = pickle.loads(pickle.dumps(error))
    assert (str(error), error.issues) == (str(clone), clone.issues)
    assert [
        "  - clicks=-1: must be >= 0 [ge]",
        "  - spend=Decimal('-2'): must be >= 0 [ge]",
    ] == str(error).splitlines()[1:]


def test_validation_errors_are_never_retried() -> None:
    """Validating the same data again gives the same answer, so retrying is pointless."""
    error = ValidationError([Issue("a", "ge", "must be >= 0", -1)])
    assert False is RetryPolicy(retry_on=ValueError).retryable(error)
    calls = []

    @retry_with_backoff(max_attempts=5, base_delay=0)
    def load(row: dict[str, Any]) -> dict[str, Any]:
        calls.append(row)
        return kpi_validator().check(row)

    with pytest.raises(ValidationError):
        load({**GOOD, "clicks": -1})
    assert 1 == len(calls)


def test_warnings_are_reported_but_let_the_row_through() -> None:
    """A warning-severity issue keeps the row valid, in partition too."""
    v = Validator(
        fields={"ctr": Field(float, warning(ge(0.001))), "n": Field(int, severity="warning")},
        rules=[warning(where("ctr", "<", 0.5))],
    )
    row = {"ctr": 0.9, "n": "x"}
    report = v.validate(row)
    assert (True, 2, 0) == (report.valid, len(report.warnings), len(report.errors))
    assert v.check(row) is row
    result = v.partition([{"ctr": 0.1, "n": 1}, row, {"ctr": -1.0, "n": 2}])
    assert ([{"ctr": 0.1, "n": 1}, row, {"ctr": -1.0, "n": 2}], [1, 2]) == (
        list(result.valid),
        [q.index for q in result.warnings],
    )


def test_partition_keeps_every_row_in_order() -> None:
    """valid + quarantined == input, with indexes and issues for the quarantined."""
    rows = [GOOD, {**GOOD, "clicks": -1}, "junk", {**GOOD, "client": "globex"}]
    result = kpi_validator().partition(iter(rows))
    assert (GOOD, {**GOOD, "client": "globex"}) == result.valid
    assert [1, 2] == [q.index for q in result.quarantined]
    assert ["ge", "row"] == [q.issues[0].rule for q in result.quarantined]
    assert (False, ()) == (result.ok, result.batch_issues)
    valid, quarantined = result
    assert (result.valid, result.quarantined) == (valid, quarantined)


def test_an_incomplete_batch_quarantines_every_row() -> None:
    """Campaigns without conversions: the batch fails as a whole, nothing is saved."""
    v = Validator(
        fields={"kind": Field(str, one_of("campaign", "conversion")), "n": Field(int)},
        batch_rules=[expect_non_empty(), expect_keys("kind", keys={"campaign", "conversion"})],
    )
    rows = [{"kind": "campaign", "n": 1}, {"kind": "campaign", "n": "x"}]
    result = v.partition(rows)
    assert ((), [0, 1]) == (result.valid, [q.index for q in result.quarantined])
    batch_issue = "missing 1 of 2 expected kind value(s): 'conversion'"
    assert [batch_issue] == [i.message for i in result.batch_issues]
    assert ["expect_keys"] == [i.rule for i in result.quarantined[0].issues]
    assert ["type", "expect_keys"] == [i.rule for i in result.quarantined[1].issues]
    assert [batch_issue] == [i.message for i in v.validate_batch(rows).issues]
    assert ["the batch is empty"] == [i.message for i in v.partition([]).batch_issues][:1]


def test_partition_announces_quarantined_rows() -> None:
    """RowsQuarantined is emitted when a batch has rows set aside, and only then."""
    seen: list[object] = []
    v = kpi_validator(name="kpi", on_event=seen.append)
    with capture_events() as events:
        v.partition([GOOD])
        v.partition([GOOD, {**GOOD, "clicks": -1}])
    assert [
        RowsQuarantined(source="kpi", rows=2, quarantined=1, issues=1, batch_issues=0)
    ] == events
    assert events == seen
    assert "kpi: quarantined 1 of 2 row(s) (1 issue(s))" == events[0].message()


class KpiTyped(TypedDict):
    client: str
    clicks: int
    note: NotRequired[str]


@attrs.define
class KpiHinted:
    client: Annotated[str, matches("[a-z]+")]
    currency: Literal["EUR", "USD"]
    clicks: int | None
    extra: Any = None


def test_fields_derived_from_class_definitions() -> None:
    """Types, optionality, Literal and Annotated rules come from the class; more can be added."""
    v = Validator.from_class(KpiHinted, field_rules={"clicks": [ge(0)]})
    assert "KpiHinted" == v.name
    assert [] == v.issues(KpiHinted("acme", "EUR", None))
    assert ["matches", "one_of", "ge"] == [i.rule for i in v.issues(KpiHinted("A", "GBP", -1))]
    typed = Validator.from_class(KpiTyped)
    assert (True, False) == (typed.fields["clicks"].required, typed.fields["note"].required)
    assert ["clicks"] == [i.field for i in typed.issues({"client": "a"})]


@pytest.mark.parametrize(
    ("cls", "field_rules"),
    [(int, None), (KpiData, {"nope": [ge(0)]})],
)
def test_from_class_refuses_what_it_cannot_read(cls: type, field_rules: Any) -> None:
    """Only attrs classes, dataclasses and TypedDicts; field_rules must name real fields."""
    with pytest.raises(ConfigurationError):
        Validator.from_class(cls, field_rules=field_rules)


def test_from_class_refuses_unions() -> None:
    """A union other than `X | None` cannot be checked and says so."""

    @dataclasses.dataclass
    class Row:
        value: int | str

    with pytest.raises(ConfigurationError, match="unions"):
        Validator.from_class(Row)


def test_generated_source_never_contains_user_data() -> None:
    """Field names and bounds reach the compiled code as bound objects, never as text."""
    hostile = "x'] or __import__('os').system('echo pwned') or row['"
    v = Validator(
        fields={hostile: Field(int, ge(12345)), "y": Field(str, one_of("zzz-secret"))},
        rules=[where(hostile, ">", 99999)],
    )
    assert "__import__" not in v._source
    assert "12345" not in v._source
    assert "zzz-secret" not in v._source
    assert ["ge"] == [i.rule for i in v.issues({hostile: 5, "y": "zzz-secret"})]
    assert ["where"] == [i.rule for i in v.issues({hostile: 20000, "y": "zzz-secret"})]


def test_repr_and_equality_of_validators() -> None:
    """The validator's repr shows its rules, not the generated internals."""
    v = Validator(fields={"a": Field(int)}, name="kpi")
    assert "_source" not in repr(v)
    assert repr(v).startswith("Validator(fields={'a': Field(type=<class 'int'>")


@pytest.mark.parametrize(
    "cls",
    [Validator, Field, Issue, RowsQuarantined, ValidationError],
)
def test_type_hints_resolve_on_public_classes(cls: type) -> None:
    """typing.get_type_hints works on every public validation class (no dangling names)."""
    assert isinstance(typing.get_type_hints(cls), dict)


def test_validators_pickle_for_worker_processes() -> None:
    """A validator crosses process boundaries: it is rebuilt and compiled again."""
    clone = pickle.loads(pickle.dumps(kpi_validator(name="kpi")))
    assert kpi_validator(name="kpi") == clone
    assert messages(kpi_validator().issues({**GOOD, "clicks": -1})) == messages(
        clone.issues({**GOOD, "clicks": -1})
    )


def test_undeclared_keys_can_be_reported() -> None:
    """unknown_fields flags schema drift in mapping rows, without showing the value."""
    row = {**GOOD, "cpc": 0.4, "password": "hunter2"}
    assert [] == kpi_validator().issues(row)
    warn = kpi_validator(unknown_fields="warning")
    assert [
        "cpc: is not a declared field [unknown_field] (warning)",
        "password: is not a declared field [unknown_field] (warning)",
    ] == messages(warn.issues(row))
    assert warn.validate(row).valid
    strict = kpi_validator(unknown_fields="error")
    assert (False, True) == (strict.validate(row).valid, strict.validate(GOOD).valid)
    assert [] == strict.issues(KpiData(**GOOD))
    assert messages(strict.issues(row)) == messages(strict._interpret(row))
    with pytest.raises(ConfigurationError) as info:
        kpi_validator(unknown_fields="forbid")
    assert "unknown_fields" == info.value.option


def test_batch_issues_read_well() -> None:
    """Batch issues name the field they are about, or the batch."""
    v = Validator(
        fields={"kind": Field(str)},
        batch_rules=[expect_non_empty(), expect_keys("kind", keys={"a", "b"})],
    )
    assert [
        "batch: the batch is empty [expect_non_empty]",
        "kind: missing 2 of 2 expected kind value(s): 'a', 'b' [expect_keys]",
    ] == messages(v.validate_batch([]).issues)
