"""What a backfill run did, and the alerts it calls for, each with the action that applies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs

from resilient_pipeline.alerting import Alert
from resilient_pipeline.exceptions import BackfillError

from ._ledger import Outcome
from ._records import Partition

__all__ = [
    "BackfillReport",
    "PartitionFailure",
    "RestatedPartition",
    "RestatementSummary",
]

_LISTED = 20  # partitions named in an alert's message; details carry them all


@attrs.frozen(kw_only=True)
class PartitionFailure:
    """A partition that failed in a run, and where that leaves it.

    Attributes:
        partition: The partition.
        status: Where the failure left it: ``"failed"`` (the next run retries
            it), ``"exhausted"`` (out of attempts: retry it explicitly),
            ``"succeeded"`` (a look-back re-collection failed; the data
            committed earlier stands) or ``"running"`` (the failure could not
            be recorded, e.g. the database was unreachable; the lease expires
            and a later run takes it over).
        error: The root cause (the upstream's error, not a rejection that
            followed it), secrets masked.
        error_class: The class of that error.
        attempts: Failed attempts so far (``-1`` when not recorded).
        counted: Whether this failure counted as an attempt.
        quarantine_id: The quarantine record of its unit, when it was quarantined.

    Examples:
        >>> f = PartitionFailure(partition=Partition("s", 1, "2026-11"), status="failed",
        ...                      error="ConnectionError: reset", error_class="ConnectionError",
        ...                      attempts=1)
        >>> f.counted, f.quarantine_id
        (True, None)
    """

    partition: Partition
    status: Literal["failed", "exhausted", "succeeded", "running"]
    error: str
    error_class: str
    attempts: int
    counted: bool = True
    quarantine_id: str | None = None


@attrs.frozen(kw_only=True)
class RestatedPartition:
    """A succeeded partition whose data upstream changed, before and after.

    Examples:
        >>> r = RestatedPartition(partition=Partition("s", 1, "2026-11"), before_rows=3,
        ...                       after_rows=3, before_measure=100.0, after_measure=110.0)
        >>> r.after_measure - r.before_measure
        10.0
    """

    partition: Partition
    before_rows: int | None
    after_rows: int | None
    before_measure: float | None = None
    after_measure: float | None = None


@attrs.frozen(kw_only=True)
class RestatementSummary:
    """How much upstream restated in one run: partitions, and the measure's relative change.

    Attributes:
        source: The source.
        partitions: How many partitions were restated.
        measure: The measure's name (e.g. ``"spend"``), if one was given.
        before: The measure summed over the restated partitions, before ...
        after: ... and after (over partitions where both are known).
        change: ``after / before - 1`` (``None`` when unknown or ``before`` is 0).

    Examples:
        >>> s = RestatementSummary(source="meta_ads", partitions=12, measure="spend",
        ...                        before=1000.0, after=1104.0)
        >>> round(s.change, 3), s.text()
        (0.104, 'meta_ads restated 12 partitions, spend +10.4%')
    """

    source: str
    partitions: int
    measure: str | None = None
    before: float | None = None
    after: float | None = None

    @property
    def change(self) -> float | None:
        """The relative change of the measure, or ``None``."""
        if self.before is None or self.after is None or self.before == 0:
            return None
        return self.after / self.before - 1

    def text(self) -> str:
        """``"meta_ads restated 12 partitions, spend +10.4%"``."""
        noun = "partition" if self.partitions == 1 else "partitions"
        text = f"{self.source} restated {self.partitions} {noun}"
        if self.measure is not None:
            change = self.change
            if change is not None:
                text += f", {self.measure} {change:+.1%}"
            elif self.before is not None and self.after is not None:
                text += f", {self.measure} {self.before:g} -> {self.after:g}"
        return text


def _listed(partitions: Sequence[Partition]) -> str:
    shown = ", ".join(f"{p.key}/{p.period}" for p in partitions[:_LISTED])
    more = len(partitions) - _LISTED
    return shown + (f" and {more} more" if more > 0 else "")


@attrs.frozen(kw_only=True)
class BackfillReport:
    """What one backfill run did.

    Attributes:
        run_id: The run's id in the ledger.
        source: The source collected.
        collected: Partitions committed in this run, with their outcome
            (``"new"``, ``"unchanged"`` or ``"restated"``); includes look-back
            re-collections. Every tuple of partitions is by period, then key.
        failures: Every partition that failed in this run, with its root cause
            and where it is now.
        restated: Restated partitions, before and after.
        recovered: Partitions taken over from an expired lease (a killed or
            hung worker's), whatever their outcome.
        lost: Partitions whose lease another worker took over while this run
            worked on them (nothing of them was committed here).
        measure: The measure's name for restatement sizes, if given.
        errors: Why the run stopped early, if it did (the ledger could not be
            reached to claim partitions); whatever it did not claim is still a gap.
        duration: Seconds the run took.

    Examples:
        >>> p = Partition("meta_ads", 7, "2026-11-28")
        >>> report = BackfillReport(run_id="r1", source="meta_ads",
        ...                         collected=((p, "new"),), duration=1.0)
        >>> report.counts()["new"], report.alerts()
        (1, [])
    """

    run_id: str
    source: str = ""
    collected: tuple[tuple[Partition, Outcome], ...] = ()
    failures: tuple[PartitionFailure, ...] = ()
    restated: tuple[RestatedPartition, ...] = ()
    recovered: tuple[Partition, ...] = ()
    lost: tuple[Partition, ...] = ()
    measure: str | None = None
    errors: tuple[str, ...] = ()
    duration: float = 0.0

    @property
    def failed(self) -> tuple[tuple[Partition, str], ...]:
        """``(partition, error)`` of every partition still a gap after a failure in this run."""
        return tuple((f.partition, f.error) for f in self.failures if f.status != "succeeded")

    @property
    def exhausted(self) -> tuple[Partition, ...]:
        """Partitions now out of attempts (retry them explicitly once the cause is fixed)."""
        return tuple(f.partition for f in self.failures if f.status == "exhausted")

    @property
    def stale(self) -> tuple[Partition, ...]:
        """Succeeded partitions whose look-back re-collection failed (their data stands)."""
        return tuple(f.partition for f in self.failures if f.status == "succeeded")

    def count(self, outcome: Outcome) -> int:
        """How many partitions had ``outcome``."""
        return sum(1 for _, o in self.collected if o == outcome)

    def counts(self) -> dict[str, int]:
        """Every count an operator asks for, by name.

        ``new``, ``unchanged``, ``restated`` (collected), ``failed`` (a later
        run retries them), ``exhausted``, ``stale`` (look-back failed),
        ``unrecorded`` (failure not written to the ledger), ``recovered``
        (from a crashed worker) and ``lost`` (taken over by another worker).
        """
        statuses = [f.status for f in self.failures]
        return {
            "new": self.count("new"),
            "unchanged": self.count("unchanged"),
            "restated": self.count("restated"),
            "failed": statuses.count("failed"),
            "exhausted": statuses.count("exhausted"),
            "stale": statuses.count("succeeded"),
            "unrecorded": statuses.count("running"),
            "recovered": len(self.recovered),
            "lost": len(self.lost),
        }

    def restatement_summary(self) -> RestatementSummary | None:
        """How much upstream restated in this run; ``None`` when nothing was restated."""
        if not self.restated:
            return None
        known = [
            r for r in self.restated if r.before_measure is not None and r.after_measure is not None
        ]
        return RestatementSummary(
            source=self.source,
            partitions=len(self.restated),
            measure=self.measure,
            before=sum(r.before_measure or 0.0 for r in known) if known else None,
            after=sum(r.after_measure or 0.0 for r in known) if known else None,
        )

    def raise_for_failures(self) -> None:
        """Raise :class:`BackfillError` if any partition is still a gap after failing here,
        or the run stopped early."""
        if self.failed or self.errors:
            stopped = f"; stopped early: {self.errors[0]}" if self.errors else ""
            raise BackfillError(
                f"{len(self.failed)} partition(s) failed in backfill {self.run_id}{stopped}",
                failed=[p.as_tuple() for p, _ in self.failed],
                errors=[e for _, e in self.failed],
            )

    def alerts(self, *, db: str = "<db>") -> list[Alert]:
        """One alert per kind of trouble in this run, each with the action that applies.

        * stopped early (critical): the ledger could not be reached;
        * ``exhausted`` (error): out of attempts, no run retries them on its
          own: fix the cause, then ``python -m resilient_pipeline retry``;
        * ``failed`` / not recorded (error): a later run retries them: re-run
          the collector (or ``backfill``) once the upstream is healthy;
        * look-back failed (warning): the earlier data stands, unchecked;
        * lost leases (warning): another worker took partitions over;
        * restated (info): upstream changed committed data, sized by the measure.

        ``db`` is put in the retry command (``"$KPI_DB"``, a path).

        Examples:
            >>> p = Partition("meta_ads", 7, "2026-11-28")
            >>> failure = PartitionFailure(partition=p, status="exhausted", attempts=5,
            ...     error="HTTPStatusError: 503", error_class="httpx.HTTPStatusError")
            >>> [alert] = BackfillReport(run_id="r1", source="meta_ads",
            ...                          failures=(failure,)).alerts(db="kpi.db")
            >>> alert.title
            'meta_ads: 1 partition(s) out of attempts (exhausted)'
            >>> print(alert.action)  # doctest: +NORMALIZE_WHITESPACE
            Read the errors, fix the cause, then: python -m resilient_pipeline retry --db kpi.db
            --source meta_ads --keys 7 --start 2026-11-28 --end 2026-11-28;
            see docs/runbooks/daily-collection-incomplete.md
        """
        alerts: list[Alert] = []
        source = self.source
        if self.errors:
            alerts.append(
                Alert(
                    severity="critical",
                    title=f"{source}: backfill {self.run_id} stopped early",
                    message="; ".join(self.errors),
                    action="Restore the database (docs/runbooks/database-unreachable.md), then "
                    "re-run the collector: the backfill resumes where it stopped.",
                    details={"run_id": self.run_id, "errors": list(self.errors)},
                    key=f"{source}/stopped/{self.run_id}",
                )
            )
        by_status: dict[str, list[PartitionFailure]] = {}
        for failure in self.failures:
            by_status.setdefault(failure.status, []).append(failure)

        def details(failures: list[PartitionFailure]) -> dict[str, object]:
            return {
                "run_id": self.run_id,
                "partitions": [
                    {
                        "key": f.partition.key,
                        "period": f.partition.period,
                        "status": f.status,
                        "attempts": f.attempts,
                        "error": f.error,
                        "error_class": f.error_class,
                        "quarantine_id": f.quarantine_id,
                    }
                    for f in failures
                ],
            }

        def causes(failures: list[PartitionFailure]) -> str:
            classes = sorted({f.error_class for f in failures})
            return f"Last errors: {', '.join(classes)}; first: {failures[0].error.splitlines()[0]}"

        exhausted = by_status.get("exhausted", [])
        if exhausted:
            parts = [f.partition for f in exhausted]
            keys = ",".join(sorted({p.key for p in parts}))
            first, last = min(p.period for p in parts), max(p.period for p in parts)
            alerts.append(
                Alert(
                    severity="error",
                    title=f"{source}: {len(parts)} partition(s) out of attempts (exhausted)",
                    message=f"No run retries these on its own: {_listed(parts)}. "
                    + causes(exhausted),
                    action="Read the errors, fix the cause, then: python -m resilient_pipeline "
                    f"retry --db {db} --source {source} --keys {keys} "
                    f"--start {first} --end {last}; "
                    "see docs/runbooks/daily-collection-incomplete.md",
                    details=details(exhausted),
                    key=f"{source}/exhausted/{self.run_id}",
                )
            )
        retryable = by_status.get("failed", []) + by_status.get("running", [])
        if retryable:
            parts = [f.partition for f in retryable]
            alerts.append(
                Alert(
                    severity="error",
                    title=f"{source}: {len(parts)} partition(s) failed (will be retried)",
                    message=f"Not collected in run {self.run_id}: {_listed(parts)}. "
                    + causes(retryable),
                    action="Re-run the collector (or backfill() for the range) once the "
                    "upstream is healthy: failed partitions are retried automatically; see "
                    "docs/runbooks/upstream-api-down.md",
                    details=details(retryable),
                    key=f"{source}/failed/{self.run_id}",
                )
            )
        stale = by_status.get("succeeded", [])
        if stale:
            parts = [f.partition for f in stale]
            alerts.append(
                Alert(
                    severity="warning",
                    title=f"{source}: {len(parts)} partition(s) not re-checked for restatements",
                    message=f"The look-back could not re-collect {_listed(parts)}; their "
                    "earlier data stands. " + causes(stale),
                    action="Nothing is missing; the next run with lookback= checks them again.",
                    details=details(stale),
                    key=f"{source}/stale/{self.run_id}",
                )
            )
        if self.lost:
            alerts.append(
                Alert(
                    severity="warning",
                    title=f"{source}: {len(self.lost)} lease(s) taken over by another worker",
                    message=f"Not committed by run {self.run_id} (another worker holds them): "
                    f"{_listed(list(self.lost))}.",
                    action="Check that this worker was not paused for longer than the lease "
                    "(PartitionLedger(lease=...)); the other worker collects them.",
                    details={"run_id": self.run_id, "partitions": [str(p) for p in self.lost]},
                    key=f"{source}/lost/{self.run_id}",
                )
            )
        summary = self.restatement_summary()
        if summary is not None:
            alerts.append(
                Alert(
                    severity="info",
                    title=summary.text(),
                    message=f"Upstream changed data already collected: "
                    f"{_listed([r.partition for r in self.restated])}. The new values were "
                    "written.",
                    action="No action needed in the pipeline; reports over these periods changed.",
                    details={
                        "run_id": self.run_id,
                        "measure": summary.measure,
                        "before": summary.before,
                        "after": summary.after,
                        "change": summary.change,
                        "partitions": [str(r.partition) for r in self.restated],
                    },
                    key=f"{source}/restated/{self.run_id}",
                )
            )
        return alerts
