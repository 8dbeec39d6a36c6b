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
from ._sinks import JSONLQuarantine, SQLQuarantine
from ._validator import Validator

__all__ = [
    "Field",
    "Issue",
    "JSONLQuarantine",
    "PartitionResult",
    "QuarantineRecord",
    "QuarantineSink",
    "Quarantined",
    "ReplayResult",
    "RowsQuarantined",
    "RowsReplayed",
    "SQLQuarantine",
    "ValidationReport",
    "Validator",
    "areplay",
    "quarantine",
    "replay",
]
