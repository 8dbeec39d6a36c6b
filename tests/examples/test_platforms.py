"""The KPI collector's platforms: fetchers against the real local fake, and their contracts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.kpi_collector.fakeapi import (
    DEMO_TOKENS,
    PLATFORM_NAMES,
    FakeAdsAPI,
    Faults,
    GroundTruth,
)
from examples.kpi_collector.platforms import (
    PLATFORMS,
    AuthenticationError,
    Fetcher,
    UnexpectedAnswerError,
    Unit,
    google,
    meta,
)
from resilient_pipeline import Partition, PermanentError
from resilient_pipeline.breaker import CircuitOpened
from resilient_pipeline.events import Event
from resilient_pipeline.exceptions import (
    CircuitOpenError,
    ConfigurationError,
    ResilientPipelineError,
)
from resilient_pipeline.limits import RateLimitWaited, TimedOut
from resilient_pipeline.retry import RetryScheduled
from resilient_pipeline.testing import FakeClock

pytestmark = pytest.mark.anyio

DAY = dt.date(2026, 11, 28)
SEED = 11


@pytest.fixture
def truth() -> GroundTruth:
    """The seeded truth every test compares with."""
    return GroundTruth(seed=SEED)


@pytest.fixture
def api(truth: GroundTruth) -> Iterator[FakeAdsAPI]:
    """A fault-free fake with one campaign per page: every answer spans several pages."""
    with FakeAdsAPI(truth, page_size=1) as server:
        yield server
    assert [] == server.errors


def fetcher(
    api: FakeAdsAPI, platform: str, clock: FakeClock, events: list[Event] | None = None, **kw: Any
) -> Fetcher:
    """A fetcher on the fake, its policies on ``clock`` (no real sleeping)."""
    options: dict[str, Any] = {"timeout": 0.25, **kw}
    return PLATFORMS[platform].fetcher(
        base_url=api.base_url,
        token=kw.pop("token", DEMO_TOKENS[platform]),
        clock=clock,
        on_event=() if events is None else events.append,
        **{k: v for k, v in options.items() if k != "token"},
    )


def spent(truth: GroundTruth, platform: str) -> list[int]:
    """Clients whose day has conversions (and several campaigns: several pages)."""
    return [c for c in range(1, 40) if len(truth.conversions(platform, c, DAY)) >= 2]


# -------------------------------------------------------------- the real fake
@pytest.mark.parametrize("platform", PLATFORM_NAMES)
async def test_fetch_unit_is_the_truth(platform: str, truth: GroundTruth, api: FakeAdsAPI) -> None:
    """No faults: every unit equals the truth value by value, across pages and days."""
    zero = next(c for c in range(1, 400) if truth.is_zero_day(platform, c, DAY))
    clients = [*spent(truth, platform)[:3], zero]
    async with fetcher(api, platform, FakeClock()) as fetch:
        for client in clients:
            for day in (DAY, DAY - dt.timedelta(days=1)):
                unit = await fetch.fetch_unit(Partition(platform, client, day))
                assert truth.unit(platform, client, day) == unit
                expected = "complete"
                assert expected == PLATFORMS[platform].contract.check(unit).verdict
    pages = [s for s in api.served if s.page]
    assert pages  # one campaign per page: later pages were asked with their cursor


@pytest.mark.parametrize("platform", PLATFORM_NAMES)
async def test_restated_days_are_fetched_restated(
    platform: str, truth: GroundTruth, api: FakeAdsAPI
) -> None:
    """After a restatement the fetcher brings the restated numbers, exactly."""
    client = spent(truth, platform)[0]
    partition = Partition(platform, client, DAY)
    async with fetcher(api, platform, FakeClock()) as fetch:
        before = await fetch.fetch_unit(partition)
        truth.restate(platform, client, DAY)
        after = await fetch.fetch_unit(partition)
    assert truth.unit(platform, client, DAY, version=0) == before
    assert truth.unit(platform, client, DAY, version=1) == after
    assert before != after


@pytest.mark.parametrize("platform", PLATFORM_NAMES)
async def test_faults_are_survived_or_typed(platform: str, truth: GroundTruth) -> None:
    """With 30% faults, every unit reaches the truth; each failure is a typed, known error."""
    faults = Faults(rate=0.3, seed=5, hang=1.0)
    clients = spent(truth, platform)[:4]
    outcomes: list[str] = []
    with FakeAdsAPI(truth, faults, page_size=1) as api:
        async with fetcher(api, platform, FakeClock()) as fetch:
            for client in clients:
                partition = Partition(platform, client, DAY)
                for _ in range(4):  # what backfill does: fetch, check, try again later
                    try:
                        unit = await fetch.fetch_unit(partition)
                    except (httpx.HTTPError, ResilientPipelineError) as exc:
                        outcomes.append(type(exc).__name__)
                        continue
                    verdict = PLATFORMS[platform].contract.check(unit).verdict
                    outcomes.append(verdict)
                    if verdict == "complete":
                        assert truth.unit(platform, client, DAY) == unit
                        break
                else:
                    pytest.fail(f"{partition} never reached the truth: {outcomes}")
    assert sum(api.injected.values()) > 0
    assert [] == api.errors


# -------------------------------------------------------------------- policies
@pytest.mark.parametrize("platform", PLATFORM_NAMES)
async def test_expired_token_is_refreshed_once(
    platform: str, truth: GroundTruth, api: FakeAdsAPI
) -> None:
    """A 401 refreshes the token once, even for concurrent calls, and the calls go on."""
    clients = spent(truth, platform)[:3]
    units: dict[int, Unit] = {}
    async with fetcher(api, platform, FakeClock()) as fetch:
        await fetch.fetch_unit(Partition(platform, clients[0], DAY))
        api.expire_tokens(platform)

        async def one(client: int) -> None:
            units[client] = await fetch.fetch_unit(Partition(platform, client, DAY))

        async with anyio.create_task_group() as tg:
            for client in clients:
                tg.start_soon(one, client)
    assert {c: truth.unit(platform, c, DAY) for c in clients} == units
    assert 1 == fetch.token_refreshes
    assert 1 == api.requests[f"{platform.split('_', maxsplit=1)[0]}.oauth"]


async def test_refused_token_is_a_permanent_error(api: FakeAdsAPI) -> None:
    """A token the platform refuses to refresh ends the fetch at once, without the token."""
    secret = "revoked-token-4f9d2a77"
    events: list[Event] = []
    async with fetcher(api, "meta_ads", FakeClock(), events, token=secret) as fetch:
        with pytest.raises(AuthenticationError) as caught:
            await fetch.fetch_unit(Partition("meta_ads", 1, DAY))
        assert secret not in repr(fetch)
    assert isinstance(caught.value, PermanentError)
    assert secret not in str(caught.value)
    assert [] == [e for e in events if isinstance(e, RetryScheduled)]
    assert 1 == api.requests["meta.oauth"]


@pytest.mark.parametrize("platform", PLATFORM_NAMES)
async def test_retry_after_is_honoured(platform: str, truth: GroundTruth) -> None:
    """Every throttled page is retried after at least its Retry-After, on the injected clock."""
    clock, events = FakeClock(), list[Event]()
    faults = Faults(rate=1.0, kinds=("throttle",), retry_after=7)
    client = spent(truth, platform)[0]
    with FakeAdsAPI(truth, faults, page_size=1) as api:
        async with fetcher(api, platform, clock, events) as fetch:
            unit = await fetch.fetch_unit(Partition(platform, client, DAY))
    assert truth.unit(platform, client, DAY) == unit
    throttled = [s for s in api.served if s.status == 429]
    scheduled = [e for e in events if isinstance(e, RetryScheduled)]
    assert len(throttled) == len(scheduled) == api.injected["throttle"] > 2
    assert all(e.retry_after == 7 and e.delay >= 7 for e in scheduled)
    assert len(throttled) <= len([s for s in clock.sleeps if s >= 7])


@pytest.mark.parametrize("platform", PLATFORM_NAMES)
async def test_timeouts_are_cut_and_retried(platform: str, truth: GroundTruth) -> None:
    """A hanging page is cut at the per-call timeout and asked again."""
    events: list[Event] = []
    client = spent(truth, platform)[0]
    faults = Faults(rate=1.0, kinds=("timeout",), hang=3.0)
    with FakeAdsAPI(truth, faults, page_size=4) as api:
        async with fetcher(api, platform, FakeClock(), events, timeout=0.25) as fetch:
            with anyio.fail_after(10):
                unit = await fetch.fetch_unit(Partition(platform, client, DAY))
    assert truth.unit(platform, client, DAY) == unit
    timed_out = [e for e in events if isinstance(e, TimedOut)]
    # every hang was cut (a slow machine may cut an honest call too: it is retried alike)
    assert len(timed_out) >= api.injected["timeout"] > 0


async def test_breaker_is_per_account(truth: GroundTruth) -> None:
    """A down account opens its own breaker, which then spares it calls; others are fetched."""
    down, healthy = spent(truth, "meta_ads")[:2]
    events: list[Event] = []
    faults = Faults(down={("meta_ads", down)})
    with FakeAdsAPI(truth, faults) as api:
        async with fetcher(api, "meta_ads", FakeClock(), events) as fetch:
            with pytest.raises((CircuitOpenError, httpx.HTTPStatusError)):
                await fetch.fetch_unit(Partition("meta_ads", down, DAY))
            before = api.injected["down"]
            with pytest.raises((CircuitOpenError, httpx.HTTPStatusError)):
                await fetch.fetch_unit(Partition("meta_ads", down, DAY))
            reached = api.injected["down"] - before
            unit = await fetch.fetch_unit(Partition("meta_ads", healthy, DAY))
            assert fetch.breaker is not None
            assert fetch.retry is not None
            attempts = fetch.retry.max_attempts
            breakers = (fetch.breaker.for_key(str(down)), fetch.breaker.for_key(str(healthy)))
    assert truth.unit("meta_ads", healthy, DAY) == unit
    assert ("open", "closed") == tuple(b.state for b in breakers)
    assert {f"meta_ads[{down}]"} == {e.source for e in events if isinstance(e, CircuitOpened)}
    # only the breaker's probes reached the down account: fewer calls than attempts
    assert 0 < reached < attempts


async def test_rate_limiter_is_per_token_and_never_shows_it(
    truth: GroundTruth, api: FakeAdsAPI
) -> None:
    """Calls wait for the token's bucket; events name the bucket by label, never the token."""
    events: list[Event] = []
    clock = FakeClock()
    async with fetcher(api, "google_ads", clock, events) as fetch:
        for client in spent(truth, "google_ads")[:8]:
            await fetch.fetch_unit(Partition("google_ads", client, DAY))
    waited = [e for e in events if isinstance(e, RateLimitWaited)]
    assert waited  # more than a burst of calls in no (fake) time
    assert {e.key for e in waited} == {
        e.key for e in waited if e.key and e.key.startswith("google_ads token ")
    }
    token = DEMO_TOKENS["google_ads"]
    assert [] == [e for e in events if token in repr(e)]


# ------------------------------------------------------------------ boundaries
async def test_partition_of_another_platform_is_refused(api: FakeAdsAPI) -> None:
    """A partition of the wrong source, key or period is a ConfigurationError naming it."""
    async with fetcher(api, "meta_ads", FakeClock()) as fetch:
        for partition in (
            Partition("google_ads", 1, DAY),
            Partition("meta_ads", "acme", DAY),
            Partition("meta_ads", 1, "2026-11"),
        ):
            with pytest.raises(ConfigurationError, match="partition"):
                await fetch.fetch_unit(partition)
    assert 0 == sum(api.requests.values())


def mock_fetcher(platform: str, answer: Any) -> Fetcher:
    """A fetcher whose every call gets ``answer`` (to show the fetcher malformed answers)."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))
    return PLATFORMS[platform].fetcher(
        base_url="http://platform.test",
        token="t0ken-for-tests",
        client=httpx.AsyncClient(transport=transport),
        clock=FakeClock(),
    )


@pytest.mark.parametrize(
    ("platform", "answer", "message"),
    [
        ("meta_ads", {"rows": []}, "no data list"),
        ("meta_ads", {"data": ["x"]}, "not an object"),
        ("meta_ads", {"data": [{}], "paging": {"next": "u", "cursors": {}}}, "no new cursor"),
        ("google_ads", {"results": [{}], "nextPageToken": "same"}, "no new page token"),
        ("google_ads", [1, 2], "not an object"),
        (
            "meta_ads",
            {"data": [{"campaign_id": "1", "date_start": "2026-11-27", "date_stop": "2026-11-27"}]},
            "asked for 2026-11-28, got campaigns",
        ),
    ],
)
async def test_unreadable_answers_are_errors(platform: str, answer: Any, message: str) -> None:
    """Malformed pages, endless paging and another day's rows raise, never pass silently."""
    fetch = mock_fetcher(platform, answer)
    assert fetch.client is not None
    async with fetch.client:
        with pytest.raises(UnexpectedAnswerError, match=message):
            await fetch.fetch_unit(Partition(platform, 1, DAY))


# -------------------------------------------------------------------- contracts
def campaign(platform: str, /, **values: Any) -> dict[str, Any]:
    """A valid campaign row, changed by ``values``."""
    row = {
        "platform": platform,
        "client_id": 3,
        "date": DAY,
        "campaign_id": "c1",
        "campaign_name": "Brand",
        "impressions": 100,
        "clicks": 10,
        "spend_micros": 5_000_000,
    }
    return row | values


def conversion(platform: str, /, **values: Any) -> dict[str, Any]:
    """A valid conversions row, changed by ``values``."""
    row = {"platform": platform, "client_id": 3, "date": DAY, "campaign_id": "c1"}
    return row | {"calls": 1, "emails": 0, "reservations": 2} | values


@pytest.mark.parametrize("platform", PLATFORM_NAMES)
@pytest.mark.parametrize(
    ("unit", "verdict"),
    [
        # the incident: conversions answered, campaigns empty
        (lambda p: {"campaigns": [], "conversions": [conversion(p)]}, "incomplete"),
        # campaigns spent, conversions empty
        (lambda p: {"campaigns": [campaign(p)], "conversions": []}, "incomplete"),
        (lambda p: {"campaigns": [campaign(p)]}, "incomplete"),
        (
            lambda p: {"campaigns": [campaign(p, clicks=101)], "conversions": [conversion(p)]},
            "invalid",
        ),
        # a genuine zero day: zero spend, no conversions
        (
            lambda p: {
                "campaigns": [campaign(p, impressions=0, clicks=0, spend_micros=0)],
                "conversions": [],
            },
            "complete",
        ),
        # spent and converted nobody: a zero row
        (
            lambda p: {
                "campaigns": [campaign(p)],
                "conversions": [conversion(p, calls=0, reservations=0)],
            },
            "complete",
        ),
        # conversions without a campaign that spent
        (
            lambda p: {"campaigns": [campaign(p, spend_micros=0)], "conversions": [conversion(p)]},
            "invalid",
        ),
        # a spending campaign without its conversions row
        (
            lambda p: {
                "campaigns": [campaign(p), campaign(p, campaign_id="c2")],
                "conversions": [conversion(p)],
            },
            "invalid",
        ),
        (
            lambda p: {"campaigns": [campaign(p), campaign(p)], "conversions": [conversion(p)]},
            "invalid",
        ),
        (
            lambda p: {
                "campaigns": [campaign(p, spend_micros=1.5)],
                "conversions": [conversion(p)],
            },
            "invalid",
        ),
        (
            lambda p: {
                "campaigns": [campaign(p, platform="other")],
                "conversions": [conversion(p)],
            },
            "invalid",
        ),
        (
            lambda p: {"campaigns": [campaign(p)], "conversions": [conversion(p, emails=-1)]},
            "invalid",
        ),
    ],
)
def test_contract_verdicts(platform: str, unit: Any, verdict: str) -> None:
    """The incident cases get the verdict that stores, retries or quarantines them rightly."""
    assert verdict == PLATFORMS[platform].contract.check(unit(platform)).verdict


@given(
    seed=st.integers(0, 2**16),
    platform=st.sampled_from(PLATFORM_NAMES),
    client=st.integers(1, 60),
    day=st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31)),
)
def test_every_true_unit_is_complete(seed: int, platform: str, client: int, day: dt.date) -> None:
    """The truth always satisfies its platform's contract (zero days included)."""
    unit = GroundTruth(seed=seed).unit(platform, client, day)
    assert "complete" == PLATFORMS[platform].contract.check(unit).verdict


# ---------------------------------------------------------------- transformers
@given(cents=st.integers(0, 10**13))
def test_meta_spend_becomes_exact_micros(cents: int) -> None:
    """ "123.45" is 123_450_000 micros, for any amount of cents: no float in between."""
    text = f"{cents // 100}.{cents % 100:02d}"
    row = {"campaign_id": "1", "spend": text, "date_start": "2026-11-28", "date_stop": "2026-11-28"}
    assert cents * 10_000 == meta.transform(1, [row], [])["campaigns"][0]["spend_micros"]


@pytest.mark.parametrize(
    ("field", "raw"),
    [("spend", "12.3456789"), ("spend", "12,34"), ("impressions", "12.5"), ("clicks", None)],
)
def test_meta_values_that_are_not_exact_are_kept_and_flagged(field: str, raw: Any) -> None:
    """A value that cannot convert exactly is kept as it came, and the contract names it."""
    row = {
        "campaign_id": "1",
        "campaign_name": "B",
        "impressions": "10",
        "clicks": "1",
        "spend": "1.00",
        "date_start": "2026-11-28",
        "date_stop": "2026-11-28",
        field: raw,
    }
    unit = meta.transform(1, [row], [])
    checked = PLATFORMS["meta_ads"].contract.check(unit)
    target = "spend_micros" if field == "spend" else field
    assert raw == unit["campaigns"][0][target]
    assert checked.verdict in ("invalid", "incomplete")
    assert any(i.issue.field == target for i in checked.errors)


def test_google_conversions_sum_by_category_and_flag_fractions() -> None:
    """Several actions of one category add up; a fractional count is kept and flagged."""

    def result(category: str, value: float, campaign_id: str = "9") -> dict[str, Any]:
        return {
            "campaign": {"id": campaign_id},
            "segments": {"date": "2026-11-28", "conversionActionCategory": category},
            "metrics": {"allConversions": value},
        }

    rows = [
        result("PHONE_CALL_LEAD", 2.0),
        result("PHONE_CALL_LEAD", 3.0),
        result("PAGE_VIEW", 40.0),
        result("BOOK_APPOINTMENT", 1.5, "8"),
    ]
    converted = google.transform(4, [], rows)["conversions"]
    assert [("9", 5, 0, 0), ("8", 0, 0, 1.5)] == [
        (r["campaign_id"], r["calls"], r["emails"], r["reservations"]) for r in converted
    ]
