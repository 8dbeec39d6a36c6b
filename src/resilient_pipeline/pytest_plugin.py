"""pytest fixtures for users' test suites (registered through the ``pytest11`` entry point).

* ``rp_testing``: a :class:`~resilient_pipeline.testing.FakeClock` installed
  as the default clock, so every wait is instant.
* ``rp_events``: the list of events emitted during the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from resilient_pipeline._core import Event
from resilient_pipeline.testing import FakeClock, capture_events, set_testing

__all__ = ["rp_events", "rp_testing"]


@pytest.fixture
def rp_testing() -> Iterator[FakeClock]:
    """Instant waits for the whole test; yields the fake clock."""
    with set_testing() as clock:
        yield clock


@pytest.fixture
def rp_events() -> Iterator[list[Event]]:
    """Every event emitted during the test."""
    with capture_events() as events:
        yield events
