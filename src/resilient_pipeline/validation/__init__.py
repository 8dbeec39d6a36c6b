"""Validation: declarative field and row rules that collect every issue; quarantine and replay.

Rule factories live in :mod:`resilient_pipeline.validation.rules`.

Examples:
    >>> from resilient_pipeline.validation import Field, Validator
    >>> from resilient_pipeline.validation.rules import ge
    >>> validator = Validator(fields={"clicks": Field(int, ge(0))})
    >>> [issue.field for issue in validator.validate({"clicks": -1}).issues]
    ['clicks']
"""

from __future__ import annotations

from ._contract import PartitionContract
from ._fields import Field
from ._issues import Issue, PartitionResult, Quarantined, RowsQuarantined, ValidationReport
from ._quarantine import (
    QuarantineRecord,
    QuarantineSink,
    ReplayResult,
    RowsReplayed,
    areplay,
    quarantine,
    replay,
)
from ._sinks import JSONLQuarantine, QuarantineLinesSkipped, SQLQuarantine
from ._unit import (
    CheckedUnit,
    Collection,
    Pairing,
    PartitionQuarantined,
    PartitionRejected,
    UnitIssue,
    Verdict,
    any_row,
    paired,
)
from ._unit_quarantine import (
    QuarantinedUnit,
    UnitReplayResult,
    quarantine_unit,
    replay_units,
    unit_of_record,
)
from ._validator import Validator

__all__ = [
    "CheckedUnit",
    "Collection",
    "Field",
    "Issue",
    "JSONLQuarantine",
    "Pairing",
    "PartitionContract",
    "PartitionQuarantined",
    "PartitionRejected",
    "PartitionResult",
    "QuarantineLinesSkipped",
    "QuarantineRecord",
    "QuarantineSink",
    "Quarantined",
    "QuarantinedUnit",
    "ReplayResult",
    "RowsQuarantined",
    "RowsReplayed",
    "SQLQuarantine",
    "UnitIssue",
    "UnitReplayResult",
    "ValidationReport",
    "Validator",
    "Verdict",
    "any_row",
    "areplay",
    "paired",
    "quarantine",
    "quarantine_unit",
    "replay",
    "replay_units",
    "unit_of_record",
]
