"""A local, deterministic, deliberately flaky pair of ad platforms for the KPI collector.

:class:`GroundTruth` says what every (platform, client, day) really holds;
:class:`FakeAdsAPI` serves it over HTTP in the two platforms' shapes, with
pagination and OAuth token refresh; :class:`Faults` makes it fail, from a seed.

Examples:
    >>> from examples.kpi_collector.fakeapi import FakeAdsAPI, Faults, GroundTruth
    >>> with FakeAdsAPI(GroundTruth(seed=3), Faults.demo(seed=3)) as api:
    ...     api.requests["meta.insights"]
    0
"""

from __future__ import annotations

from .faults import FAULT_KINDS, Faults, Outage
from .server import DEMO_TOKENS, FakeAdsAPI, Served, serve
from .truth import CONVERSION_KINDS, PLATFORM_NAMES, Campaign, GroundTruth, Unit, as_day

__all__ = [
    "CONVERSION_KINDS",
    "DEMO_TOKENS",
    "FAULT_KINDS",
    "PLATFORM_NAMES",
    "Campaign",
    "FakeAdsAPI",
    "Faults",
    "GroundTruth",
    "Outage",
    "Served",
    "Unit",
    "as_day",
    "serve",
]
