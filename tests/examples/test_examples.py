"""The runnable examples work end to end (with instant waits)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from resilient_pipeline.retry import RetryScheduled, RetrySucceeded
from resilient_pipeline.testing import capture_events, set_testing

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_flaky_fetch_retries_through_429_and_503(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo survives a 429 (honouring Retry-After: 1) and a 503, then fetches."""
    demo = load("flaky_fetch")
    with set_testing() as clock, capture_events() as events:
        assert 0 == demo.main()
    scheduled = [e for e in events if isinstance(e, RetryScheduled)]
    assert [1, 2] == [e.attempt for e in scheduled]
    assert 1.0 == scheduled[0].retry_after
    assert clock.sleeps[0] >= 1.0
    assert [3] == [e.attempts for e in events if isinstance(e, RetrySucceeded)]
    assert "fetched 2 campaigns in 3 requests" in capsys.readouterr().out
