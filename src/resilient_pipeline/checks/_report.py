"""Check results and the report a scheduler can act on (exit codes, text, JSON, alerts)."""

from __future__ import annotations

import enum
import json
from typing import Any, Literal, TypeAlias

import attrs

from resilient_pipeline.alerting import Alert, Severity, severity_rank

__all__ = ["CheckExitCode", "CheckReport", "CheckResult"]

CheckStatus: TypeAlias = Literal["passed", "failed", "errored"]


class CheckExitCode(enum.IntEnum):
    """The command-line runner's exit codes; a failed check never exits 0.

    Examples:
        >>> int(CheckExitCode.ERRORS)
        2
    """

    PASSED = 0
    """Every check ran and passed."""
    WARNINGS = 1
    """Only ``info`` or ``warning`` checks failed."""
    ERRORS = 2
    """An ``error`` or ``critical`` check failed."""
    NOT_RUN = 3
    """A check (or the whole suite) could not run: its outcome is unknown."""
    USAGE = 64
    """The command line itself was wrong (``EX_USAGE``)."""


@attrs.frozen(kw_only=True)
class CheckResult:
    """The result of one check.

    Attributes:
        name: The check's name.
        severity: The check's severity.
        status: ``"passed"``, ``"failed"`` or ``"errored"`` (could not run).
        message: What was found, or why it could not run.
        action: What to do about it.
        offending: The offending rows (at most the check's ``max_offending``).
        offending_count: How many rows offended in all.
        error: Why an errored check could not run, secrets masked.
        duration: Seconds the check took.

    Examples:
        >>> CheckResult(name="c", severity="info", status="passed", message="passed").passed
        True
    """

    name: str
    severity: Severity
    status: CheckStatus
    message: str
    action: str = ""
    offending: tuple[dict[str, Any], ...] = ()
    offending_count: int = 0
    error: str | None = None
    duration: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether the check ran and found nothing."""
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {**attrs.asdict(self, recurse=False), "offending": list(self.offending)}


@attrs.frozen(kw_only=True)
class CheckReport:
    """Every check's result for one run, and what a scheduler should do about it.

    Examples:
        >>> report = CheckReport(results=(
        ...     CheckResult(name="a", severity="warning", status="failed", message="2 rows"),
        ... ))
        >>> report.exit_code, report.passed, [r.name for r in report.failed]
        (<CheckExitCode.WARNINGS: 1>, False, ['a'])
    """

    results: tuple[CheckResult, ...]
    params: dict[str, Any] = attrs.field(factory=dict)
    suite: str = "checks"

    @property
    def passed(self) -> bool:
        """Whether every check ran and passed."""
        return all(result.passed for result in self.results)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        """The checks that ran and found offending rows."""
        return tuple(r for r in self.results if r.status == "failed")

    @property
    def errored(self) -> tuple[CheckResult, ...]:
        """The checks that could not run."""
        return tuple(r for r in self.results if r.status == "errored")

    @property
    def exit_code(self) -> CheckExitCode:
        """3 if a check could not run, else 2 for error/critical failures, 1 for others, 0."""
        if self.errored:
            # Unknown beats bad: a check that cannot run hides whatever it guards.
            return CheckExitCode.NOT_RUN
        ranks = [severity_rank(r.severity) for r in self.failed]
        if not ranks:
            return CheckExitCode.PASSED
        if max(ranks) >= severity_rank("error"):
            return CheckExitCode.ERRORS
        return CheckExitCode.WARNINGS

    def result(self, name: str) -> CheckResult:
        """The result of the check called ``name``."""
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    def summary(self) -> str:
        """A human-readable text report, one block per check that did not pass.

        Examples:
            >>> print(CheckReport(results=()).summary())
            checks: 0 passed, 0 failed, 0 errored
        """
        passed = sum(r.passed for r in self.results)
        lines = [
            f"{self.suite}: {passed} passed, {len(self.failed)} failed, {len(self.errored)} errored"
        ]
        for r in self.results:
            if r.passed:
                continue
            label = "ERRORED" if r.status == "errored" else "FAILED"
            lines.append(f"  {label} [{r.severity}] {r.name}: {r.message}")
            lines.extend(f"      {row}" for row in r.offending[:10])
            if r.offending_count > 10:
                lines.append(f"      ... {r.offending_count - 10} more")
            if r.action:
                lines.append(f"      action: {r.action}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (what ``--format json`` prints)."""
        return {
            "suite": self.suite,
            "params": self.params,
            "passed": self.passed,
            "exit_code": int(self.exit_code),
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (dates and other values as strings)."""
        return json.dumps(self.to_dict(), default=str, indent=2)

    def alerts(self, *, key_prefix: str | None = None) -> list[Alert]:
        """One :class:`Alert` per check that failed or could not run.

        The key is the suite, the check and the run's params, so the same
        failure for the same period is deduplicated by an
        :class:`~resilient_pipeline.Alerter`.

        Examples:
            >>> report = CheckReport(results=(
            ...     CheckResult(name="fresh", severity="critical", status="failed",
            ...                 message="latest partition is 3 days old"),
            ... ), params={"day": "2026-11-28"})
            >>> [(a.severity, a.title, a.key) for a in report.alerts()]
            [('critical', 'checks: fresh failed', 'checks/fresh/day=2026-11-28')]
        """
        prefix = key_prefix or self.suite
        period = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        alerts = []
        for r in self.results:
            if r.passed:
                continue
            errored = r.status == "errored"
            severity: Severity = r.severity
            if errored and severity_rank(severity) < severity_rank("error"):
                severity = "error"  # the monitoring itself is broken
            alerts.append(
                Alert(
                    severity=severity,
                    title=f"{self.suite}: {r.name} {'could not run' if errored else 'failed'}",
                    message=r.message,
                    action=r.action,
                    details={
                        "check": r.name,
                        "params": self.params,
                        "offending_count": r.offending_count,
                        "offending": list(r.offending[:20]),
                    },
                    key=f"{prefix}/{r.name}/{period}" if period else f"{prefix}/{r.name}",
                )
            )
        return alerts
