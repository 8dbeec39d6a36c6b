"""Partition contracts: a unit is written whole or not at all; empty is not missing."""

from __future__ import annotations

import pickle
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import (
    ConfigurationError,
    Field,
    JSONLQuarantine,
    PartitionContract,
    PermanentError,
    SQLQuarantine,
    Validator,
    retry_with_backoff,
)
from resilient_pipeline.exceptions import (
    IncompletePartitionError,
    InvalidPartitionError,
    PartitionContractError,
)
from resilient_pipeline.storage import Store
from resilient_pipeline.testing import FakeClock, capture_events
from resilient_pipeline.validation import (
    CheckedUnit,
    Collection,
    PartitionQuarantined,
    PartitionRejected,
    QuarantineSink,
    UnitReplayResult,
    any_row,
    paired,
    quarantine_unit,
    replay_units,
    unit_of_record,
)
from resilient_pipeline.validation.rules import compare, ge

DAY = date(2026, 11, 28)


def spent(row: Any) -> bool:
    """A campaign that spent something."""
    return bool(row["spend"] > 0)


def converted(row: Any) -> bool:
    """A conversion row with conversions."""
    return bool(row["conversions"] > 0)


CAMPAIGNS = Validator(
    fields={
        "campaign_id": Field(int),
        "spend": Field(Decimal, ge(0)),
        "clicks": Field(int, ge(0)),
        "impressions": Field(int, ge(0)),
    },
    rules=[compare("clicks", "<=", "impressions")],
)
CONVERSIONS = Validator(
    fields={"campaign_id": Field(int), "conversions": Field(int, ge(0)), "day": Field(date)}
)
ADS = PartitionContract(
    name="meta_ads",
    collections={
        "campaigns": Collection(validator=CAMPAIGNS),
        "conversions": Collection(
            validator=CONVERSIONS, empty="allowed", required_when=any_row("campaigns", spent)
        ),
    },
    rules=[
        paired("campaigns", "conversions", on="campaign_id", when=spent),
        paired("conversions", "campaigns", on="campaign_id", when=converted, right_when=spent),
    ],
)


def campaign(cid: int, spend: str = "10.00", clicks: int = 5, impressions: int = 100) -> Any:
    """One campaign row."""
    return {
        "campaign_id": cid,
        "spend": Decimal(spend),
        "clicks": clicks,
        "impressions": impressions,
    }


def conversion(cid: int, conversions: int) -> Any:
    """One conversion row."""
    return {"campaign_id": cid, "conversions": conversions, "day": DAY}


def never(unit: CheckedUnit) -> None:
    """A writer that must not be called."""
    pytest.fail(f"wrote {unit.unit_id}")


def located(unit: CheckedUnit) -> list[tuple[str, int | None, str, str]]:
    """Every issue as (collection, index, rule, kind)."""
    return [(i.collection, i.index, i.issue.rule, i.kind) for i in unit.issues]


# ----------------------------------------------------------------- the incidents
def test_seed_incident_campaigns_without_conversions_is_incomplete_not_success() -> None:
    """HTTP 200 with campaigns and an empty conversion list is incomplete: nothing is written."""
    unit = ADS.check({"campaigns": [campaign(1), campaign(2)], "conversions": []}, unit_id="7")
    assert "incomplete" == unit.verdict
    assert ("conversions",) == unit.empty
    assert ("conversions", None, "required_when", "incomplete") == located(unit)[0]
    with pytest.raises(IncompletePartitionError) as info:
        unit.raise_for_verdict()
    assert not isinstance(info.value, PermanentError)
    assert unit is info.value.unit
    assert "partition '7' is incomplete" in str(info.value)


def test_incomplete_unit_is_retried_until_the_upstream_answers_fully() -> None:
    """A fetch that calls require() is retried on an empty answer and succeeds when it is full."""
    answers = iter([[], [conversion(1, 0)]])

    @retry_with_backoff(max_attempts=3, base_delay=1, jitter=None, clock=FakeClock())
    def fetch() -> CheckedUnit:
        return ADS.require({"campaigns": [campaign(1)], "conversions": next(answers)})

    assert (conversion(1, 0),) == fetch().rows("conversions")


def test_one_broken_row_quarantines_the_whole_unit(tmp_path: Path) -> None:
    """An illogical campaign row makes the whole unit invalid: the conversions are not written."""
    sink = JSONLQuarantine(tmp_path / "q.jsonl")
    unit = ADS.check(
        {
            "campaigns": [campaign(1), campaign(2, clicks=90, impressions=30)],
            "conversions": [conversion(1, 2), conversion(2, 1)],
        },
        unit_id="meta_ads/7/2026-11-28",
    )
    assert "invalid" == unit.verdict
    assert [("campaigns", 1, "compare", "invalid")] == located(unit)
    with pytest.raises(InvalidPartitionError) as info:
        unit.raise_for_verdict()
    assert isinstance(info.value, PermanentError)
    assert "campaigns[1]: clicks=90, impressions=30" in str(info.value)
    record = quarantine_unit(sink, unit, source="meta_ads")
    (stored,) = sink.records()
    assert record == stored
    back = unit_of_record(stored)
    assert back is not None
    assert ("meta_ads/7/2026-11-28", "invalid") == (back.unit_id, back.verdict)
    assert {
        "campaigns": [campaign(1), campaign(2, clicks=90, impressions=30)],
        "conversions": [conversion(1, 2), conversion(2, 1)],
    } == back.collections
    assert ["campaigns[1].clicks, impressions"] == [i.field for i in back.issues]


def test_a_genuine_zero_is_stored() -> None:
    """A day with zero conversions is a row of zeros: complete, and it pairs with the spend."""
    unit = ADS.check({"campaigns": [campaign(1)], "conversions": [conversion(1, 0)]})
    assert ("complete", ()) == (unit.verdict, unit.issues)
    assert unit is unit.raise_for_verdict()


def test_empty_is_an_answer_missing_is_not() -> None:
    """[] is "no rows"; an absent name or None is no answer, even where empty is allowed."""
    idle = [campaign(1, spend="0")]
    empty = ADS.check({"campaigns": idle, "conversions": []})
    absent = ADS.check({"campaigns": idle})
    none = ADS.check({"campaigns": idle, "conversions": None})
    assert "complete" == empty.verdict
    assert ("incomplete", ("conversions",)) == (absent.verdict, absent.missing)
    assert located(absent) == located(none)
    assert () == empty.missing == absent.empty


def test_pairing_is_checked_both_ways() -> None:
    """Spend without a conversion row, and conversions without spend, are each named."""
    unit = ADS.check(
        {
            "campaigns": [campaign(1), campaign(2, spend="0")],
            "conversions": [conversion(2, 3), conversion(3, 0)],
        }
    )
    assert [
        ("campaigns", 0, "paired", "invalid"),
        ("conversions", 0, "paired", "invalid"),
    ] == located(unit)
    assert "campaign_id=1: has no row in 'conversions'" in str(unit.issues[0])


def test_every_problem_is_collected_not_only_the_first() -> None:
    """Several bad rows in both collections are all reported, each with its index and field."""
    unit = ADS.check(
        {
            "campaigns": [campaign(1, spend="-1"), campaign(2), {"campaign_id": "x"}],
            "conversions": [conversion(2, -4), conversion(1, 1)],
            "clicks": [],
        }
    )
    assert [
        ("campaigns", 0, "ge", "invalid"),
        ("campaigns", 2, "type", "invalid"),
        ("campaigns", 2, "required", "invalid"),
        ("campaigns", 2, "required", "invalid"),
        ("campaigns", 2, "required", "invalid"),
        ("conversions", 0, "ge", "invalid"),
        ("clicks", None, "unknown_collection", "invalid"),
        # campaign 2 pairs with its (invalid) conversion row: one problem, reported once;
        # conversions for campaign 1, whose spend is invalid, have no campaign with spend.
        ("conversions", 1, "paired", "invalid"),
    ] == located(unit)


def test_incomplete_wins_over_invalid_and_keeps_every_issue() -> None:
    """A missing collection makes the unit incomplete (retry); the bad rows are still listed."""
    unit = ADS.check({"campaigns": [campaign(1, spend="-1")]})
    assert "incomplete" == unit.verdict
    assert [
        ("conversions", None, "missing", "incomplete"),
        ("campaigns", 0, "ge", "invalid"),
    ] == sorted(located(unit), key=lambda i: i[2] != "missing")


def test_required_when_that_raises_is_an_issue_not_a_crash() -> None:
    """A predicate that fails on odd rows reports an invalid issue for the unit."""
    contract = PartitionContract(
        collections={
            "a": Collection(),
            "b": Collection(empty="allowed", required_when=any_row("a", spent)),
        }
    )
    unit = contract.check({"a": [{"no_spend": 1}], "b": []})
    assert [("b", None, "required_when", "invalid")] == located(unit)
    assert "KeyError" in unit.issues[0].issue.message


def test_without_a_validator_items_must_still_be_rows() -> None:
    """A collection without validator still refuses items that are not rows."""
    unit = PartitionContract(collections={"a": Collection()}).check({"a": [3, {"x": 1}]})
    assert [("a", 0, "row", "invalid")] == located(unit)


def test_secret_key_values_are_masked_in_pairing_issues() -> None:
    """A pairing key declared secret never shows its value."""
    left = Validator(fields={"account": Field(str, secret=True)})
    contract = PartitionContract(
        collections={"a": Collection(validator=left), "b": Collection(empty="allowed")},
        rules=[paired("a", "b", on="account")],
    )
    unit = contract.check({"a": [{"account": "acct-secret-42"}], "b": []})
    assert "acct-secret-42" not in str(unit.issues[0])
    with pytest.raises(InvalidPartitionError) as info:
        unit.raise_for_verdict()
    assert "acct-secret-42" not in str(info.value)


def test_errors_pickle_with_their_context() -> None:
    """Both errors cross process boundaries with unit id, issues and unit."""
    unit = ADS.check({"campaigns": []}, unit_id="u")
    with pytest.raises(PartitionContractError) as info:
        ADS.require({"campaigns": []}, unit_id="u")
    clone = pickle.loads(pickle.dumps(info.value))
    assert (str(info.value), "u", unit) == (str(clone), clone.unit_id, clone.unit)
    assert unit.errors == clone.issues


def test_events_name_the_verdict() -> None:
    """A rejected unit emits PartitionRejected; quarantining it, PartitionQuarantined."""
    with capture_events() as events:
        unit = ADS.check({"campaigns": [campaign(1)], "conversions": []}, unit_id="u1")
        ADS.check({"campaigns": [campaign(1)], "conversions": [conversion(1, 0)]}, unit_id="u2")
        sink = JSONLQuarantine(Path(__file__).parent / "never-written.jsonl")
        with pytest.raises(ConfigurationError):
            quarantine_unit(sink, ADS.check({"campaigns": [], "conversions": []}), source="s")
    rejected = [e for e in events if isinstance(e, PartitionRejected)]
    assert [
        ("u1", "incomplete", 2, (), ("conversions",)),  # empty, and campaign 1 is unpaired
        ("", "incomplete", 1, (), ("campaigns",)),
    ] == [(e.unit, e.verdict, e.issues, e.missing, e.empty) for e in rejected]
    assert unit.verdict == rejected[0].verdict


# ------------------------------------------------------------------ quarantine
def test_unit_quarantined_in_jsonl_keeps_collections_together(tmp_path: Path) -> None:
    """One record per unit in a JSONL file; replayed whole."""
    check_quarantine_and_replay(JSONLQuarantine(tmp_path / "q.jsonl"))


def test_unit_quarantined_in_sql_keeps_collections_together(any_store: Store) -> None:
    """One record per unit in a SQLite or PostgreSQL table; replayed whole."""
    check_quarantine_and_replay(SQLQuarantine(any_store))


def check_quarantine_and_replay(sink: QuarantineSink) -> None:
    """One record per unit, typed values intact; replay_units refetches and writes it whole."""
    partial = {"campaigns": [campaign(1), campaign(2)], "conversions": [conversion(1, 0)]}
    unit = ADS.check(partial, unit_id="meta_ads/7/2026-11-28")
    with capture_events() as events:
        record = quarantine_unit(sink, unit, source="meta_ads")
    (event,) = [e for e in events if isinstance(e, PartitionQuarantined)]
    assert ("meta_ads/7/2026-11-28", "invalid", 3, 1, record.id) == (
        event.unit,
        event.verdict,
        event.rows,
        event.issues,
        record.id,
    )
    back = unit_of_record(sink.records(source="meta_ads")[0])
    assert back is not None
    assert partial == back.collections
    assert ["campaigns[1].campaign_id"] == [i.field for i in back.issues]

    still = replay_units(sink, ADS, never, source="meta_ads")
    assert ((), 1) == (still.replayed, len(still.still_failing))
    assert 1 == len(sink.records())

    full = {**partial, "conversions": [conversion(1, 0), conversion(2, 4)]}
    written: list[CheckedUnit] = []
    result = replay_units(sink, ADS, written.append, refetch=lambda unit_id: full)
    assert [ADS.check(full, unit_id="meta_ads/7/2026-11-28")] == written == list(result.replayed)
    assert [] == sink.records()


@pytest.mark.postgres
def test_concurrent_replay_units_write_each_unit_once(
    postgres_dsn: str, postgres_schema: str
) -> None:
    """Two replays of one PostgreSQL quarantine: the second skips the unit the first holds."""
    from resilient_pipeline.storage import PostgresStore

    stores = [PostgresStore(postgres_dsn, schema=postgres_schema) for _ in range(2)]
    try:
        partial = {"campaigns": [campaign(1)], "conversions": []}
        quarantine_unit(
            SQLQuarantine(stores[0]), ADS.check(partial, unit_id="u/1"), source="meta_ads"
        )
        full = {"campaigns": [campaign(1)], "conversions": [conversion(1, 2)]}
        written: list[str] = []
        second: list[UnitReplayResult] = []

        def refetch_while_another_replays(unit_id: str) -> dict[str, Any]:
            # The first replay holds the unit; the whole second replay runs meanwhile.
            worker = threading.Thread(
                target=lambda: second.append(
                    replay_units(
                        SQLQuarantine(stores[1]),
                        ADS,
                        lambda u: written.append(f"second {u.unit_id}"),
                        refetch=lambda _: full,
                    )
                )
            )
            worker.start()
            worker.join(timeout=30)
            assert not worker.is_alive()
            return full

        first = replay_units(
            SQLQuarantine(stores[0]),
            ADS,
            lambda u: written.append(f"first {u.unit_id}"),
            refetch=refetch_while_another_replays,
        )
        assert ["first u/1"] == written
        assert (1, 0) == (len(first.replayed), len(second[0].replayed))
        assert [] == SQLQuarantine(stores[0]).records()
    finally:
        for store in stores:
            store.close()


def test_replay_units_leaves_single_row_records_alone(tmp_path: Path) -> None:
    """Records written by quarantine() for single rows are not units: replay() owns them."""
    from resilient_pipeline import quarantine

    sink = JSONLQuarantine(tmp_path / "q.jsonl")
    quarantine(sink, CONVERSIONS.partition([conversion(1, -1)]), source="rows")
    result = replay_units(sink, ADS, never)
    assert ((), ()) == (result.replayed, result.still_failing)
    assert 1 == len(sink.records())


# --------------------------------------------------------------------- options
@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: Collection(validator="v"), "validator"),  # type: ignore[arg-type]
        (lambda: Collection(empty="sometimes"), "empty"),  # type: ignore[arg-type]
        (lambda: Collection(required_when=lambda unit: True), "required_when"),
        (lambda: Collection(empty="allowed", required_when=3), "required_when"),  # type: ignore[arg-type]
        (lambda: PartitionContract(collections={}), "collections"),
        (lambda: PartitionContract(collections={"a": 1}), "collections['a']"),
        (lambda: PartitionContract(collections={"a": Collection()}, name=""), "name"),
        (lambda: PartitionContract(collections={"a": Collection()}, rules=[1]), "rules"),  # type: ignore[list-item]
        (
            lambda: PartitionContract(
                collections={"a": Collection()}, rules=[paired("a", "b", on="k")]
            ),
            "rules",
        ),
        (
            lambda: PartitionContract(
                collections={"a": Collection()}, rules=[paired("a", "a", on="k")]
            ),
            "rules",
        ),
        (
            lambda: PartitionContract(
                collections={"a": Collection(validator=CONVERSIONS), "b": Collection()},
                rules=[paired("a", "b", on="client_id")],
            ),
            "rules",
        ),
        (lambda: paired("a", "b", on=()), "on"),
        (lambda: paired("a", "b", on="k", when=1), "when"),  # type: ignore[arg-type]
        (lambda: any_row("", spent), "collection"),
        (lambda: ADS.check([campaign(1)]), "unit"),  # type: ignore[arg-type]
        (lambda: ADS.check({"campaigns": campaign(1)}), "unit['campaigns']"),
        (lambda: ADS.check({"campaigns": "rows"}), "unit['campaigns']"),
        (lambda: ADS.check({}, unit_id=""), "unit_id"),
    ],
)
def test_bad_options_name_themselves(make: Any, option: str) -> None:
    """Every bad option or argument raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError) as info:
        make()
    assert option == info.value.option


def test_quarantine_unit_refuses_complete_and_anonymous_units(tmp_path: Path) -> None:
    """Only a failed unit with an id can be quarantined (a replay must fetch it again)."""
    sink = JSONLQuarantine(tmp_path / "q.jsonl")
    complete = ADS.check({"campaigns": [campaign(1)], "conversions": [conversion(1, 0)]})
    anonymous = ADS.check({"campaigns": []})
    options = []
    for unit in (complete, anonymous):
        with pytest.raises(ConfigurationError) as info:
            quarantine_unit(sink, unit, source="s")
        options.append(info.value.option)
    assert ["unit", "unit_id"] == options
    assert [] == sink.records()


# ------------------------------------------------------------------ properties
POLICIES = ("forbidden", "allowed", "when")
rows_strategy = st.lists(
    st.fixed_dictionaries({"k": st.integers(0, 3), "v": st.integers(-1, 2)}), max_size=4
)
answers = st.one_of(st.just("absent"), st.none(), rows_strategy)
ROW = Validator(fields={"k": Field(int), "v": Field(int, ge(0))})


def positive(row: Any) -> bool:
    """A row whose value is above zero."""
    return bool(row["v"] > 0)


def build(policies: dict[str, str], forward: bool, backward: bool) -> PartitionContract:
    """A two-collection contract from sampled options."""

    def spec(name: str, other: str) -> Collection:
        policy = policies[name]
        if policy == "when":
            return Collection(
                validator=ROW, empty="allowed", required_when=any_row(other, positive)
            )
        return Collection(validator=ROW, empty=policy)  # type: ignore[arg-type]

    rules = []
    if forward:
        rules.append(paired("a", "b", on="k", when=positive))
    if backward:
        rules.append(paired("b", "a", on="k", when=positive, right_when=positive))
    return PartitionContract(collections={"a": spec("a", "b"), "b": spec("b", "a")}, rules=rules)


def oracle(
    policies: dict[str, str], forward: bool, backward: bool, unit: dict[str, Any]
) -> tuple[str, list[tuple[str, int | None, str, str]]]:
    """The expected verdict and issues, computed plainly."""
    present = {n: rows for n, rows in unit.items() if rows is not None}
    issues: list[tuple[str, int | None, str, str]] = []
    for name, other in (("a", "b"), ("b", "a")):
        if name not in present:
            issues.append((name, None, "missing", "incomplete"))
            continue
        rows = present[name]
        issues += [(name, i, "ge", "invalid") for i, r in enumerate(rows) if r["v"] < 0]
        if not rows:
            if policies[name] == "forbidden":
                issues.append((name, None, "non_empty", "incomplete"))
            elif policies[name] == "when" and any(r["v"] > 0 for r in present.get(other, [])):
                issues.append((name, None, "required_when", "incomplete"))
    if "c" in present:
        issues.append(("c", None, "unknown_collection", "invalid"))
    if "a" in present and "b" in present:
        if forward:
            keys = {r["k"] for r in present["b"]}
            issues += [
                ("a", i, "paired", "invalid")
                for i, r in enumerate(present["a"])
                if r["v"] > 0 and r["k"] not in keys
            ]
        if backward:
            keys = {r["k"] for r in present["a"] if r["v"] > 0}
            issues += [
                ("b", i, "paired", "invalid")
                for i, r in enumerate(present["b"])
                if r["v"] > 0 and r["k"] not in keys
            ]
    if any(kind == "incomplete" for *_, kind in issues):
        return "incomplete", issues
    return ("invalid" if issues else "complete"), issues


@given(
    policies=st.fixed_dictionaries(
        {"a": st.sampled_from(POLICIES), "b": st.sampled_from(POLICIES)}
    ),
    forward=st.booleans(),
    backward=st.booleans(),
    a=answers,
    b=answers,
    c=st.one_of(st.just("absent"), rows_strategy),
)
def test_verdict_and_issues_match_a_plain_oracle(
    policies: dict[str, str], forward: bool, backward: bool, a: Any, b: Any, c: Any
) -> None:
    """Complete iff every required collection answered rows, every row is valid and every
    pairing holds; every issue is reported once, none invented."""
    unit = {n: v for n, v in (("a", a), ("b", b), ("c", c)) if v != "absent"}
    checked = build(policies, forward, backward).check(unit)
    verdict, issues = oracle(policies, forward, backward, unit)
    assert verdict == checked.verdict
    assert sorted(issues, key=repr) == sorted(located(checked), key=repr)
    assert {n: tuple(v) for n, v in unit.items() if v is not None} == dict(checked.collections)


@given(rows=st.lists(st.integers(0, 3), min_size=1, max_size=5), zeros=st.booleans())
def test_a_zero_row_satisfies_pairing(rows: list[int], zeros: bool) -> None:
    """For every spending key, a conversion row of zeros pairs it exactly like a non-zero one."""
    contract = build({"a": "forbidden", "b": "allowed"}, True, False)
    left = [{"k": k, "v": 1} for k in rows]
    right = [{"k": k, "v": 0 if zeros else 2} for k in set(rows)]
    assert "complete" == contract.check({"a": left, "b": right}).verdict
