"""Checks, suites and reports: Python and SQL bodies, built-ins, errored checks, exit codes."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import Check, CheckReport, CheckSuite, ConfigurationError, checks
from resilient_pipeline.checks import CheckErrored, CheckExitCode, CheckFailed, CheckResult
from resilient_pipeline.exceptions import CheckError
from resilient_pipeline.testing import FakeClock, capture_events
from tests.strategies import severities

DAY = "2026-11-28"


@pytest.fixture
def kpi_db(tmp_path: object) -> Iterator[sqlite3.Connection]:
    """A file SQLite database with a small KPI table."""
    db = sqlite3.connect(f"{tmp_path}/kpi.db")
    db.execute(
        "CREATE TABLE kpi (client_id INT, date TEXT, platform TEXT, spend REAL, "
        "conversions INT, clicks INT, impressions INT)"
    )
    db.executemany(
        "INSERT INTO kpi VALUES (?, ?, 'meta', ?, ?, ?, ?)",
        [(1, DAY, 120.0, 0, 10, 100), (2, DAY, 0.0, 4, 9, 3), (3, DAY, 50.0, 2, 20, 400)],
    )
    db.commit()
    yield db
    db.close()


def result(name: str, severity: str, status: str) -> CheckResult:
    """A bare result."""
    return CheckResult(name=name, severity=severity, status=status, message="m")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([], CheckExitCode.PASSED),
        ([("a", "critical", "passed")], CheckExitCode.PASSED),
        ([("a", "info", "failed")], CheckExitCode.WARNINGS),
        ([("a", "warning", "failed"), ("b", "info", "passed")], CheckExitCode.WARNINGS),
        ([("a", "warning", "failed"), ("b", "error", "failed")], CheckExitCode.ERRORS),
        ([("a", "critical", "failed")], CheckExitCode.ERRORS),
        ([("a", "critical", "failed"), ("b", "info", "errored")], CheckExitCode.NOT_RUN),
    ],
)
def test_exit_codes(results: list[tuple[str, str, str]], expected: CheckExitCode) -> None:
    """0 passed, 1 warnings, 2 errors/critical, 3 when any check could not run."""
    report = CheckReport(results=tuple(result(*r) for r in results))
    assert expected == report.exit_code


@given(
    st.lists(
        st.tuples(
            severities,
            st.sampled_from(["passed", "failed", "errored"]),
        )
    )
)
def test_a_failed_check_never_exits_zero(results: list[tuple[str, str]]) -> None:
    """Exit code 0 if and only if every check passed."""
    report = CheckReport(results=tuple(result(f"c{i}", *r) for i, r in enumerate(results)))
    assert (report.exit_code == 0) == all(status == "passed" for _, status in results)


def test_sql_check_binds_parameters(kpi_db: sqlite3.Connection) -> None:
    """Check and run params are bound, never formatted; offending rows come back as dicts."""
    check = Check.sql(
        "spend_without_conversions",
        "SELECT client_id, spend FROM kpi WHERE date = :day AND spend > :min AND conversions = 0",
        params={"min": 100},
        message="{count} client(s) spent without converting on {day}",
    )
    outcome = check.run(connection=kpi_db, params={"day": DAY})
    assert ({"client_id": 1, "spend": 120.0},) == outcome.offending
    assert "1 client(s) spent without converting on 2026-11-28" == outcome.message
    hostile = check.run(connection=kpi_db, params={"day": "x' OR '1'='1"})
    assert hostile.passed


def test_sql_check_on_a_missing_table_is_errored_not_passed(kpi_db: sqlite3.Connection) -> None:
    """Bad SQL makes the check errored (exit 3) and the other checks still run."""
    suite = CheckSuite(
        checks=[
            Check.sql("broken", "SELECT * FROM no_such_table"),
            Check.sql("fine", "SELECT * FROM kpi WHERE clicks > impressions"),
        ],
        connection=kpi_db,
    )
    with capture_events() as events:
        report = suite.run()
    assert ["errored", "failed"] == [r.status for r in report.results]
    assert "no such table" in (report.result("broken").error or "")
    assert CheckExitCode.NOT_RUN == report.exit_code
    assert [CheckErrored, CheckFailed] == [
        type(e) for e in events if isinstance(e, (CheckErrored, CheckFailed))
    ]


def test_check_run_raises_check_error_naming_the_check() -> None:
    """Check.run on its own raises CheckError with the cause chained."""

    def crash(rows: list[object]) -> list[object]:
        raise ZeroDivisionError("boom")

    with pytest.raises(CheckError) as info:
        Check.rows("crashy", crash).run(datasets={"rows": []})
    assert "crashy" == info.value.check
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_missing_dataset_is_errored() -> None:
    """A Python check over a dataset nobody provided could not run."""
    report = CheckSuite(checks=[checks.clicks_exceed_impressions()]).run()
    assert "errored" == report.results[0].status


def test_datasets_are_loaded_once_per_run() -> None:
    """A loader shared by several checks is called once per run, with the run's params."""
    calls: list[object] = []

    def load(context: object) -> list[dict[str, object]]:
        calls.append(context.params["day"])  # type: ignore[attr-defined]
        return [{"client_id": 1, "spend": 1.0, "conversions": 1, "clicks": 1, "impressions": 2}]

    suite = CheckSuite(
        checks=[checks.clicks_exceed_impressions(), checks.spend_without_conversions()],
        datasets={"rows": load},
    )
    assert suite.run({"day": DAY}).passed
    assert calls == [DAY]


def test_builtins_over_sql_rows(kpi_db: sqlite3.Connection) -> None:
    """Built-in checks read rows through query_dataset and find the seed's problems."""
    suite = CheckSuite(
        checks=[
            checks.spend_without_conversions(min_spend=100),
            checks.conversions_without_spend(),
            checks.clicks_exceed_impressions(),
            checks.rate_out_of_bounds(maximum=0.10),
            checks.completeness(expected=[1, 2, 3, 4], key="client_id"),
        ],
        connection=kpi_db,
        datasets={"rows": checks.query_dataset("SELECT * FROM kpi WHERE date = :day")},
    )
    report = suite.run({"day": DAY})
    offending = {r.name: [row.get("client_id") for row in r.offending] for r in report.failed}
    assert {
        "spend_without_conversions": [1],
        "conversions_without_spend": [2],
        "clicks_exceed_impressions": [2],
        "conversions_per_clicks_out_of_bounds": [2],
        "completeness": [4],
    } == offending
    assert CheckExitCode.ERRORS == report.exit_code


def test_freshness_uses_the_clock() -> None:
    """A date partition is fresh until max_age after the end of its day."""
    clock = FakeClock(wall_start=dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc).timestamp())
    check = checks.freshness(max_age=dt.timedelta(hours=24))
    suite = CheckSuite(checks=[check], clock=clock)
    late = suite.run(datasets={"rows": [{"date": "2026-11-28"}]}).results[0]
    fresh = suite.run(datasets={"rows": [{"date": "2026-11-29"}, {"date": "2026-11-28"}]})
    assert ("failed", [{"date": "2026-11-28", "age_hours": 36.0}]) == (
        late.status,
        list(late.offending),
    )
    assert fresh.passed


def test_row_count_anomaly_flags_a_drop() -> None:
    """A day with far fewer rows than the trailing median ± k·MAD fails."""
    rows = [{"date": f"2026-11-{d:02d}"} for d in range(1, 28) for _ in range(100 + d % 3)]
    rows += [{"date": "2026-11-28"}] * 60
    report = CheckSuite(checks=[checks.row_count_anomaly(window=14)]).run(datasets={"rows": rows})
    flagged = report.results[0]
    assert ("failed", "2026-11-28", 60) == (
        flagged.status,
        flagged.offending[0]["date"],
        flagged.offending[0]["rows"],
    )
    normal = rows[:-60] + [{"date": "2026-11-28"}] * 101
    assert (
        CheckSuite(checks=[checks.row_count_anomaly(window=14)])
        .run(datasets={"rows": normal})
        .passed
    )


def test_sums_agree_between_daily_and_monthly() -> None:
    """Daily spend summed per month must equal the monthly table; mismatches name the group."""
    daily = [
        {"client_id": 1, "date": "2026-11-01", "spend": 10.0},
        {"client_id": 1, "date": "2026-11-02", "spend": 5.0},
        {"client_id": 2, "date": "2026-11-01", "spend": 7.0},
    ]
    monthly = [
        {"client_id": 1, "month": "2026-11", "spend": 15.0},
        {"client_id": 2, "month": "2026-11", "spend": 9.0},
    ]
    check = checks.sums_agree(
        column="spend",
        detail_key=lambda r: (r["client_id"], r["date"][:7]),
        summary_key=("client_id", "month"),
    )
    outcome = check.run(datasets={"detail": daily, "summary": monthly})
    assert [{"group": (2, "2026-11"), "detail": 7.0, "summary": 9.0, "difference": -2.0}] == list(
        outcome.offending
    )


def test_report_alerts_are_keyed_per_check_and_period() -> None:
    """Alerts carry the check's severity (errored ones at least error) and a stable key."""
    report = CheckReport(
        results=(result("a", "warning", "failed"), result("b", "info", "errored")),
        params={"day": DAY},
        suite="daily",
    )
    assert [
        ("warning", "daily/a/day=2026-11-28"),
        ("error", "daily/b/day=2026-11-28"),
    ] == [(a.severity, a.key) for a in report.alerts()]


def test_report_renders_text_and_json() -> None:
    """The summary names failures and their action; JSON carries the exit code."""
    check = Check.rows("neg", lambda rows: [r for r in rows if r["x"] < 0], action="fix it")
    report = CheckSuite(checks=[check]).run(datasets={"rows": [{"x": -1}]})
    assert "FAILED [error] neg: 1 offending row(s)" in report.summary()
    assert "action: fix it" in report.summary()
    assert '"exit_code": 2' in report.to_json()


@pytest.mark.parametrize(
    ("make", "option"),
    [
        (lambda: Check.rows("", lambda rows: rows), "name"),
        (lambda: Check.rows("x", lambda rows: rows, severity="fatal"), "severity"),
        (lambda: Check.sql("x", "  "), "query"),
        (lambda: Check.rows("x", lambda rows: rows, max_offending=-1), "max_offending"),
        (lambda: CheckSuite(checks=[Check.rows("x", list), Check.rows("x", list)]), "checks"),
        (lambda: checks.freshness(max_age=dt.timedelta(0)), "max_age"),
        (lambda: checks.rate_out_of_bounds(minimum=1, maximum=0), "maximum"),
    ],
)
def test_bad_definitions_are_rejected(make: object, option: str) -> None:
    """Invalid check definitions raise ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError) as info:
        make()  # type: ignore[operator]
    assert option == info.value.option


@pytest.mark.postgres
def test_sql_checks_on_postgres(postgres_dsn: str, postgres_schema: str) -> None:
    """The same :name SQL runs on PostgreSQL; an errored check does not poison the next one."""
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        conn.execute(f'SET search_path TO "{postgres_schema}"')
        conn.execute("CREATE TABLE kpi (client_id INT, date DATE, clicks INT, impressions INT)")
        conn.execute("INSERT INTO kpi VALUES (1, '2026-11-28', 9, 3), (2, '2026-11-28', 1, 5)")
        suite = CheckSuite(
            checks=[
                Check.sql("broken", "SELECT * FROM missing"),
                Check.sql(
                    "clicks",
                    "SELECT client_id FROM kpi WHERE date = :day::date AND clicks > impressions "
                    "AND 'a%' LIKE 'a%'",
                ),
            ],
            connection=conn,
        )
        report = suite.run({"day": DAY})
    assert ["errored", "failed"] == [r.status for r in report.results]
    assert ({"client_id": 1},) == report.result("clicks").offending
