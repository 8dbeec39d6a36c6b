"""The collector's daily checks as a suite for the command line.

    python -m resilient_pipeline check --suite examples.kpi_collector.daily_checks:suite \
        --db kpi.sqlite3 -p day=2026-11-28

The command opens ``--db`` read-only and gives it to :func:`suite`. The
expected clients are ``KPI_CLIENTS`` (``1-16``, ``3,5,9``; default ``1-16``).
"""

from __future__ import annotations

import os

from resilient_pipeline import CheckSuite, PartitionLedger, checks
from resilient_pipeline.storage import Store

from .settings import KNOWN_PLATFORMS, parse_clients


def suite(store: Store) -> CheckSuite:
    """Every client collected for ``day`` on every platform, and that day's rows consistent.

    Reads the per-platform views the collector creates (``kpi_<platform>_daily``,
    ``kpi_<platform>_campaigns``).

    Example:
        >>> from resilient_pipeline import SQLiteStore
        >>> built = suite(SQLiteStore(":memory:"))
        >>> [check.name for check in built.checks][:3]
        ['meta_ads_complete', 'meta_ads_daily_rows', 'meta_ads_spend_conversions_paired']
    """
    clients = parse_clients(os.environ.get("KPI_CLIENTS", "1-16"))
    ledger = PartitionLedger(store)
    found = []
    for platform in KNOWN_PLATFORMS:
        daily, campaigns = f"kpi_{platform}_daily", f"kpi_{platform}_campaigns"
        found += [
            ledger.completeness_check(platform, [str(c) for c in clients]),
            checks.missing_keys(table=daily, keys=clients, name=f"{platform}_daily_rows"),
            checks.unpaired_rows(
                left=campaigns,
                right=daily,
                left_value="spend_micros",
                right_value="conversions",
                name=f"{platform}_spend_conversions_paired",
            ),
        ]
    return CheckSuite(checks=found, connection=store, name="kpi_daily")
