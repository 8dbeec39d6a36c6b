"""benchmarks/run_all.py: ``--only`` with ``--write-docs`` replaces only the modules it ran."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script as a module, writing to a docs file of the test's own."""
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_all", module)
    spec.loader.exec_module(module)
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\n<!-- run_all:begin -->\n"
        "- date: 2026-12-01 10:00 UTC, commit aaaaaaa\n"
        "- rows of `bench_b`: from the earlier run of 2026-11-30 09:00 UTC, commit 0000000\n\n"
        "| benchmark | capability | goal | measured ratio (spread) | met |\n"
        "| --- | --- | --- | --- | --- |\n"
        "| `bench_a` | a old | <= 1x | 2.00x (1.90-2.10, 5 rounds) | **not met** |\n"
        "| `bench_b` | b | <= 1x | 0.50x (0.40-0.60, 5 rounds) | **met** |\n"
        "| `bench_c` | c | <= 1x | 0.70x (0.60-0.80, 5 rounds) | **met** |\n\n"
        "2 of 3 goals met.\n<!-- run_all:end -->\n\n## Below\nkept\n"
    )
    monkeypatch.setattr(module, "DOCS", docs)
    return module


def _goal(ratio: float) -> dict[str, Any]:
    return {
        "capability": "a new",
        "goal": "<= 1x",
        "ratio": ratio,
        "low": ratio,
        "high": ratio,
        "rounds": 3,
        "limit": 1.0,
        "higher_is_better": False,
    }


def test_only_replaces_its_own_rows_and_keeps_where_the_others_came_from(
    run_all: ModuleType,
) -> None:
    """Rows of modules not run stay, each credited to the run that measured it."""
    kept, origin = run_all.kept_rows({"bench_a"})
    table = run_all.render({"bench_a": {"status": "ok", "goals": [_goal(0.9)]}}, kept)
    run_all.write_docs("\n".join(["- date: NOW", *run_all.provenance(origin)]) + f"\n\n{table}")
    text = run_all.DOCS.read_text()
    expected_table = (
        "| `bench_a` | a new | <= 1x | 0.90x (0.90-0.90, 3 rounds) | **met** |\n"
        "| `bench_b` | b | <= 1x | 0.50x (0.40-0.60, 5 rounds) | **met** |\n"
        "| `bench_c` | c | <= 1x | 0.70x (0.60-0.80, 5 rounds) | **met** |\n\n"
        "3 of 3 goals met.\n"
    )
    assert expected_table in text
    assert "a old" not in text
    assert (
        "- rows of `bench_b`: from the earlier run of 2026-11-30 09:00 UTC, commit 0000000\n"
        "- rows of `bench_c`: from the earlier run of 2026-12-01 10:00 UTC, commit aaaaaaa\n"
    ) in text
    assert text.endswith("<!-- run_all:end -->\n\n## Below\nkept\n")


def test_a_full_run_keeps_nothing(run_all: ModuleType) -> None:
    """Every module run: no row of the old table survives."""
    kept, origin = run_all.kept_rows({"bench_a", "bench_b", "bench_c"})
    assert ([], {}) == (kept, origin)
