"""The collector's repository: exact partition replacement and idempotent monthly aggregation."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pytest

from examples.kpi_collector.repository import (
    METRICS,
    AggregateResult,
    CampaignDay,
    DailyKpi,
    MonthlyTotal,
    WriteResult,
    aggregate_months,
    campaign_days,
    daily_totals,
    ensure_schema,
    monthly_totals,
    write_unit,
)
from resilient_pipeline import Partition, unit_of_work
from resilient_pipeline.exceptions import ConfigurationError, InvalidBatchError
from resilient_pipeline.storage import Store
from tests.examples.conftest import SyntheticTruth, Unit

PLATFORMS = ("meta_ads", "google_ads")
CLIENTS = (1, 2, 3)
# Across a month boundary, so aggregation has two months to keep apart.
DAYS = [dt.date(2026, 10, 29) + dt.timedelta(days=n) for n in range(6)]


def write(store: Store, platform: str, client: int, day: dt.date, unit: Unit) -> WriteResult:
    with unit_of_work(store) as tx:
        return write_unit(tx, Partition(platform, client, day), unit)


def expected_rows(unit: Unit) -> list[CampaignDay]:
    """campaign_daily rows the unit should leave: campaigns merged with their conversions."""
    conversions = {c["campaign_id"]: c for c in unit["conversions"]}
    rows = []
    for c in unit["campaigns"]:
        conv = conversions.get(c["campaign_id"], {})
        rows.append(
            CampaignDay(
                c["platform"],
                c["client_id"],
                c["date"].isoformat(),
                c["campaign_id"],
                c["campaign_name"],
                c["impressions"],
                c["clicks"],
                c["spend_micros"],
                conv.get("calls", 0),
                conv.get("emails", 0),
                conv.get("reservations", 0),
            )
        )
    return sorted(rows, key=lambda r: r.campaign_id)


def expected_daily(platform: str, client: int, day: dt.date, unit: Unit) -> DailyKpi:
    rows = expected_rows(unit)
    sums = {m: sum(getattr(r, m) for r in rows) for m in METRICS}
    return DailyKpi(
        client_id=client,
        date=day.isoformat(),
        platform=platform,
        campaigns=len(rows),
        conversions=sums["calls"] + sums["emails"] + sums["reservations"],
        **sums,
    )


def expected_monthly(units: dict[tuple[str, int, dt.date], Unit]) -> list[MonthlyTotal]:
    """Monthly totals summed in Python from the ground-truth units."""
    campaigns: dict[tuple[str, int, str], set[str]] = defaultdict(set)
    sums: dict[tuple[str, int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (platform, client, day), unit in units.items():
        key = (platform, client, day.isoformat()[:7])
        for row in expected_rows(unit):
            campaigns[key].add(row.campaign_id)
            sums[key]["days"] += 1
            for metric in METRICS:
                sums[key][metric] += getattr(row, metric)
    return sorted(
        (
            MonthlyTotal(
                platform=platform,
                client_id=client,
                month=month,
                campaigns=len(campaigns[key]),
                **sums[key],
            )
            for key in sums
            for platform, client, month in [key]
        ),
        key=lambda t: (t.platform, t.client_id, t.month),
    )


def collect_all(
    store: Store, truth: SyntheticTruth, versions: dict[tuple[str, int, dt.date], int] | None = None
) -> dict[tuple[str, int, dt.date], Unit]:
    units = {}
    for platform in PLATFORMS:
        for client in CLIENTS:
            for day in DAYS:
                key = (platform, client, day)
                units[key] = truth.unit(platform, client, day, version=(versions or {}).get(key, 0))
                write(store, platform, client, day, units[key])
    return units


def summary_rows(store: Store) -> list[tuple[Any, ...]]:
    with unit_of_work(store) as tx:
        return tx.fetchall(
            f"SELECT * FROM {tx.table('campaign_summaries')} "
            "ORDER BY platform, client_id, month, campaign_id"
        )


def test_write_unit_stores_the_partition_exactly(any_store: Store, truth: SyntheticTruth) -> None:
    """Campaign rows equal the unit value by value; the daily row holds their sums."""
    ensure_schema(any_store)
    day = DAYS[0]
    unit = truth.unit("meta_ads", 2, day)
    result = write(any_store, "meta_ads", 2, day, unit)
    assert WriteResult(len(unit["campaigns"]) + 1, 0, 0, 0) == result
    assert expected_rows(unit) == campaign_days(any_store)
    assert [expected_daily("meta_ads", 2, day, unit)] == daily_totals(any_store)


def test_write_unit_twice_changes_nothing(any_store: Store, truth: SyntheticTruth) -> None:
    """The same unit again: every row unchanged, and the month is not marked for aggregation."""
    ensure_schema(any_store)
    unit = truth.unit("google_ads", 1, DAYS[1])
    write(any_store, "google_ads", 1, DAYS[1], unit)
    assert 1 == len(aggregate_months(any_store).months)
    again = write(any_store, "google_ads", 1, DAYS[1], unit)
    assert WriteResult(0, 0, len(unit["campaigns"]) + 1, 0) == again
    assert AggregateResult((), 0, 0, 0, 0) == aggregate_months(any_store)


def test_restatement_replaces_the_partition(any_store: Store, truth: SyntheticTruth) -> None:
    """A restated unit with a campaign removed: the removed row is deleted, the rest updated."""
    ensure_schema(any_store)
    day = DAYS[2]
    before, after = truth.unit("meta_ads", 3, day), truth.unit("meta_ads", 3, day, version=1)
    removed = {c["campaign_id"] for c in before["campaigns"]} - {
        c["campaign_id"] for c in after["campaigns"]
    }
    assert removed, "the ground truth must drop a campaign active that day"
    write(any_store, "meta_ads", 3, day, before)
    # A neighbouring partition must be left alone.
    other = truth.unit("meta_ads", 3, DAYS[3])
    write(any_store, "meta_ads", 3, DAYS[3], other)

    result = write(any_store, "meta_ads", 3, day, after)

    assert len(removed) == result.deleted
    assert expected_rows(after) == campaign_days(any_store, start=day, end=day)
    assert expected_rows(other) == campaign_days(any_store, start=DAYS[3], end=DAYS[3])
    assert [expected_daily("meta_ads", 3, day, after)] == daily_totals(
        any_store, start=day, end=day
    )


def test_write_unit_to_empty_removes_every_campaign(
    any_store: Store, truth: SyntheticTruth
) -> None:
    """An empty unit replaces the partition with nothing and a zero daily row."""
    ensure_schema(any_store)
    unit = truth.unit("meta_ads", 1, DAYS[0])
    write(any_store, "meta_ads", 1, DAYS[0], unit)
    empty: Unit = {"campaigns": [], "conversions": []}
    result = write(any_store, "meta_ads", 1, DAYS[0], empty)
    assert len(unit["campaigns"]) == result.deleted
    assert [] == campaign_days(any_store)
    assert [expected_daily("meta_ads", 1, DAYS[0], empty)] == daily_totals(any_store)


@pytest.mark.parametrize(
    ("collection", "change", "column"),
    [
        ("campaigns", {"client_id": 9}, "client_id"),
        ("campaigns", {"date": dt.date(2026, 10, 1)}, "date"),
        ("campaigns", {"platform": "google_ads"}, "platform"),
        ("campaigns", {"clicks": -1}, "clicks"),
        ("campaigns", {"spend_micros": 1.5}, "spend_micros"),
        ("campaigns", {"impressions": True}, "impressions"),
        ("campaigns", {"campaign_id": ""}, "campaign_id"),
        ("conversions", {"calls": "3"}, "calls"),
        ("conversions", {"campaign_id": "nowhere"}, "campaign_id"),
    ],
)
def test_bad_unit_is_refused_and_nothing_written(
    any_store: Store, truth: SyntheticTruth, collection: str, change: dict[str, Any], column: str
) -> None:
    """A row of another partition or a bad metric: InvalidBatchError naming it, nothing written."""
    ensure_schema(any_store)
    day = DAYS[0]
    good = truth.unit("meta_ads", 2, day)
    write(any_store, "meta_ads", 2, day, good)
    bad = {k: [dict(r) for r in v] for k, v in good.items()}
    bad[collection][-1].update(change)
    if change.get("campaign_id") == "nowhere":
        bad[collection][-1].update(calls=1)
    with pytest.raises(InvalidBatchError) as caught:
        write(any_store, "meta_ads", 2, day, bad)
    assert [column] == [p.column for p in caught.value.problems]
    assert len(bad[collection]) - 1 == caught.value.problems[0].index
    assert expected_rows(good) == campaign_days(any_store)


def test_duplicate_campaign_is_refused(any_store: Store, truth: SyntheticTruth) -> None:
    """The same campaign twice in a unit is an error, not a silent last-one-wins."""
    ensure_schema(any_store)
    unit = truth.unit("meta_ads", 2, DAYS[0])
    unit["campaigns"].append(dict(unit["campaigns"][0]))
    with pytest.raises(InvalidBatchError, match="twice"):
        write(any_store, "meta_ads", 2, DAYS[0], unit)
    assert [] == campaign_days(any_store)


def test_all_zero_conversions_of_an_unlisted_campaign_carry_nothing(any_store: Store) -> None:
    """Zero conversions of a campaign with no row are accepted (nothing to store)."""
    ensure_schema(any_store)
    day = DAYS[0]
    base = {"platform": "meta_ads", "client_id": 1, "date": day}
    unit: Unit = {
        "campaigns": [
            base
            | {
                "campaign_id": "a",
                "campaign_name": "A",
                "impressions": 0,
                "clicks": 0,
                "spend_micros": 0,
            }
        ],
        "conversions": [base | {"campaign_id": "b", "calls": 0, "emails": 0, "reservations": 0}],
    }
    write(any_store, "meta_ads", 1, day, unit)
    assert ["a"] == [r.campaign_id for r in campaign_days(any_store)]


@pytest.mark.parametrize(
    "partition",
    [Partition("meta_ads", "acme", "2026-11-01"), Partition("meta_ads", 1, "2026-11")],
)
def test_partition_must_be_client_and_day(any_store: Store, partition: Partition) -> None:
    """A partition whose key is not a client id or whose period is not a day is refused."""
    ensure_schema(any_store)
    with pytest.raises(ConfigurationError, match="partition"), unit_of_work(any_store) as tx:
        write_unit(tx, partition, {"campaigns": [], "conversions": []})


def test_monthly_sums_equal_daily_sums(any_store: Store, truth: SyntheticTruth) -> None:
    """campaign_summaries equal the ground truth summed in Python, and the daily table's sums."""
    ensure_schema(any_store)
    units = collect_all(any_store, truth)
    result = aggregate_months(any_store)
    expected = expected_monthly(units)
    assert expected == monthly_totals(any_store)
    assert [(p, m) for p in sorted(PLATFORMS) for m in ("2026-10", "2026-11")] == list(
        result.months
    )
    # The daily table agrees with the summaries, value by value.
    daily: dict[tuple[str, int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in daily_totals(any_store):
        for metric in METRICS:
            daily[(row.platform, row.client_id, row.month)][metric] += getattr(row, metric)
    for total in expected:
        for metric in METRICS:
            assert daily[(total.platform, total.client_id, total.month)][metric] == getattr(
                total, metric
            )


def test_aggregate_twice_writes_nothing(any_store: Store, truth: SyntheticTruth) -> None:
    """A second aggregation (changed months or all months asked for) writes no row."""
    ensure_schema(any_store)
    collect_all(any_store, truth)
    first = aggregate_months(any_store)
    rows = summary_rows(any_store)
    assert first.inserted == len(rows) > 0
    assert AggregateResult((), 0, 0, 0, 0) == aggregate_months(any_store)
    explicit = aggregate_months(any_store, months=["2026-10", dt.date(2026, 11, 3)])
    assert (0, 0, len(rows)) == (explicit.written, explicit.updated, explicit.unchanged)
    assert rows == summary_rows(any_store)


def test_restatement_reaggregates_only_its_month(any_store: Store, truth: SyntheticTruth) -> None:
    """A restated partition re-runs its own month; vanished campaigns leave the summaries."""
    ensure_schema(any_store)
    collect_all(any_store, truth)
    aggregate_months(any_store)
    # Restate every November day of client 2 on meta: its last campaign disappears there.
    restated = {("meta_ads", 2, d): 1 for d in DAYS if d.month == 11}
    units = collect_all(any_store, truth, restated)
    result = aggregate_months(any_store)
    assert (("meta_ads", "2026-11"),) == result.months
    assert result.updated > 0
    assert result.deleted == 1
    assert expected_monthly(units) == monthly_totals(any_store)
    assert AggregateResult((), 0, 0, 0, 0) == aggregate_months(any_store)


def test_aggregate_one_platform(any_store: Store, truth: SyntheticTruth) -> None:
    """platform= recomputes that platform only; the other stays marked until its turn."""
    ensure_schema(any_store)
    units = collect_all(any_store, truth)
    meta = aggregate_months(any_store, platform="meta_ads")
    assert {"meta_ads"} == {p for p, _ in meta.months}
    assert {"meta_ads"} == {t.platform for t in monthly_totals(any_store)}
    google = aggregate_months(any_store)
    assert {"google_ads"} == {p for p, _ in google.months}
    assert expected_monthly(units) == monthly_totals(any_store)


@pytest.mark.parametrize(
    ("option", "value"),
    [("months", "2026-11"), ("months", ["2026-13"]), ("months", [202611]), ("platform", "")],
)
def test_aggregate_refuses_bad_options(any_store: Store, option: str, value: Any) -> None:
    """A month that is not 'YYYY-MM' (or a bare string) is named in a ConfigurationError."""
    ensure_schema(any_store)
    with pytest.raises(ConfigurationError) as caught:
        aggregate_months(any_store, **{option: value})
    assert option == caught.value.option


def test_ensure_schema_is_idempotent(any_store: Store, truth: SyntheticTruth) -> None:
    """Creating the schema again keeps the data."""
    ensure_schema(any_store)
    unit = truth.unit("meta_ads", 1, DAYS[0])
    write(any_store, "meta_ads", 1, DAYS[0], unit)
    ensure_schema(any_store)
    assert expected_rows(unit) == campaign_days(any_store)
