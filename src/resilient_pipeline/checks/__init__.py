"""Consistency and completeness checks, suites, reports with exit codes, and ``monitor``.

Built-in checks: ``completeness``, ``freshness``, ``sums_agree``, ...; data-level SQL
checks over tables: ``missing_keys`` (every key has rows per period) and ``unpaired_rows``
(spend without conversion rows, conversions without spend).

Examples:
    >>> from resilient_pipeline.checks import CheckExitCode
    >>> int(CheckExitCode.PASSED)
    0
"""

from __future__ import annotations

from ._builtin import (
    clicks_exceed_impressions,
    completeness,
    conversions_without_spend,
    freshness,
    query_dataset,
    rate_out_of_bounds,
    row_count_anomaly,
    spend_without_conversions,
    sums_agree,
)
from ._check import (
    Check,
    CheckContext,
    CheckErrored,
    CheckFailed,
    CheckOutcome,
    CheckSuite,
    Dataset,
    Row,
)
from ._data import missing_keys, unpaired_rows
from ._monitor import amonitor, monitor
from ._report import CheckExitCode, CheckReport, CheckResult

__all__ = [
    "Check",
    "CheckContext",
    "CheckErrored",
    "CheckExitCode",
    "CheckFailed",
    "CheckOutcome",
    "CheckReport",
    "CheckResult",
    "CheckSuite",
    "Dataset",
    "Row",
    "amonitor",
    "clicks_exceed_impressions",
    "completeness",
    "conversions_without_spend",
    "freshness",
    "missing_keys",
    "monitor",
    "query_dataset",
    "rate_out_of_bounds",
    "row_count_anomaly",
    "spend_without_conversions",
    "sums_agree",
    "unpaired_rows",
]
