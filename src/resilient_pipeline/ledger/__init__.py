"""The partition ledger: what was collected, what is missing, and backfilling the gaps.

Examples:
    >>> from resilient_pipeline.ledger import daily
    >>> import datetime as dt
    >>> [day.isoformat() for day in daily(dt.date(2026, 11, 1), dt.date(2026, 11, 2))]
    ['2026-11-01', '2026-11-02']
"""

from __future__ import annotations

from ._backfill import BackfillFinished, PartitionCollected, abackfill, backfill
from ._ledger import PartitionLedger, daily
from ._records import (
    Claimed,
    Partition,
    PartitionFailed,
    PartitionRecord,
    PartitionRestated,
    Restatement,
)
from ._report import BackfillReport, PartitionFailure, RestatedPartition, RestatementSummary

__all__ = [
    "BackfillFinished",
    "BackfillReport",
    "Claimed",
    "Partition",
    "PartitionCollected",
    "PartitionFailed",
    "PartitionFailure",
    "PartitionLedger",
    "PartitionRecord",
    "PartitionRestated",
    "RestatedPartition",
    "Restatement",
    "RestatementSummary",
    "abackfill",
    "backfill",
    "daily",
]
