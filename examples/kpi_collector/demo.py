"""The demo: one run against the local flaky API, its result compared with the API's truth.

The comparison is a check of the run's suite (``matches_ground_truth``), so a
single wrong value makes the demo exit 2 and shows in the summary, the alerts
and the report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from resilient_pipeline import unit_of_work
from resilient_pipeline.checks import Check, CheckContext, CheckOutcome
from resilient_pipeline.ledger import BackfillReport
from resilient_pipeline.storage import Store

from . import repository
from .pipeline import run
from .settings import DEMO_HANG, KNOWN_PLATFORMS, Settings
from .summary import RunSummary

if TYPE_CHECKING:
    from .fakeapi import FakeAdsAPI, GroundTruth
    from .monitoring import RunMonitor

__all__ = ["TRUTH_CHECK", "ground_truth_check", "run_demo", "truth_differences"]


TRUTH_CHECK = "matches_ground_truth"


_CAMPAIGN_FIELDS = ("campaign_name", "impressions", "clicks", "spend_micros")


def _campaign_row(unit: Mapping[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    conversions = {row["campaign_id"]: row for row in unit["conversions"]}
    merged = {}
    for row in unit["campaigns"]:
        extra = conversions.get(row["campaign_id"], {})
        merged[row["campaign_id"]] = {
            **{k: row[k] for k in _CAMPAIGN_FIELDS},
            **{k: int(extra.get(k, 0)) for k in ("calls", "emails", "reservations")},
        }
    return merged


def truth_differences(store: Store, truth: GroundTruth, settings: Settings) -> list[str]:
    """Every difference between the database and the fake API's ground truth, value by value.

    Compares ``campaign_daily``, ``daily_kpi_data`` and ``campaign_summaries``
    for every partition of the range and every partition the database holds
    (extra rows are differences too); the monthly truth is summed over the days
    the database holds, which are themselves compared.
    """
    diffs: list[str] = []
    stored_campaigns: dict[tuple[str, int, str], dict[str, dict[str, Any]]] = {}
    for c in repository.campaign_days(store):
        stored_campaigns.setdefault((c.platform, c.client_id, c.date), {})[c.campaign_id] = {
            k: getattr(c, k) for k in (*_CAMPAIGN_FIELDS, "calls", "emails", "reservations")
        }
    stored_daily = {
        (d.platform, d.client_id, d.date): attrs.asdict(d) for d in repository.daily_totals(store)
    }
    with unit_of_work(store, name="kpi truth summaries") as tx:
        rows = tx.fetchall(
            "SELECT platform, client_id, month, campaign_id, days, impressions, clicks, "  # noqa: S608
            f"spend_micros, calls, emails, reservations FROM {tx.table('campaign_summaries')}"
        )
    fields = ("days", "impressions", "clicks", "spend_micros", "calls", "emails", "reservations")
    stored_months: dict[tuple[str, int, str], dict[str, dict[str, int]]] = {}
    for platform, client, month, campaign, *values in rows:
        stored_months.setdefault((platform, int(client), month), {})[campaign] = {
            f: int(v) for f, v in zip(fields, values, strict=True)
        }

    wanted = {
        (p, c, (settings.start + dt.timedelta(days=n)).isoformat())
        for p in settings.platforms
        for c in settings.clients
        for n in range(settings.days)
    }
    partitions = sorted(wanted | set(stored_campaigns) | set(stored_daily))
    for platform, client, day in partitions:
        where = f"{platform}/{client}/{day}"
        if platform not in KNOWN_PLATFORMS:
            diffs.append(f"{where}: a platform the API does not have")
            continue
        unit = truth.unit(platform, client, day)
        expected = _campaign_row(unit)
        got = stored_campaigns.get((platform, client, day), {})
        if not got and (platform, client, day) in wanted:
            diffs.append(f"{where}: no campaign_daily rows (expected {len(expected)})")
        diffs.extend(
            f"{where} campaign {campaign}: stored {got.get(campaign)}, "
            f"truth {expected.get(campaign)}"
            for campaign in sorted(set(expected) | set(got))
            if expected.get(campaign) != got.get(campaign)
        )
        kpi = truth.daily_kpi(platform, client, day)
        kpi["date"] = kpi["date"].isoformat()
        stored = stored_daily.get((platform, client, day))
        if stored != kpi:
            diffs.append(f"{where} daily_kpi_data: stored {stored}, truth {kpi}")

    days_by_month: dict[tuple[str, int, str], set[str]] = {}
    for platform, client, day in partitions:
        days_by_month.setdefault((platform, client, day[:7]), set()).add(day)
    for key in sorted(set(days_by_month) | set(stored_months)):
        platform, client, month = key
        expected_month = (
            truth.monthly(platform, client, month, days_by_month[key])
            if key in days_by_month and platform in KNOWN_PLATFORMS
            else {}
        )
        got_month = stored_months.get(key, {})
        diffs.extend(
            f"{platform}/{client}/{month} campaign_summaries {campaign}: stored "
            f"{got_month.get(campaign)}, truth {expected_month.get(campaign)}"
            for campaign in sorted(set(expected_month) | set(got_month))
            if expected_month.get(campaign) != got_month.get(campaign)
        )
    return diffs


def ground_truth_check(truth: GroundTruth, settings: Settings) -> Check:
    """A check failing with every difference between the database and the ground truth."""

    def body(context: CheckContext) -> CheckOutcome:
        diffs = truth_differences(context.connection, truth, settings)
        return CheckOutcome(
            [{"difference": d} for d in diffs],
            message=f"{len(diffs)} difference(s) from the API's ground truth, first: "
            + (diffs[0] if diffs else ""),
        )

    return Check(
        name=TRUTH_CHECK,
        severity="error",
        body=body,
        max_offending=1000,
        action="The collector stored something the API did not say: a bug in the collector.",
        description="Demo only: the database equals the fake API's ground truth, value by value.",
    )


def run_demo(
    settings: Settings,
    *,
    api: FakeAdsAPI | None = None,
    store: Store | None = None,
    on_pass: Callable[[str, BackfillReport], None] = lambda _kind, _report: None,
    monitor: RunMonitor | None = None,
) -> RunSummary:
    """The demo: one run against the local flaky API, checked against the API's ground truth.

    Args:
        settings: The run; its ``base_url`` and ``tokens`` are replaced by the local API's.
        api: A running :class:`FakeAdsAPI` (tests choose its truth and faults);
            default: one for ``settings.seed`` and ``settings.fault_rate``, for this run.
        store: An open store (default: ``settings.db``).
        on_pass: Called after each backfill pass.
        monitor: Health checks and metrics of the run (``--serve-metrics``).
    """
    if api is None:
        from .fakeapi import FakeAdsAPI, Faults, GroundTruth

        truth = GroundTruth(seed=settings.seed)
        faults = attrs.evolve(
            Faults.demo(seed=settings.seed, rate=settings.fault_rate), hang=DEMO_HANG
        )
        with FakeAdsAPI(truth, faults) as started:
            return run_demo(settings, api=started, store=store, on_pass=on_pass, monitor=monitor)
    local = attrs.evolve(settings, base_url=api.base_url, tokens=dict(api.tokens))
    check = ground_truth_check(api.truth, local)
    summary = run(local, store=store, extra_checks=[check], on_pass=on_pass, monitor=monitor)
    if summary.checks is None:
        return summary
    mismatches = [
        str(row["difference"])
        for result in summary.checks.results
        if result.name == TRUTH_CHECK
        for row in result.offending
    ]
    return attrs.evolve(summary, mismatches=tuple(mismatches))
