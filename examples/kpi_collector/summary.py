"""What one collector run did: per-platform counts, checks, alerts, the exit code.

:class:`RunSummary` is what the console prints, what the HTML report reads
(through its attributes) and what a scheduler calling the pipeline in-process
acts on.

Example:
    >>> import datetime as dt
    >>> now = dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
    >>> s = RunSummary(started_at=now, finished_at=now, platforms=(PlatformStats(
    ...     platform="meta_ads", collected=3),), checks=None, alerts=(), exit_code=0,
    ...     exit_meaning=EXIT_MEANINGS[0])
    >>> s.platforms[0].collected, s.duration
    (3, 0.0)
"""

from __future__ import annotations

import datetime as dt

import attrs

from resilient_pipeline import Alert
from resilient_pipeline.checks import CheckReport

__all__ = ["EXIT_MEANINGS", "PlatformStats", "RunSummary"]


EXIT_MEANINGS = {
    0: "every partition complete and every check passed",
    1: "collected, but a warning-level check failed (see the alerts)",
    2: "data missing or wrong: an error-level check failed (see the alerts)",
    3: "a check could not run: the data's state is unknown",
    64: "the command line was wrong",
}


# ---------------------------------------------------------------- the summary
@attrs.frozen(kw_only=True)
class PlatformStats:
    """What one run did for one platform.

    Attributes:
        platform: The ledger source name.
        collected: Partitions collected for the first time.
        unchanged: Partitions collected again (look-back) with identical data.
        restated: Partitions whose data upstream changed (written anew).
        failed: Partitions still missing at the end of the run (later runs retry them).
        exhausted: ... of which out of attempts (need an operator's retry).
        recovered: Partitions that failed in the main pass and were collected in a
            recovery pass.
        replayed: Quarantined units collected whole in a recovery pass.
        rows_inserted: Rows inserted in the data tables.
        rows_updated: Rows rewritten with different values.
        rows_quarantined: Rows set aside in quarantine (whole units).
        retries: Retried requests and partition attempts.
        breaker_openings: Circuit-breaker openings.
        errors: Why a pass stopped early (the ledger unreachable), if one did.
    """

    platform: str
    collected: int = 0
    unchanged: int = 0
    restated: int = 0
    failed: int = 0
    exhausted: int = 0
    recovered: int = 0
    replayed: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_quarantined: int = 0
    retries: int = 0
    breaker_openings: int = 0
    errors: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class RunSummary:
    """Everything one run did, for the console, the report and a scheduler.

    Attributes:
        exit_code: 0 only when every partition is complete and every check passed
            (:class:`~resilient_pipeline.checks.CheckExitCode`).
        exit_meaning: What the exit code means, in words.
        report_path: The HTML report written, if any.
        mismatches: Demo only: differences from the fake API's ground truth.
    """

    started_at: dt.datetime
    finished_at: dt.datetime
    platforms: tuple[PlatformStats, ...]
    checks: CheckReport | None
    alerts: tuple[Alert, ...]
    exit_code: int
    exit_meaning: str
    report_path: str | None = None
    alerts_sent: int = 0
    alerts_failed: int = 0
    start: dt.date | None = None
    end: dt.date | None = None
    clients: int = 0
    mismatches: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """Seconds the run took."""
        return (self.finished_at - self.started_at).total_seconds()
