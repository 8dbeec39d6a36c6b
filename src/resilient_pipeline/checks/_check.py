"""Consistency checks: a check finds offending rows; a suite runs checks and reports.

A check's body is SQL (its result rows are the offending rows) or a Python
function over rows. Either way the outcome is the same shape: the offending
rows (with their key and values), a message and a suggested action. A check
that cannot run (bad SQL, a missing table, a crashing function) is reported
as *errored*, never as passed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

import anyio.to_thread
import attrs

from resilient_pipeline._core import (
    Clock,
    Event,
    EventHandler,
    describe_error,
    emit,
    integer,
    non_empty_str,
    normalize_handlers,
    resolve_clock,
)
from resilient_pipeline.alerting import Severity, check_severity
from resilient_pipeline.exceptions import CheckError, ConfigurationError

from ._query import fetch_rows
from ._report import CheckReport, CheckResult

__all__ = [
    "Check",
    "CheckContext",
    "CheckErrored",
    "CheckFailed",
    "CheckOutcome",
    "CheckResult",
    "CheckSuite",
    "Dataset",
    "Row",
]

Row: TypeAlias = Mapping[str, Any]


def _rows(rows: Iterable[Row]) -> tuple[dict[str, Any], ...]:
    return tuple(dict(row) for row in rows)


@attrs.frozen
class CheckOutcome:
    """What a check body returns: the offending rows, and optionally its own message.

    Examples:
        >>> CheckOutcome([{"client_id": 7}], message="client 7 is missing").passed
        False
    """

    offending: tuple[dict[str, Any], ...] = attrs.field(converter=_rows)
    message: str | None = None

    @property
    def passed(self) -> bool:
        """Whether nothing offended."""
        return not self.offending


@attrs.define(eq=False)
class CheckContext:
    """What a check body sees: the run's parameters, its connection, its datasets.

    Datasets are loaded at most once per run, when a check first asks for them.
    """

    params: Mapping[str, Any]
    connection: Any = None
    datasets: Mapping[str, Dataset] = attrs.field(factory=dict)
    clock: Clock | None = None
    _loaded: dict[str, list[Row]] = attrs.field(factory=dict, init=False)

    def rows(self, dataset: str) -> list[Row]:
        """The rows of ``dataset`` (a sequence of rows, or a loader called with this context)."""
        if dataset not in self._loaded:
            if dataset not in self.datasets:
                raise KeyError(f"no dataset named {dataset!r} (have: {sorted(self.datasets)})")
            source = self.datasets[dataset]
            loaded = source(self) if callable(source) else source
            rows: list[Row] = [dict(row) for row in loaded]
            self._loaded[dataset] = rows
        return self._loaded[dataset]

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run ``sql`` (``:name`` parameters) on the connection; rows as dicts."""
        if self.connection is None:
            raise ConfigurationError.for_option(
                "connection", None, "an SQL check needs a database connection"
            )
        return list(fetch_rows(self.connection, sql, {**self.params, **(params or {})}))

    def now(self) -> float:
        """Wall-clock seconds, from the injected clock."""
        return resolve_clock(self.clock).time()


Dataset: TypeAlias = "Iterable[Row] | Callable[[CheckContext], Iterable[Row]]"
Body: TypeAlias = Callable[[CheckContext], CheckOutcome]


@attrs.frozen(kw_only=True)
class Check:
    """A named consistency check with a severity, a body, a message and an action.

    Build one with :meth:`Check.sql` or :meth:`Check.rows` (or the built-ins in
    :mod:`resilient_pipeline.checks`); ``body`` is the general form: a function
    of the :class:`CheckContext` returning a :class:`CheckOutcome`.

    Args:
        name: Unique within a suite; used in reports, alerts and exit codes.
        severity: ``"info"``, ``"warning"``, ``"error"`` (default) or ``"critical"``.
        body: The check itself.
        message: Template for a failure: ``{count}`` and the run's params.
        action: What a person should do when it fails.
        description: What the check guards against.
        max_offending: Offending rows kept in the report (the count is exact).

    Examples:
        >>> check = Check.rows("clicks_le_impressions",
        ...                    lambda rows: [r for r in rows if r["clicks"] > r["impressions"]],
        ...                    severity="warning")
        >>> check.run(datasets={"rows": [{"clicks": 9, "impressions": 3}]}).status
        'failed'
    """

    name: str = attrs.field(validator=non_empty_str(blank=False))
    severity: Severity = attrs.field(default="error", validator=lambda _i, _a, v: check_severity(v))
    body: Body
    message: str = "{count} offending row(s)"
    action: str = ""
    description: str = ""
    max_offending: int = attrs.field(default=100, validator=integer(ge=0))

    @classmethod
    def sql(
        cls,
        name: str,
        query: str,
        *,
        params: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Check:
        """A check whose ``query`` returns the offending rows; ``:name`` parameters are bound.

        Parameters come from ``params`` and then the run's params (e.g. ``:period``).
        Values are always bound, never formatted into the SQL.

        Examples:
            >>> import sqlite3
            >>> db = sqlite3.connect(":memory:")
            >>> _ = db.execute("CREATE TABLE kpi (day TEXT, spend REAL, conversions INT)")
            >>> _ = db.execute("INSERT INTO kpi VALUES ('2026-11-28', 50.0, 0)")
            >>> check = Check.sql("spend_without_conversions",
            ...     "SELECT day, spend FROM kpi WHERE day = :day AND spend > :min_spend "
            ...     "AND conversions = 0", params={"min_spend": 10})
            >>> check.run(connection=db, params={"day": "2026-11-28"}).offending
            ({'day': '2026-11-28', 'spend': 50.0},)
            >>> db.close()
        """
        if not isinstance(query, str) or not query.strip():  # type: ignore[redundant-expr]
            raise ConfigurationError.for_option("query", query, "must be a non-empty SQL str")
        bound = dict(params or {})

        def body(context: CheckContext) -> CheckOutcome:
            return CheckOutcome(context.query(query, bound))

        return cls(name=name, body=body, **options)

    @classmethod
    def rows(
        cls,
        name: str,
        fn: Callable[[list[Row]], Iterable[Row] | CheckOutcome],
        *,
        dataset: str = "rows",
        **options: Any,
    ) -> Check:
        """A check that is a Python function over the rows of ``dataset``.

        ``fn`` returns the offending rows (or a :class:`CheckOutcome`).
        """
        if not callable(fn):
            raise ConfigurationError.for_option("fn", fn, "must be callable")

        def body(context: CheckContext) -> CheckOutcome:
            result = fn(context.rows(dataset))
            return result if isinstance(result, CheckOutcome) else CheckOutcome(result)

        return cls(name=name, body=body, **options)

    def run(
        self,
        *,
        params: Mapping[str, Any] | None = None,
        connection: Any = None,
        datasets: Mapping[str, Dataset] | None = None,
        context: CheckContext | None = None,
    ) -> CheckResult:
        """Run this check alone.

        Raises:
            CheckError: The check could not run (the cause is chained).
        """
        if context is None:
            context = CheckContext(params or {}, connection, datasets or {})
        clock = resolve_clock(context.clock)
        started = clock.monotonic()
        try:
            outcome = self.body(context)
        except Exception as exc:
            raise CheckError(f"{self.name}: {describe_error(exc)}", check=self.name) from exc
        elapsed = clock.monotonic() - started
        count = len(outcome.offending)
        if outcome.passed:
            message = "passed"
        elif outcome.message is not None:
            message = outcome.message
        else:
            try:
                message = self.message.format(count=count, check=self.name, **context.params)
            except (KeyError, IndexError, ValueError):
                message = f"{count} offending row(s)"
        return CheckResult(
            name=self.name,
            severity=self.severity,
            status="passed" if outcome.passed else "failed",
            message=message,
            action="" if outcome.passed else self.action,
            offending=outcome.offending[: self.max_offending],
            offending_count=count,
            duration=elapsed,
        )


# --------------------------------------------------------------------- events
@attrs.frozen(kw_only=True)
class CheckFailed(Event):
    """A check ran and found offending rows."""

    logger_name = "resilient_pipeline.checks"
    level = logging.WARNING
    template = "{source}: check {check} ({severity}) failed: {summary}"

    check: str
    severity: str
    summary: str
    offending_count: int


@attrs.frozen(kw_only=True)
class CheckErrored(Event):
    """A check could not run; its outcome is unknown."""

    logger_name = "resilient_pipeline.checks"
    level = logging.ERROR
    template = "{source}: check {check} could not run: {error}"

    check: str
    error: str


def _checks(value: Iterable[Check]) -> tuple[Check, ...]:
    checks = tuple(value)
    names = [check.name for check in checks]
    for check in checks:
        if not isinstance(check, Check):
            raise ConfigurationError.for_option("checks", check, "must be Check objects")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError.for_option("checks", duplicates, "check names must be unique")
    return checks


@attrs.frozen(kw_only=True)
class CheckSuite:
    """Checks run together, with the data sources they share.

    Args:
        checks: The checks, with unique names.
        connection: A database connection for SQL checks (sqlite3, psycopg, or a store).
        datasets: Named rows (or loaders called with the :class:`CheckContext`)
            for Python checks.
        name: The suite's name in events and reports.
        clock: Where time comes from.
        on_event: Handlers for the suite's events.

    Examples:
        >>> ok = Check.rows("non_empty", lambda rows: [] if rows else [{"rows": 0}])
        >>> suite = CheckSuite(checks=[ok], datasets={"rows": [{"spend": 1}]})
        >>> int(suite.run().exit_code)
        0
    """

    checks: tuple[Check, ...] = attrs.field(converter=_checks)
    connection: Any = None
    datasets: Mapping[str, Dataset] = attrs.field(factory=dict)
    name: str = "checks"
    clock: Clock | None = None
    on_event: tuple[EventHandler, ...] = attrs.field(default=(), converter=normalize_handlers)

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        connection: Any = None,
        datasets: Mapping[str, Dataset] | None = None,
    ) -> CheckReport:
        """Run every check (one failing or erroring never stops the others)."""
        context = CheckContext(
            dict(params or {}),
            connection if connection is not None else self.connection,
            {**self.datasets, **(datasets or {})},
            self.clock,
        )
        results = [self._run_one(check, context) for check in self.checks]
        return CheckReport(results=tuple(results), params=dict(context.params), suite=self.name)

    async def arun(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        connection: Any = None,
        datasets: Mapping[str, Dataset] | None = None,
    ) -> CheckReport:
        """:meth:`run` from async code (in a worker thread: database drivers block)."""

        def run() -> CheckReport:
            return self.run(params, connection=connection, datasets=datasets)

        return await anyio.to_thread.run_sync(run)

    def _run_one(self, check: Check, context: CheckContext) -> CheckResult:
        try:
            result = check.run(context=context)
        except CheckError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
            error = describe_error(cause)
            emit(CheckErrored(source=self.name, check=check.name, error=error), self.on_event)
            return CheckResult(
                name=check.name,
                severity=check.severity,
                status="errored",
                message=f"could not run: {error}",
                action="Fix the check or its data source, then re-run; its outcome is unknown.",
                error=error,
            )
        if not result.passed:
            emit(
                CheckFailed(
                    source=self.name,
                    check=check.name,
                    severity=check.severity,
                    summary=result.message,
                    offending_count=result.offending_count,
                ),
                self.on_event,
            )
        return result
