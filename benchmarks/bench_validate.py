"""Validating 100,000 KPI rows: resilient-pipeline's Validator against its peers, in one process.

Rows have 3 key fields and 6 numeric ones, two cross-field rules
(``clicks <= impressions``, ``spend > 0 => impressions > 0``) and 1% invalid rows.
Every contender checks the same rules strictly (no conversion). Run with:

    .venv/bin/python benchmarks/bench_validate.py
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import math
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pydantic

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Goal, ratio_goal, verdicts

from resilient_pipeline import Field, Validator
from resilient_pipeline.validation.rules import compare, implies, matches, non_negative, where

ROWS = 100_000
INVALID = 0.01
REPEAT = 5


def make_rows() -> list[dict[str, Any]]:
    """100,000 KPI rows, 1% of them broken in one of several ways."""
    rng = random.Random(42)
    day = dt.date(2026, 11, 28)
    rows = []
    for i in range(ROWS):
        impressions = rng.randint(1, 100_000)
        row: dict[str, Any] = {
            "client_id": f"client{i % 16:02d}",
            "date": day,
            "campaign_id": f"cmp-{i}",
            "impressions": impressions,
            "clicks": rng.randint(0, impressions),
            "conversions": rng.randint(0, 50),
            "spend": round(rng.uniform(0.01, 500), 2),
            "revenue": round(rng.uniform(0, 900), 2),
            "reach": rng.randint(0, impressions),
        }
        if rng.random() < INVALID:
            kind = rng.randrange(4)
            if kind == 0:
                row["clicks"] = impressions + 1  # clicks > impressions
            elif kind == 1:
                row["impressions"], row["clicks"], row["reach"] = 0, 0, 0  # spend without reach
            elif kind == 2:
                row["spend"] = -1.0
            else:
                row["conversions"] = "7"  # a number posing as text
        rows.append(row)
    return rows


# ---------------------------------------------------------------- ours
validator = Validator(
    fields={
        "client_id": Field(str, matches(r"client\d\d")),
        "date": Field(dt.date),
        "campaign_id": Field(str),
        "impressions": Field(int, non_negative()),
        "clicks": Field(int, non_negative()),
        "conversions": Field(int, non_negative()),
        "spend": Field(float, non_negative()),
        "revenue": Field(float, non_negative()),
        "reach": Field(int, non_negative()),
    },
    rules=[
        compare("clicks", "<=", "impressions"),
        implies(where("spend", ">", 0), where("impressions", ">", 0)),
    ],
)


def ours_partition(rows: list[dict[str, Any]]) -> int:
    return len(validator.partition(rows).quarantined)


def ours_per_row(rows: list[dict[str, Any]]) -> int:
    validate = validator.validate
    return sum(1 for row in rows if not validate(row).valid)


# ---------------------------------------------------------------- pydantic v2
NonNegInt = pydantic.conint(ge=0, strict=True)
NonNegFloat = pydantic.confloat(ge=0, strict=True, allow_inf_nan=False)


class KpiModel(pydantic.BaseModel):
    """Pydantic's default (lax) config; the constrained numbers are strict either way."""

    client_id: pydantic.constr(pattern=r"^client\d\d$")  # type: ignore[valid-type]
    date: dt.date
    campaign_id: str
    impressions: NonNegInt  # type: ignore[valid-type]
    clicks: NonNegInt  # type: ignore[valid-type]
    conversions: NonNegInt  # type: ignore[valid-type]
    spend: NonNegFloat  # type: ignore[valid-type]
    revenue: NonNegFloat  # type: ignore[valid-type]
    reach: NonNegInt  # type: ignore[valid-type]

    @pydantic.model_validator(mode="after")
    def cross_fields(self) -> KpiModel:
        problems = []
        if self.clicks > self.impressions:
            problems.append("clicks must be <= impressions")
        if self.spend > 0 and not self.impressions > 0:
            problems.append("impressions must be > 0 when spend > 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class StrictKpiModel(KpiModel):
    """The same model in strict mode: the same no-conversion rules as the others."""

    model_config = pydantic.ConfigDict(strict=True)


def pydantic_per_row(rows: list[dict[str, Any]], model: type[KpiModel] = KpiModel) -> int:
    bad = 0
    validate = model.model_validate
    for row in rows:
        try:
            validate(row)
        except pydantic.ValidationError:
            bad += 1
    return bad


def pydantic_strict_per_row(rows: list[dict[str, Any]]) -> int:
    return pydantic_per_row(rows, StrictKpiModel)


adapter = pydantic.TypeAdapter(list[StrictKpiModel])


def pydantic_batch(rows: list[dict[str, Any]]) -> int:
    try:
        adapter.validate_python(rows)
    except pydantic.ValidationError as exc:
        return len({e["loc"][0] for e in exc.errors()})
    return 0


# ---------------------------------------------------------------- attrs
_nonneg_int = [attrs.validators.instance_of(int), attrs.validators.ge(0)]
_nonneg_float = [attrs.validators.instance_of(float), attrs.validators.ge(0)]


@attrs.define
class KpiAttrs:
    client_id: str = attrs.field(
        validator=[attrs.validators.instance_of(str), attrs.validators.matches_re(r"client\d\d")]
    )
    date: dt.date = attrs.field(validator=attrs.validators.instance_of(dt.date))
    campaign_id: str = attrs.field(validator=attrs.validators.instance_of(str))
    impressions: int = attrs.field(validator=_nonneg_int)
    clicks: int = attrs.field(validator=_nonneg_int)
    conversions: int = attrs.field(validator=_nonneg_int)
    spend: float = attrs.field(validator=_nonneg_float)
    revenue: float = attrs.field(validator=_nonneg_float)
    reach: int = attrs.field(validator=_nonneg_int)

    def __attrs_post_init__(self) -> None:
        if self.clicks > self.impressions:
            raise ValueError("clicks must be <= impressions")
        if self.spend > 0 and not self.impressions > 0:
            raise ValueError("impressions must be > 0 when spend > 0")


def attrs_per_row(rows: list[dict[str, Any]]) -> int:
    bad = 0
    for row in rows:
        try:
            KpiAttrs(**row)
        except (TypeError, ValueError):
            bad += 1
    return bad


# ---------------------------------------------------------------- by hand
_CLIENT_ID = re.compile(r"client\d\d").fullmatch


def hand_check(row: dict[str, Any]) -> list[str]:
    """What a careful engineer writes by hand for speed: unrolled, strict, every error collected."""
    errors = []
    get = row.get
    client = get("client_id")
    if type(client) is not str or _CLIENT_ID(client) is None:
        errors.append("client_id")
    if type(get("date")) is not dt.date:
        errors.append("date")
    if type(get("campaign_id")) is not str:
        errors.append("campaign_id")
    impressions = get("impressions")
    if type(impressions) is not int or impressions < 0:
        errors.append("impressions")
    clicks = get("clicks")
    if type(clicks) is not int or clicks < 0:
        errors.append("clicks")
    conversions = get("conversions")
    if type(conversions) is not int or conversions < 0:
        errors.append("conversions")
    reach = get("reach")
    if type(reach) is not int or reach < 0:
        errors.append("reach")
    spend = get("spend")
    if type(spend) is not float or not -math.inf < spend < math.inf or spend < 0:
        errors.append("spend")
    revenue = get("revenue")
    if type(revenue) is not float or not -math.inf < revenue < math.inf or revenue < 0:
        errors.append("revenue")
    if not errors:
        if clicks > impressions:
            errors.append("clicks > impressions")
        if spend > 0 and not impressions > 0:
            errors.append("spend without impressions")
    return errors


def hand_written(rows: list[dict[str, Any]]) -> int:
    valid, bad = [], []
    for row in rows:
        errors = hand_check(row)
        if errors:
            bad.append((row, errors))
        else:
            valid.append(row)
    return len(bad)


# ---------------------------------------------------------------- the run
OURS = "resilient-pipeline Validator.partition"
HAND = "hand-written function (all errors)"
PYDANTIC = "pydantic v2 model_validate (per row)"
CONTENDERS: dict[str, Callable[[list[dict[str, Any]]], int]] = {
    OURS: ours_partition,
    "resilient-pipeline Validator.validate (per row)": ours_per_row,
    HAND: hand_written,
    PYDANTIC: pydantic_per_row,
    "pydantic v2 model_validate, strict (per row)": pydantic_strict_per_row,
    "pydantic v2 TypeAdapter(list[Model])": pydantic_batch,
    "attrs validators (per row)": attrs_per_row,
}


def timings(
    contenders: dict[str, Callable[[list[dict[str, Any]]], int]],
    rows: list[dict[str, Any]],
    repeat: int = REPEAT,
) -> dict[str, list[float]]:
    """Seconds of every round; each round runs every contender (order rotating), so a
    busy machine hurts all alike."""
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeat):
        shift = round_ % len(names)
        for label in names[shift:] + names[:shift]:
            gc.collect()
            start = time.perf_counter()
            contenders[label](rows)
            samples[label].append(time.perf_counter() - start)
    return samples


def checked_rows() -> list[dict[str, Any]]:
    """The rows, once every contender was seen to find the same invalid ones."""
    rows = make_rows()
    logging.getLogger("resilient_pipeline").setLevel(logging.ERROR)  # quiet the events
    expected = hand_written(rows)
    for label, fn in CONTENDERS.items():
        found = fn(rows)
        if found != expected:
            raise SystemExit(f"{label} found {found} invalid rows, expected {expected}")
    return rows


def goals_from(samples: dict[str, list[float]]) -> list[Goal]:
    return [
        ratio_goal(
            "validation, 100,000 KPI rows",
            ">= 3x pydantic v2 per row",
            samples,
            ours=OURS,
            peer=PYDANTIC,
            limit=3.0,
            higher_is_better=True,
        ),
        ratio_goal(
            "validation, 100,000 KPI rows",
            ">= 0.7x a hand-written function",
            samples,
            ours=OURS,
            peer=HAND,
            limit=0.7,
            higher_is_better=True,
        ),
    ]


def goals(quick: bool) -> list[Goal]:
    """The validation goals: ours against pydantic per row and a hand-written function."""
    rows = checked_rows()
    wanted = {name: CONTENDERS[name] for name in (OURS, HAND, PYDANTIC)}
    return goals_from(timings(wanted, rows, 3 if quick else REPEAT))


def main() -> None:
    rows = checked_rows()
    samples = timings(CONTENDERS, rows)
    results = {label: statistics.median(values) for label, values in samples.items()}
    print(f"{ROWS:,} KPI rows; median of {REPEAT} interleaved rounds\n")
    ours = results[OURS]
    print(f"| {'contender':<48} | {'rows/s':>10} | {'ns/row':>7} | {'ours is':>8} |")
    print(f"|{'-' * 50}|{'-' * 12}:|{'-' * 8}:|{'-' * 9}:|")
    for label, seconds in results.items():
        print(
            f"| {label:<48} | {ROWS / seconds:>10,.0f} | {seconds / ROWS * 1e9:>7,.0f} |"
            f" {seconds / ours:>7.2f}x |"
        )
    print()
    print(verdicts(goals_from(samples)))


if __name__ == "__main__":
    main()
