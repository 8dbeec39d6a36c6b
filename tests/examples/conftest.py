"""Fixtures of the example tests: a seeded ground truth of KPI units, and a real browser.

The browser is Debian's ``chromium`` driven by Playwright (never a browser build
of Playwright's own). Without it the browser tests skip and say why; under
``CI=true`` they fail instead, like the service tests (``.ci/run`` installs it).
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from tests.conftest import unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Page

Unit = dict[str, list[dict[str, Any]]]

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@attrs.frozen
class SyntheticTruth:
    """What a fake ad platform would answer, drawn from a seed: the tests' ground truth.

    Every (platform, client, day) has 0-4 active campaigns out of the
    client's 2-4; about one day in eight is a genuine zero day (campaigns
    answered with zero spend, no conversions). ``version=1`` is a restatement:
    spend up 10% and the client's last campaign gone.
    """

    seed: int = 7

    def campaigns_of(self, platform: str, client: int) -> list[tuple[str, str]]:
        """The client's campaigns on a platform: (id, name)."""
        rng = random.Random(f"{self.seed}/{platform}/{client}")
        return [
            (f"{platform[0]}{client}-{n}", f"{platform} campaign {n} of client {client}")
            for n in range(rng.randint(2, 4))
        ]

    def unit(self, platform: str, client: int, day: dt.date, *, version: int = 0) -> Unit:
        """The unit (campaigns + conversions) the platform answers for a partition."""
        rng = random.Random(f"{self.seed}/{platform}/{client}/{day}")
        zero = rng.random() < 0.125
        campaigns: list[dict[str, Any]] = []
        conversions: list[dict[str, Any]] = []
        known = self.campaigns_of(platform, client)
        if version:
            known = known[:-1]
        for campaign_id, name in known:
            if rng.random() < 0.15:
                continue  # not active that day
            impressions = 0 if zero else rng.randint(50, 20_000)
            clicks = 0 if zero else rng.randint(0, impressions // 10)
            spend = 0 if zero else rng.randint(0, 250_000_000)
            if version:
                spend = spend * 11 // 10
            base = {"platform": platform, "client_id": client, "date": day}
            campaigns.append(
                base
                | {
                    "campaign_id": campaign_id,
                    "campaign_name": name,
                    "impressions": impressions,
                    "clicks": clicks,
                    "spend_micros": spend,
                }
            )
            if spend:
                conversions.append(
                    base
                    | {
                        "campaign_id": campaign_id,
                        "calls": rng.randint(0, 5),
                        "emails": rng.randint(0, 3),
                        "reservations": rng.randint(0, 2),
                    }
                )
        return {"campaigns": campaigns, "conversions": conversions}


@pytest.fixture
def truth() -> SyntheticTruth:
    """A seeded ground truth of KPI units."""
    return SyntheticTruth(seed=7)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium and Playwright, or skip (fail in CI) saying what is missing."""
    path = shutil.which("chromium")
    if path is None:
        unavailable("chromium", "install Debian's chromium package (apt-get install chromium)")
        raise AssertionError("unreachable")  # pragma: no cover
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        unavailable("chromium", f"playwright is not installed ({exc}): pip install -e '.[test]'")
    return path


@pytest.fixture(scope="module")
def browser_page(chromium_path: str) -> Iterator[Page]:
    """One headless chromium page (a new empty profile), shared by one module's tests.

    Module scope, not session: Playwright's sync API keeps an asyncio loop
    marked running in this thread until it stops, and every asyncio test
    collected after the browser tests would fail with "Cannot run the event
    loop while another loop is running".
    """
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="rp-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path,
            headless=True,
            args=list(CHROMIUM_FLAGS),
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
