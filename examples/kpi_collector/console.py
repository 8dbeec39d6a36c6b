"""What the operator sees: quiet logging, one line per problem, a summary table at the end.

* Logging is stdlib's, on stderr, secrets masked (``RedactingFilter``), as text
  or one JSON object per line (``JsonFormatter``). The level comes from
  ``--log-level`` or ``LOG_LEVEL``; by default only problems show (WARNING and
  up), and a request that failed and was retried successfully is counted in the
  summary, not listed.
* A progress bar per platform on a terminal (``backfill``'s own, ``rich``);
  off a terminal, one plain line per pass.
* The summary table goes to stdout; its last line is the report's path when
  there is one.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.observability import configure_logging, redact

if TYPE_CHECKING:
    from resilient_pipeline.ledger import BackfillReport

    from .summary import RunSummary

__all__ = ["LEVELS", "print_pass", "print_summary", "render_summary", "setup_logging"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Faults that were retried, partitions that failed and were recovered later in the run,
# units set aside and collected again: normal on a flaky API. They are counted in the
# summary; what is still wrong at the end is an alert (one line each, on
# resilient_pipeline.alerts). LOG_LEVEL / --log-level shows them all.
_CHATTY = (
    "resilient_pipeline.retry",
    "resilient_pipeline.breaker",
    "resilient_pipeline.ledger",
    "resilient_pipeline.limits",
    "resilient_pipeline.validation",
    "resilient_pipeline.storage",
    "resilient_pipeline.checks",
    "httpx",
    "httpcore",
)


class _Once(logging.Formatter):
    """``LEVEL logger: first line of the message``: one line per problem."""

    def format(self, record: logging.LogRecord) -> str:
        lines = redact(record.getMessage()).splitlines()
        return f"{record.levelname} {record.name}: {lines[0] if lines else ''}"


def setup_logging(
    level: str | None = None, fmt: str = "text", stream: IO[str] | None = None
) -> str:
    """Configure logging through the library's ``configure_logging``; the level in effect.

    ``level`` (``--log-level``) wins over ``LOG_LEVEL``; without either only
    problems are shown, one line each. Secrets are masked before any handler
    sees a record. An unknown level is a ``ConfigurationError`` naming it.
    """
    chosen = (level or os.environ.get("LOG_LEVEL") or "").strip().upper()
    explicit = bool(chosen)
    chosen = chosen or "WARNING"
    if chosen not in LEVELS:
        raise ConfigurationError(
            f"LOG_LEVEL={chosen!r} is not a log level: choose from {', '.join(LEVELS)}",
            option="LOG_LEVEL",
            value=chosen,
        )
    handler = configure_logging(
        chosen, format="json" if fmt == "json" else "console", stream=stream or sys.stderr
    )
    if fmt != "json" and not explicit:
        handler.setFormatter(_Once())
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET if explicit else logging.CRITICAL)
    return chosen


def print_pass(kind: str, report: BackfillReport, *, out: IO[str] | None = None) -> None:
    """One line per backfill pass (its failures are logged and alerted separately)."""
    counts = report.counts()
    failed = counts["failed"] + counts["exhausted"] + counts["unrecorded"]
    line = (
        f"{report.source}: {kind} pass: {counts['new']} new, {counts['unchanged']} unchanged, "
        f"{counts['restated']} restated, {failed} failed"
    )
    if counts["stale"]:
        line += f", {counts['stale']} look-back re-check(s) failed"
    line += f" ({report.duration:.1f} s)"
    print(line, file=out or sys.stderr, flush=True)


_ROWS = (
    ("collected", "partitions collected"),
    ("unchanged", "  unchanged (look-back)"),
    ("restated", "  restated"),
    ("failed", "  still failing"),
    ("exhausted", "  out of attempts"),
    ("recovered", "  recovered in this run"),
    ("replayed", "  of which quarantined first"),
    ("rows_inserted", "rows inserted"),
    ("rows_updated", "rows updated"),
    ("rows_quarantined", "rows quarantined"),
    ("retries", "retries"),
    ("breaker_openings", "breaker openings"),
)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _grid(summary: RunSummary) -> tuple[list[str], list[list[str]]]:
    """One row per count, one column per platform (narrow enough for any terminal)."""
    header = ["", *(stats.platform for stats in summary.platforms)]
    rows = [
        [title, *(str(getattr(stats, field)) for stats in summary.platforms)]
        for field, title in _ROWS
    ]
    return header, rows


def render_summary(summary: RunSummary) -> str:
    """The end-of-run summary as plain text; the report's path is the last line."""
    lines = []
    span = f"{summary.start} .. {summary.end}" if summary.start else ""
    lines.append(
        f"KPI collection {span}: {summary.clients} client(s), "
        f"{len(summary.platforms)} platform(s), {summary.duration:.1f} s"
    )
    lines += _table(*_grid(summary))
    report = summary.checks
    if report is not None:
        passed = sum(1 for r in report.results if r.passed)
        lines.append(
            f"checks: {passed} passed, {len(report.failed)} failed, "
            f"{len(report.errored)} could not run (of {len(report.results)})"
        )
        names = ", ".join(r.name for r in report.results if r.passed)
        if names:
            lines += textwrap.wrap(
                f"passed: {names}", width=100, initial_indent="  ", subsequent_indent="    "
            )
        for result in report.results:
            if not result.passed:
                first = redact(result.message).splitlines()[0] if result.message else ""
                lines.append(
                    f"  {result.status.upper()} [{result.severity}] {result.name}: {first}"
                )
    if summary.mismatches:
        lines.append(f"ground truth: {len(summary.mismatches)} difference(s), e.g.:")
        lines += [f"  {m}" for m in summary.mismatches[:5]]
    lines.append(f"alerts sent: {summary.alerts_sent} (delivery failed: {summary.alerts_failed})")
    for alert in summary.alerts:
        lines.append(f"  [{alert.severity}] {redact(alert.title)}")
    lines.append(f"exit code {summary.exit_code}: {summary.exit_meaning}")
    if summary.report_path:
        lines.append(f"report: {summary.report_path}")
    return "\n".join(lines)


def print_summary(summary: RunSummary, *, out: IO[str] | None = None) -> None:
    """Print the summary: a rich table on a terminal (with the ``progress`` extra), else text."""
    stream = out or sys.stdout
    if stream.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            text = render_summary(summary).splitlines()
            header, rows = _grid(summary)
            table = Table(title=text[0], title_justify="left")
            for index, title in enumerate(header):
                table.add_column(title, justify="left" if index == 0 else "right")
            for row in rows:
                table.add_row(*row)
            rich = Console(file=stream, highlight=False)
            rich.print(table)
            for line in text[3 + len(rows) :]:
                rich.print(line, markup=False)
            return
    print(render_summary(summary), file=stream, flush=True)
