"""Checked by ``mypy --strict``: validation keeps the row's type through check and partition."""

from __future__ import annotations

from decimal import Decimal

import attrs
from typing_extensions import assert_type

from resilient_pipeline import Field, Validator
from resilient_pipeline.validation import PartitionResult, ValidationReport
from resilient_pipeline.validation.rules import compare, ge, non_negative


@attrs.define
class Kpi:
    clicks: int
    impressions: int
    spend: Decimal


validator = Validator(
    fields={"clicks": Field(int, ge(0)), "impressions": Field(int), "spend": Field(Decimal)},
    rules=[compare("clicks", "<=", "impressions")],
)
from_class = Validator.from_class(Kpi, field_rules={"spend": [non_negative()]})


def check_types(row: Kpi, rows: list[dict[str, int]]) -> None:
    assert_type(validator.check(row), Kpi)
    assert_type(validator.partition(rows), PartitionResult[dict[str, int]])
    assert_type(validator.partition(rows).valid, tuple[dict[str, int], ...])
    assert_type(from_class.validate(row), ValidationReport)
