"""The collector's HTML report: what a real browser renders equals the database and the truth.

The report is loaded in Debian's chromium (headless, through Playwright); the
totals and heatmap cells are read back from the DOM and compared value by value
with the database (read through the repository and the ledger) and with the fake
API's ground truth. A plain test checks that hostile strings are escaped.
"""

from __future__ import annotations

import datetime as dt
import html.parser
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from examples.kpi_collector import repository as repo
from examples.kpi_collector.fakeapi.truth import GroundTruth
from examples.kpi_collector.report import render_report
from examples.kpi_collector.report_style import STATES
from resilient_pipeline import Alert, Partition, PartitionLedger, unit_of_work
from resilient_pipeline.checks import CheckReport, CheckResult
from resilient_pipeline.storage import SQLiteStore, Store

if TYPE_CHECKING:
    from playwright.sync_api import Page

PLATFORMS = ("meta_ads", "google_ads")
CLIENTS = (1, 2, 3, 4, 5)
# Across a month boundary: two monthly tables.
DAYS = [dt.date(2026, 10, 29) + dt.timedelta(days=n) for n in range(6)]
NOW = dt.datetime(2026, 11, 4, 6, 0, tzinfo=dt.timezone.utc)
MAX_ATTEMPTS = 2
METRICS = ("spend_micros", "impressions", "clicks", "conversions")


@attrs.frozen(kw_only=True)
class Stats:
    """A platform's run statistics, shaped like the pipeline's PlatformStats."""

    platform: str
    collected: int = 0
    failed: int = 0
    exhausted: int = 0
    retries: int = 0


@attrs.frozen(kw_only=True)
class Summary:
    """A run summary, shaped like the pipeline's RunSummary (the report reads attributes)."""

    started_at: dt.datetime
    finished_at: dt.datetime
    platforms: tuple[Stats, ...]
    checks: CheckReport | None
    alerts: tuple[Alert, ...]
    exit_code: int
    exit_meaning: str
    start: dt.date | None = None
    end: dt.date | None = None


def scenario() -> dict[tuple[str, str, str], str]:
    """The state each partition is left in (the rest succeed); planned = not 'missing'."""
    day = [d.isoformat() for d in DAYS]
    return {
        ("meta_ads", "2", day[3]): "failed",
        ("meta_ads", "4", day[5]): "pending",
        ("meta_ads", "5", day[5]): "running",
        ("google_ads", "3", day[1]): "exhausted",
        ("google_ads", "3", day[2]): "exhausted",
        ("google_ads", "1", day[5]): "missing",
    }


def build(store: Store, truth: GroundTruth) -> dict[tuple[str, str, str], str]:
    """Collect the scenario into ``store``; the state of every partition (the ground truth)."""
    repo.ensure_schema(store)
    ledger = PartitionLedger(store, max_attempts=MAX_ATTEMPTS)
    special = scenario()
    states: dict[tuple[str, str, str], str] = {}
    for platform in PLATFORMS:
        for client in CLIENTS:
            for day in DAYS:
                key = (platform, str(client), day.isoformat())
                state = special.get(key, "succeeded")
                states[key] = state
                partition = Partition(platform, client, day)
                if state != "missing":
                    ledger.plan(platform, [client], periods=[day])
                if state in ("failed", "exhausted"):
                    for _ in range(1 if state == "failed" else MAX_ATTEMPTS):
                        ledger.fail(partition, ConnectionError("upstream reset the connection"))
                elif state == "running":
                    assert partition == ledger.claim(platform, keys=[client], periods=[day])
                elif state == "succeeded":
                    unit = truth.unit(platform, client, day)
                    with unit_of_work(store) as tx:
                        repo.write_unit(tx, partition, unit)
                        ledger.succeed(tx, partition, rows=unit["campaigns"])
    repo.aggregate_months(store)
    return states


def summary() -> Summary:
    checks = CheckReport(
        results=(
            CheckResult(
                name="meta_ads_complete",
                severity="error",
                status="failed",
                message="meta_ads: 3 of 30 partition(s) not succeeded",
                action="re-run the collector",
                offending_count=3,
            ),
            CheckResult(
                name="clicks_le_impressions", severity="error", status="passed", message=""
            ),
        )
    )
    alert = Alert(
        severity="error",
        title="google_ads: 2 partitions exhausted",
        message="client 3 out of attempts",
        action="python -m resilient_pipeline retry --source google_ads",
    )
    return Summary(
        started_at=NOW - dt.timedelta(seconds=12),
        finished_at=NOW,
        platforms=(Stats(platform="meta_ads", collected=27), Stats(platform="google_ads")),
        checks=checks,
        alerts=(alert,),
        exit_code=2,
        exit_meaning="an error-level check failed",
        start=DAYS[0],
        end=DAYS[-1],
    )


def rendered_number(metric: str, text: str) -> int:
    """What a reader takes from the page: spend in currency units, counts with separators."""
    plain = text.replace(",", "")
    return int(Decimal(plain) * 1_000_000) if metric == "spend_micros" else int(plain)


def cents(micros: int) -> int:
    """Micros rounded to what the page shows (cents, half to even), back in micros."""
    shown = (Decimal(micros) / 1_000_000).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return int(shown * 1_000_000)


def truth_monthly(
    truth: GroundTruth, states: dict[tuple[str, str, str], str]
) -> dict[tuple[str, str, str, str], int]:
    """Monthly totals per (platform, client, month, metric) from the ground truth itself."""
    out: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for platform in PLATFORMS:
        for client in CLIENTS:
            days = [
                d for d in DAYS if states[(platform, str(client), d.isoformat())] == "succeeded"
            ]
            for month in sorted({d.isoformat()[:7] for d in days}):
                for campaign in truth.monthly(platform, client, month, days).values():
                    conversions = campaign["calls"] + campaign["emails"] + campaign["reservations"]
                    for metric in METRICS:
                        value = conversions if metric == "conversions" else campaign[metric]
                        out[(platform, str(client), month, metric)] += value
    return dict(out)


@pytest.fixture
def rendered(any_store: Store, tmp_path: Path) -> tuple[Store, Path, dict[Any, str], GroundTruth]:
    truth = GroundTruth(seed=11)
    states = build(any_store, truth)
    path = render_report(any_store, tmp_path / "out" / "report.html", summary=summary(), now=NOW)
    return any_store, path, states, truth


def test_rendered_report_equals_database_and_truth(
    rendered: tuple[Store, Path, dict[Any, str], GroundTruth], browser_page: Page
) -> None:
    """Heatmap cells and monthly totals read from chromium's DOM equal the DB and the truth."""
    store, path, states, truth = rendered
    requests: list[str] = []
    browser_page.on("request", lambda request: requests.append(request.url))
    browser_page.goto(path.as_uri())
    assert [path.as_uri()] == requests  # self-contained: nothing else is fetched

    cells = browser_page.eval_on_selector_all(
        "svg.heatmap rect.cell",
        """els => els.map(e => [e.dataset.platform, e.dataset.client, e.dataset.day,
                              e.dataset.state, e.dataset.rows ?? null,
                              getComputedStyle(e).fill])""",
    )
    shown = {(p, c, d): s for p, c, d, s, _, _ in cells}
    assert states == shown
    # The ledger (the database) says the same, row counts included.
    ledger = PartitionLedger(store)
    records = {r.as_tuple(): r for p in PLATFORMS for r in ledger.records(p)}
    for platform, client, day, state, rows, fill in cells:
        record = records.get((platform, client, day))
        assert (state, rows) == (
            ("missing", None)
            if record is None
            else (record.status, None if record.row_count is None else str(record.row_count))
        )
        colour = STATES[state].colour.lstrip("#")
        r, g, b = (int(colour[i : i + 2], 16) for i in (0, 2, 4))
        assert f"rgb({r}, {g}, {b})" == fill  # the state's colour is what is drawn
    # Colour is not the only cue: a glyph marks each state that has one.
    glyphs = browser_page.eval_on_selector_all(
        "svg.heatmap text.glyph", "els => els.map(e => e.textContent)"
    )
    expected_glyphs = sorted(STATES[s].glyph for s in states.values() if STATES[s].glyph)
    assert expected_glyphs == sorted(glyphs)

    totals = browser_page.eval_on_selector_all(
        "table.totals tbody td[data-value]",
        """els => els.map(e => [e.dataset.platform, e.dataset.client, e.dataset.month,
                              e.dataset.metric, e.dataset.value, e.innerText.trim()])""",
    )
    from_dom = {(p, c, m, metric): int(v) for p, c, m, metric, v, _ in totals}
    from_db = {
        (t.platform, str(t.client_id), t.month, metric): (
            t.conversions if metric == "conversions" else getattr(t, metric)
        )
        for t in repo.monthly_totals(store)
        for metric in METRICS
    }
    assert from_db == from_dom
    assert truth_monthly(truth, states) == from_dom
    for _, _, _, metric, value, text in totals:
        expected = cents(int(value)) if metric == "spend_micros" else int(value)
        assert expected == rendered_number(metric, text)

    footer = browser_page.eval_on_selector_all(
        "table.totals tfoot td[data-value]",
        "els => els.map(e => [e.dataset.platform, e.dataset.month, e.dataset.metric, "
        "e.dataset.value])",
    )
    sums: dict[tuple[str, str, str], int] = defaultdict(int)
    for (platform, _, month, metric), value in from_db.items():
        sums[(platform, month, metric)] += value
    assert dict(sums) == {(p, m, metric): int(v) for p, m, metric, v in footer}

    assert ["meta_ads_complete", "clicks_le_impressions"] == browser_page.eval_on_selector_all(
        "#checks tr[data-check]", "els => els.map(e => e.dataset.check)"
    )
    assert "python -m resilient_pipeline retry --source google_ads" in browser_page.inner_text(
        "#alerts"
    )


def test_report_page_fits_a_laptop_screen(
    rendered: tuple[Store, Path, dict[Any, str], GroundTruth], browser_page: Page
) -> None:
    """At 1280 px wide nothing scrolls sideways, and the two heatmaps sit side by side."""
    _, path, _, _ = rendered
    browser_page.set_viewport_size({"width": 1280, "height": 900})
    try:
        browser_page.goto(path.as_uri())
        widths = browser_page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] == widths[1]
        tops = browser_page.eval_on_selector_all(
            "svg.heatmap", "els => els.map(e => e.getBoundingClientRect().top)"
        )
        assert 2 == len(tops)
        assert tops[0] == tops[1]
    finally:
        browser_page.set_viewport_size({"width": 1400, "height": 1000})


class _Elements(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def test_hostile_strings_are_escaped(tmp_path: Path) -> None:
    """Client keys, errors, check and alert texts, platform names: shown as text, never markup."""
    store = SQLiteStore(tmp_path / "kpi.db")
    repo.ensure_schema(store)
    ledger = PartitionLedger(store)
    day = dt.date(2026, 11, 2)
    ledger.plan("meta_ads", [HOSTILE, 1], periods=[day])
    ledger.fail(Partition("meta_ads", 1, day), RuntimeError(HOSTILE))
    bad = Summary(
        started_at=NOW,
        finished_at=NOW,
        platforms=(Stats(platform=HOSTILE),),
        checks=CheckReport(
            results=(
                CheckResult(
                    name=HOSTILE, severity="error", status="failed", message=HOSTILE, action=HOSTILE
                ),
            )
        ),
        alerts=(Alert(severity="error", title=HOSTILE, message=HOSTILE, action=HOSTILE),),
        exit_code=2,
        exit_meaning=HOSTILE,
    )
    page = render_report(store, tmp_path / "r.html", summary=bad, now=NOW).read_text()
    parsed = _Elements()
    parsed.feed(page)
    assert set() == parsed.tags & {"script", "img", "iframe", "object", "embed", "link"}
    assert set() == {a for a in parsed.attributes if a.startswith("on")} | (
        parsed.attributes & {"src", "href"}
    )
    escaped = "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
    # The client key (label and cell), the error, the check, the alert, the stats row.
    assert page.count(escaped) >= 8


def test_unknown_ledger_state_does_not_break_the_report(tmp_path: Path) -> None:
    """A status this version does not know: the page still renders and says why."""
    store = SQLiteStore(tmp_path / "kpi.db")
    repo.ensure_schema(store)
    ledger = PartitionLedger(store)
    ledger.plan("meta_ads", [1], periods=[dt.date(2026, 11, 2)])
    with unit_of_work(store) as tx:
        tx.execute(f"UPDATE {tx.table('rp_partitions')} SET status = 'archived'")
    page = render_report(store, tmp_path / "r.html", now=NOW).read_text()
    assert "unknown partition status &#x27;archived&#x27;" in page
