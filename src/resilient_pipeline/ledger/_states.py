"""The partition state machine, as pure functions (no database, no clock).

docs/ledger.md draws every state and transition.

A claim is not an attempt; a failure of the collect function is. A lease that
expired under a running partition (its worker crashed or hung) makes it
claimable again and counts a *crash*, not an attempt. The SQL in ``_sql.py``
applies the same rules; these functions state them once, for the ledger and
for the tests' model.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from resilient_pipeline.exceptions import LedgerError

__all__ = [
    "RESETTABLE",
    "STATUSES",
    "GapStatus",
    "Status",
    "after_failure",
    "normalize_status",
]

Status: TypeAlias = Literal["pending", "running", "succeeded", "failed", "exhausted"]
"""A partition's state in the ledger (see the module docstring for the transitions)."""

GapStatus: TypeAlias = Literal["pending", "running", "succeeded", "failed", "exhausted", "missing"]
"""A status as :meth:`PartitionLedger.gaps` reports it: ``"missing"`` was never planned."""

STATUSES: tuple[Status, ...] = ("pending", "running", "succeeded", "failed", "exhausted")

RESETTABLE: tuple[Status, ...] = ("failed", "exhausted", "succeeded", "pending")
"""Statuses :meth:`PartitionLedger.reset` may set back to ``pending`` (never ``running``:
a running partition is leased, and becomes claimable when its lease expires)."""


def normalize_status(stored: str) -> Status:
    """The status a stored value means; ``quarantined`` is the former name of ``exhausted``.

    Examples:
        >>> normalize_status("quarantined"), normalize_status("failed")
        ('exhausted', 'failed')
    """
    if stored == "quarantined":
        return "exhausted"
    if stored not in STATUSES:
        raise LedgerError(
            f"unknown partition status {stored!r} in the ledger: written by a newer version"
            " of resilient-pipeline, or by hand"
        )
    return stored


def after_failure(
    status: Status, attempts: int, *, counted: bool, max_attempts: int
) -> tuple[Status, int]:
    """The status and attempt count after a failure of a partition in ``status``.

    ``counted`` is whether the collect function ran (a rejection by an open
    circuit before it ran is not an attempt). A succeeded partition whose
    look-back re-collection failed stays succeeded: its data is there.

    Examples:
        >>> after_failure("running", 0, counted=True, max_attempts=2)
        ('failed', 1)
        >>> after_failure("running", 1, counted=True, max_attempts=2)
        ('exhausted', 2)
        >>> after_failure("running", 1, counted=False, max_attempts=2)
        ('failed', 1)
        >>> after_failure("succeeded", 0, counted=True, max_attempts=2)
        ('succeeded', 0)
    """
    if status == "succeeded":
        return "succeeded", attempts
    attempts += 1 if counted else 0
    if attempts >= max_attempts:
        return "exhausted", attempts
    return "failed", attempts
