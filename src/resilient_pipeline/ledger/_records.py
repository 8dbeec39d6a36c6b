"""What the ledger stores and reports: partitions, their records, restatements, events."""

from __future__ import annotations

import logging

import attrs

from resilient_pipeline._core import Event

from . import _sql as q
from ._states import GapStatus, Status

__all__ = [
    "Claimed",
    "Partition",
    "PartitionFailed",
    "PartitionRecord",
    "PartitionRestated",
    "Restatement",
]


@attrs.frozen(order=True)
class Partition:
    """One unit of collected data: ``(source, key, period)``; key and period are text.

    Examples:
        >>> import datetime as dt
        >>> Partition("meta_ads", 7, dt.date(2026, 11, 28))
        Partition(source='meta_ads', key='7', period='2026-11-28')
    """

    source: str = attrs.field(converter=q.source_text)
    key: str = attrs.field(converter=q.key_text)
    period: str = attrs.field(converter=q.period_text)

    def as_tuple(self) -> tuple[str, str, str]:
        """``(source, key, period)``."""
        return (self.source, self.key, self.period)

    def __str__(self) -> str:
        return "/".join(self.as_tuple())


@attrs.frozen(kw_only=True)
class Claimed:
    """A partition leased by :meth:`PartitionLedger.claim_many`, with what it last recorded.

    Attributes:
        partition: The partition.
        fingerprint: The fingerprint of its last committed data (``None``: never committed).
        row_count: Its last committed row count.
        status: Its status when claimed (``"succeeded"`` for a look-back re-collection).
        attempts: Failed attempts so far.
        recovered: Whether the claim took over an expired lease (a crashed or hung worker's).
        measure: The measure recorded with its last committed data, if any.

    Examples:
        >>> c = Claimed(partition=Partition("s", 1, "2026-11"), fingerprint=None, row_count=None)
        >>> c.status, c.recovered
        ('pending', False)
    """

    partition: Partition
    fingerprint: str | None
    row_count: int | None
    status: Status = "pending"
    attempts: int = 0
    recovered: bool = False
    measure: float | None = None


@attrs.frozen(kw_only=True)
class PartitionRecord:
    """A partition's row in the ledger (``status="missing"`` in :meth:`~PartitionLedger.gaps`
    for an expected partition that was never planned).

    Attributes:
        partition: The partition.
        status: ``pending``, ``running``, ``succeeded``, ``failed``, ``exhausted``
            (or ``missing``).
        attempts: Failed attempts of the collect function (a claim is not one).
        last_error: The root cause of the last failure (the upstream's error,
            not a breaker's rejection that followed it), secrets masked. Kept
            after :meth:`~PartitionLedger.reset`, cleared by a success.
        error_class: The class of that error (``"httpx.HTTPStatusError"``).
        error_at: When it happened (epoch seconds).
        row_count: Rows of the last committed data.
        fingerprint: Digest of the last committed data.
        duration: Seconds the last attempt took.
        run_id: The run that last claimed, failed or committed it.
        lease_owner: The worker holding its lease, while one does.
        lease_expires: When that lease expires (epoch seconds).
        updated_at: When the row last changed (epoch seconds).
        restatements: How often upstream changed its data after it succeeded.
        crashes: How often a lease on it expired in a worker's hands (killed, hung).
        measure: The measure (e.g. total spend) recorded with its data, if any.

    Examples:
        >>> r = PartitionRecord(partition=Partition("s", 1, "2026-11"), status="missing")
        >>> r.key, r.period, r.as_tuple(), r.attempts
        ('1', '2026-11', ('s', '1', '2026-11'), 0)
    """

    partition: Partition
    status: GapStatus
    attempts: int = 0
    last_error: str | None = None
    error_class: str | None = None
    error_at: float | None = None
    row_count: int | None = None
    fingerprint: str | None = None
    duration: float | None = None
    run_id: str | None = None
    lease_owner: str | None = None
    lease_expires: float | None = None
    updated_at: float | None = None
    restatements: int = 0
    crashes: int = 0
    measure: float | None = None

    @property
    def source(self) -> str:
        """The partition's source."""
        return self.partition.source

    @property
    def key(self) -> str:
        """The partition's key."""
        return self.partition.key

    @property
    def period(self) -> str:
        """The partition's period."""
        return self.partition.period

    def as_tuple(self) -> tuple[str, str, str]:
        """``(source, key, period)``."""
        return self.partition.as_tuple()


@attrs.frozen(kw_only=True)
class Restatement:
    """Upstream changed an already-succeeded partition's data.

    Examples:
        >>> r = Restatement(partition=Partition("s", 1, "2026-11"), run_id="r", restated_at=0.0,
        ...                 before_rows=2, after_rows=2, before_fingerprint="a",
        ...                 after_fingerprint="b", before_measure=10.0, after_measure=11.0)
        >>> r.after_measure - r.before_measure
        1.0
    """

    partition: Partition
    run_id: str | None
    restated_at: float
    before_rows: int | None
    after_rows: int | None
    before_fingerprint: str | None
    after_fingerprint: str | None
    before_measure: float | None = None
    after_measure: float | None = None


@attrs.frozen(kw_only=True)
class PartitionRestated(Event):
    """A succeeded partition was collected again with different data."""

    logger_name = "resilient_pipeline.ledger"
    level = logging.WARNING
    template = "{source}: {partition} restated upstream ({before_rows} -> {after_rows} rows)"

    partition: str
    before_rows: int | None
    after_rows: int | None


@attrs.frozen(kw_only=True)
class PartitionFailed(Event):
    """A partition's collection failed (``exhausted`` once out of attempts).

    Attributes:
        partition: ``source/key/period``.
        status: ``"failed"`` (a later run retries it), ``"exhausted"`` (out of
            attempts: retry it explicitly) or ``"succeeded"`` (a look-back
            re-collection failed; the data committed earlier stands).
        attempts: Failed attempts so far.
        error: The root cause, secrets masked.
        error_class: Its class.
        counted: Whether it counted as an attempt (a rejection before the
            collect function ran does not).
    """

    logger_name = "resilient_pipeline.ledger"
    level = logging.ERROR
    template = "{source}: {partition} {status} after attempt {attempts}: {error}"

    partition: str
    status: str
    attempts: int
    error: str
    error_class: str = ""
    counted: bool = True
