"""The collector's daily checks as a suite for the command line.

    python -m resilient_pipeline check --suite examples.kpi_collector.daily_checks:suite \
        --db kpi.sqlite3 -p day=2026-11-28

The command opens ``--db`` read-only and gives it to :func:`suite`.
"""

from __future__ import annotations

from resilient_pipeline import CheckSuite, PartitionLedger, checks, unit_of_work
from resilient_pipeline.storage import Store

from .__main__ import CLIENTS
from .collector import SOURCE


def suite(store: Store) -> CheckSuite:
    """Every client collected for ``day``, and that day's rows consistent.

    Example:
        >>> from resilient_pipeline import SQLiteStore
        >>> built = suite(SQLiteStore(":memory:"))
        >>> [check.name for check in built.checks]
        ['meta_ads_complete', 'clicks_exceed_impressions', 'spend_without_conversions']
    """
    with unit_of_work(store) as tx:
        campaigns, conversions = tx.table("campaigns"), tx.table("conversions")
    rows = checks.query_dataset(
        # identifiers from the quoting helper, the day bound: no injection
        "SELECT c.client_id, c.date, c.campaign_id, c.impressions, c.clicks, c.spend,"  # noqa: S608
        f" v.conversions FROM {campaigns} c LEFT JOIN {conversions} v"
        " ON v.client_id = c.client_id AND v.date = c.date AND v.platform = c.platform"
        " AND v.campaign_id = c.campaign_id WHERE c.date = :day"
    )
    return CheckSuite(
        checks=[
            PartitionLedger(store).completeness_check(SOURCE, CLIENTS),
            checks.clicks_exceed_impressions(),
            checks.spend_without_conversions(min_spend=1.0),
        ],
        datasets={"rows": rows},
        name="kpi_daily",
    )
