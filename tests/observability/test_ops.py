"""The shipped Grafana dashboard and Prometheus alert rules use only metrics the bridges export."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from resilient_pipeline import subscribe
from resilient_pipeline.observability import METRICS, PrometheusMetrics
from resilient_pipeline.testing import FakeClock, set_testing

from .test_metrics import run_backfill, run_workload

OPS = Path(__file__).parents[2] / "docs" / "ops"
METRIC = re.compile(r"\bresilient_pipeline_[a-z_]+")


def exported_samples() -> set[str]:
    """Every sample name a real registry shows after real primitives emitted events."""
    registry = CollectorRegistry()
    clock = FakeClock(wall_start=1_800_000_000.0)
    with set_testing(clock=clock), subscribe(PrometheusMetrics(registry=registry)):
        run_workload(clock)
        run_backfill(clock)
    return {sample.name for metric in registry.collect() for sample in metric.samples}


def alert_rules() -> list[dict[str, Any]]:
    """The alert rules, parsed with PyYAML when installed, else read line by line."""
    text = (OPS / "prometheus-alerts.yml").read_text()
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError:  # pragma: no cover - PyYAML is installed with the dev tools
        rules: list[dict[str, Any]] = []
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith("- alert:"):
                rules.append({"alert": stripped.split(":", 1)[1].strip(), "expr": ""})
            elif rules and not stripped.startswith(("#", "summary", "runbook", "severity")):
                rules[-1]["expr"] += " " + stripped
        return rules
    document = yaml.safe_load(text)
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def samples() -> set[str]:
    return exported_samples()


def test_every_metric_is_exported_by_a_real_run(samples: set[str]) -> None:
    """The workload exercises every built-in metric (so the checks below mean something)."""
    names = {spec.exported("resilient_pipeline") for spec in METRICS}
    missing = {n for n in names if not any(s.startswith(n) for s in samples)}
    assert set() == missing


def test_dashboard_queries_only_exported_metrics(samples: set[str]) -> None:
    """Each panel query names metrics the bridge really exports."""
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert len(used) >= 12
    assert set() == used - samples
    assert len(dashboard["panels"]) == len({panel["id"] for panel in dashboard["panels"]})


def test_alert_rules_cover_the_three_that_matter(samples: set[str]) -> None:
    """Stale data, an open breaker and failing checks; each on exported metrics only."""
    rules = alert_rules()
    assert ["StalePipelineData", "CircuitBreakerOpen", "DataChecksFailing"] == [
        rule["alert"] for rule in rules
    ]
    used = {name for rule in rules for name in METRIC.findall(rule["expr"])}
    assert {
        "resilient_pipeline_last_success_timestamp_seconds",
        "resilient_pipeline_breaker_state",
        "resilient_pipeline_check_results_total",
    } == used
    assert set() == used - samples


def test_the_guide_documents_every_metric() -> None:
    """docs/observability.md names every built-in metric, with its labels."""
    guide = (OPS.parent / "observability.md").read_text()
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in guide.splitlines()
        if "| `resilient_pipeline_" in line
    }
    for spec in METRICS:
        row = rows[spec.exported("resilient_pipeline")]
        assert [f"`{label}`" in row for label in spec.labels] == [True] * len(spec.labels)
