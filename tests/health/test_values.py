"""Health values: outcomes, results, the overall status and the report's JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.health import HealthOutcome, HealthReport, HealthResult, HealthStatus
from resilient_pipeline.health._values import judge, timed_out

STATUSES: list[HealthStatus] = ["ok", "degraded", "failing"]


def result(name: str, status: HealthStatus, *, critical: bool = True) -> HealthResult:
    return HealthResult(
        name=name, status=status, detail="", latency=0.0, checked_at=0.0, critical=critical
    )


def expected_overall(results: list[HealthResult]) -> HealthStatus:
    """Ground truth, phrased as the docs phrase it rather than by rank."""
    if any(r.status == "failing" and r.critical for r in results):
        return "failing"
    if any(r.status != "ok" for r in results):
        return "degraded"
    return "ok"


@given(
    st.lists(
        st.tuples(st.sampled_from(STATUSES), st.booleans()),
        max_size=6,
    )
)
def test_overall_is_worst_with_non_critical_failures_only_degrading(
    statuses: list[tuple[HealthStatus, bool]],
) -> None:
    """The report's status: a critical failure fails it, anything else not ok degrades it."""
    results = [result(f"c{i}", s, critical=c) for i, (s, c) in enumerate(statuses)]
    report = HealthReport(results=tuple(results), checked_at=0.0)
    expected = expected_overall(results)
    assert expected == report.status
    assert (expected != "failing") == report.ready
    assert (503 if expected == "failing" else 200) == report.http_status


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, ("ok", "")),
        (True, ("ok", "")),
        ("12 ms", ("ok", "12 ms")),
        (HealthOutcome("degraded", "lagging"), ("degraded", "lagging")),
        (HealthOutcome("failing"), ("failing", "")),
        (False, ("failing", "the probe returned False")),
        (
            42,
            ("failing", "the probe returned a int; expected None, a str or a HealthOutcome"),
        ),
    ],
)
def test_judge_maps_each_kind_of_answer(answer: object, expected: tuple[str, str]) -> None:
    """Each kind of probe answer becomes the documented status and detail."""
    got = judge("c", True, 1.0, answer, None, 0.25, 100.0)
    assert expected == (got.status, got.detail)
    assert (0.25, 100.0, True) == (got.latency, got.checked_at, got.critical)


def test_judge_reports_errors_and_timeouts_as_failing() -> None:
    """A raised error is failing with its type and message; no answer in time names the timeout."""
    raised = judge("c", True, 1.0, None, ConnectionError("refused"), 0.1, 0.0)
    late = judge("c", False, 0.2, timed_out(), None, 0.2, 0.0)
    assert ("failing", "ConnectionError: refused") == (raised.status, raised.detail)
    assert ("failing", "no answer within 0.2 s", False) == (late.status, late.detail, late.critical)


def test_details_are_redacted_everywhere() -> None:
    """A password in an error, an outcome or a returned text never reaches the detail."""
    dsn = "postgresql://etl:hunter2@db.internal/kpi"
    details = [
        judge("c", True, 1.0, None, OSError(f"{dsn} refused"), 0.0, 0.0).detail,
        judge("c", True, 1.0, f"connected to {dsn}", None, 0.0, 0.0).detail,
        HealthOutcome("failing", f"cannot reach {dsn}").detail,
    ]
    assert [] == [d for d in details if "hunter2" in d]
    assert all("postgresql://etl:***@db.internal/kpi" in d for d in details)


def test_long_details_are_cut_after_masking() -> None:
    """A page-long error keeps 1000 characters; a secret straddling the cut is still masked."""
    dsn = "postgresql://etl:" + "p" * 40 + "@db/kpi"
    text = "x" * 980 + dsn + " refused"
    detail = judge("c", True, 1.0, None, OSError(text), 0.0, 0.0).detail
    expected = ("OSError: " + "x" * 980 + "postgresql://etl:***@db/kpi refused")[:999] + "\u2026"
    assert expected == detail
    assert "y" * 1000 == judge("c", True, 1.0, "y" * 1000, None, 0.0, 0.0).detail


def test_outcome_rejects_an_unknown_status() -> None:
    """A status outside ok/degraded/failing is a ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError) as info:
        HealthOutcome("warning")  # type: ignore[arg-type]
    assert ("status", "warning") == (info.value.option, info.value.value)


def test_report_json_has_every_check_by_name() -> None:
    """to_dict() is the overall status, the time, and every check's fields under its name."""
    a = HealthResult(
        name="db", status="ok", detail="up", latency=0.01, checked_at=5.0, critical=True
    )
    b = HealthResult(
        name="cache", status="failing", detail="down", latency=0.2, checked_at=6.0, critical=False
    )
    report = HealthReport(results=(a, b), checked_at=7.0)
    expected = {
        "status": "degraded",
        "checked_at": 7.0,
        "checks": {
            "db": {
                "status": "ok",
                "detail": "up",
                "latency": 0.01,
                "checked_at": 5.0,
                "critical": True,
            },
            "cache": {
                "status": "failing",
                "detail": "down",
                "latency": 0.2,
                "checked_at": 6.0,
                "critical": False,
            },
        },
    }
    assert expected == json.loads(json.dumps(report.to_dict()))
    assert b == report.result("cache")
    with pytest.raises(KeyError):
        report.result("nope")
