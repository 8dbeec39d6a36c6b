"""The KPI collector's fake ad platforms: a deterministic truth, and faults that are transient."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from examples.kpi_collector.fakeapi import (
    DEMO_TOKENS,
    FAULT_KINDS,
    PLATFORM_NAMES,
    FakeAdsAPI,
    Faults,
    GroundTruth,
    Outage,
    serve,
)
from examples.kpi_collector.fakeapi.server import _meta_spend

DAY = dt.date(2026, 11, 28)
DAYS = [DAY - dt.timedelta(days=n) for n in range(30)]
platforms = st.sampled_from(PLATFORM_NAMES)
clients = st.integers(min_value=1, max_value=40)
days = st.dates(min_value=dt.date(2025, 1, 1), max_value=dt.date(2027, 12, 31))


# ---------------------------------------------------------------------- truth
@given(seed=st.integers(0, 2**32), platform=platforms, client=clients, day=days)
def test_truth_is_a_function_of_the_seed(
    seed: int, platform: str, client: int, day: dt.date
) -> None:
    """Two truths from one seed answer the same unit, for a date or its ISO text."""
    expected = GroundTruth(seed=seed).unit(platform, client, day)
    assert expected == GroundTruth(seed=seed).unit(platform, str(client), day.isoformat())


def test_seeds_give_different_truths() -> None:
    """Another seed, other numbers (not one partition in thirty is the same)."""
    one, two = GroundTruth(seed=1), GroundTruth(seed=2)
    same = [d for d in DAYS if one.unit("meta_ads", 3, d) == two.unit("meta_ads", 3, d)]
    assert [] == same


@given(seed=st.integers(0, 2**16), platform=platforms, client=clients, day=days)
def test_truth_rows_are_consistent(seed: int, platform: str, client: int, day: dt.date) -> None:
    """2-4 campaigns a day; clicks <= impressions; conversions exactly for campaigns that spent."""
    unit = GroundTruth(seed=seed).unit(platform, client, day)
    campaigns, conversions = unit["campaigns"], unit["conversions"]
    assert 2 <= len(campaigns) <= 4
    for row in campaigns:
        assert (platform, client, day) == (row["platform"], row["client_id"], row["date"])
        assert 0 <= row["clicks"] <= row["impressions"]
        assert (row["spend_micros"] > 0) == (row["impressions"] > 0)
        if platform == "meta_ads":  # Meta reports whole cents
            assert 0 == row["spend_micros"] % 10_000
    spent = [r["campaign_id"] for r in campaigns if r["spend_micros"] > 0]
    assert spent == [r["campaign_id"] for r in conversions]
    assert all(min(r["calls"], r["emails"], r["reservations"]) >= 0 for r in conversions)


def test_truth_has_zero_days_and_genuine_zero_conversions() -> None:
    """Zero days answer zero rows and no conversions; some campaigns spend and convert nobody."""
    truth = GroundTruth(seed=0)
    units = [truth.unit(p, c, d) for p in PLATFORM_NAMES for c in range(1, 17) for d in DAYS]
    zero_days = [
        (p, c, d)
        for p in PLATFORM_NAMES
        for c in range(1, 17)
        for d in DAYS
        if truth.is_zero_day(p, c, d)
    ]
    assert 0 < len(zero_days) < len(units) // 5
    for platform, client, day in zero_days:
        unit = truth.unit(platform, client, day)
        assert [] == unit["conversions"]
        assert {0} == {r[f] for r in unit["campaigns"] for f in ("impressions", "spend_micros")}
    zero_rows = [
        r
        for u in units
        for r in u["conversions"]
        if r["calls"] + r["emails"] + r["reservations"] == 0
    ]
    assert zero_rows


@given(seed=st.integers(0, 2**16), platform=platforms, client=clients, day=days)
def test_restated_partitions_spend_ten_percent_more(
    seed: int, platform: str, client: int, day: dt.date
) -> None:
    """A restated partition answers more spend (+10%, at least one quantum); the rest is equal."""
    truth = GroundTruth(seed=seed)
    before = truth.unit(platform, client, day)
    truth.restate(platform, client, day)
    after = truth.unit(platform, client, day)
    assert truth.is_restated(platform, client, day)
    assert before == truth.unit(platform, client, day, version=0)
    assert after == GroundTruth(seed=seed).unit(platform, client, day, version=1)
    quantum = 10_000 if platform == "meta_ads" else 1
    for old, new in zip(before["campaigns"], after["campaigns"], strict=True):
        spend = old["spend_micros"]
        grown = spend + max(quantum, spend // 10 // quantum * quantum) if spend else 0
        assert grown == new["spend_micros"]
        assert {**old, "spend_micros": 0} == {**new, "spend_micros": 0}
    assert before["conversions"] == after["conversions"]


def test_daily_kpi_and_monthly_add_up_the_units() -> None:
    """daily_kpi and monthly are the sums of the units they cover, day by day."""
    truth = GroundTruth(seed=4)
    window = [dt.date(2026, 10, 30) + dt.timedelta(days=n) for n in range(5)]  # across a month
    for platform in PLATFORM_NAMES:
        units = {d: truth.unit(platform, 2, d) for d in window}
        for day, unit in units.items():
            kpi = truth.daily_kpi(platform, 2, day)
            assert len(unit["campaigns"]) == kpi["campaigns"]
            assert sum(r["spend_micros"] for r in unit["campaigns"]) == kpi["spend_micros"]
            total = sum(
                r[k] for r in unit["conversions"] for k in ("calls", "emails", "reservations")
            )
            assert total == kpi["conversions"]
        november = truth.monthly(platform, 2, "2026-11", window)
        for campaign in truth.campaigns_of(platform, 2):
            rows = [
                r
                for d, u in units.items()
                if d.month == 11
                for r in u["campaigns"]
                if r["campaign_id"] == campaign.campaign_id
            ]
            summary = november[campaign.campaign_id]
            assert len(rows) == summary["days"] == 3
            assert sum(r["clicks"] for r in rows) == summary["clicks"]


def test_pick_is_reproducible() -> None:
    """pick() draws the same partitions from the same seed."""
    picked = GroundTruth(seed=9).pick(5, clients=range(1, 17), days=DAYS)
    assert picked == GroundTruth(seed=9).pick(5, clients=range(1, 17), days=DAYS)
    assert 5 == len(set(picked))


@given(micros=st.integers(min_value=0, max_value=10**15))
def test_meta_money_text_is_exact(micros: int) -> None:
    """Meta's spend text is the micros exactly (cents, or every digit when finer)."""
    from decimal import Decimal

    assert micros == int(Decimal(_meta_spend(micros)).scaleb(6))


# --------------------------------------------------------------------- faults
THINGS = [("meta.insights", c, d, "") for c in range(1, 41) for d in DAYS[:25]]  # 1000


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_faults_hit_their_rate_and_every_kind(rate: float) -> None:
    """The share of faulted first asks is the rate; each kind gets its even share."""
    faults = Faults(rate=rate, seed=3)
    drawn = Counter(faults.decide(thing, 1, FAULT_KINDS) for thing in THINGS)
    faulted = len(THINGS) - drawn[None]
    spread = 4 * (len(THINGS) * rate * (1 - rate)) ** 0.5  # four standard deviations
    assert abs(faulted - len(THINGS) * rate) < spread
    share = faulted / len(FAULT_KINDS)
    for kind in FAULT_KINDS:
        assert abs(drawn[kind] - share) < 4 * share**0.5 + 1, kind


def test_faults_are_transient_unless_permanent() -> None:
    """A faulted thing answers true from its (repeat + 1)-th ask; permanent ones never do."""
    faulted = [t for t in THINGS if Faults(rate=0.3).decide(t, 1, FAULT_KINDS)]
    assert faulted
    for thing in faulted:
        assert Faults(rate=0.3).decide(thing, 2, FAULT_KINDS) is None
        assert Faults(rate=0.3, repeat=2).decide(thing, 2, FAULT_KINDS) is not None
        assert Faults(rate=0.3, repeat=2).decide(thing, 3, FAULT_KINDS) is None
        assert Faults(rate=0.3, permanent=True).decide(thing, 9, FAULT_KINDS) is not None


def test_faults_only_draw_kinds_that_apply() -> None:
    """A kind that does not apply to a request is never drawn for it."""
    faults = Faults(rate=1.0)
    drawn = {faults.decide(t, 1, ("throttle", "drop")) for t in THINGS}
    assert {"throttle", "drop"} == drawn


def test_bad_fault_plans_are_refused() -> None:
    """Out-of-range rates and unknown kinds fail at construction, naming the option."""
    with pytest.raises(ValueError, match="rate"):
        Faults(rate=1.5)
    with pytest.raises(ValueError, match="kinds"):
        Faults(kinds=("gremlins",))


# --------------------------------------------------------------------- server
def meta_insights(
    client: httpx.Client,
    client_id: int,
    day: dt.date,
    *,
    after: str | None = None,
    limit: int = 100,
) -> httpx.Response:
    """One raw Meta insights request, with the demo token."""
    params: dict[str, Any] = {
        "level": "campaign",
        "fields": "campaign_id,campaign_name,impressions,clicks,spend",
        "time_range": json.dumps({"since": day.isoformat(), "until": day.isoformat()}),
        "limit": limit,
    }
    if after:
        params["after"] = after
    return client.get(f"/meta/v19.0/act_{client_id}/insights", params=params)


def meta_conversions(client: httpx.Client, client_id: int, day: dt.date) -> httpx.Response:
    """One raw Meta conversions request."""
    return client.get(f"/meta/v19.0/act_{client_id}/conversions", params={"date": day.isoformat()})


def http(api: FakeAdsAPI, platform: str = "meta_ads", *, timeout: float = 5.0) -> httpx.Client:
    """A sync client on the fake with ``platform``'s demo token."""
    headers = {"Authorization": f"Bearer {DEMO_TOKENS[platform]}"}
    return httpx.Client(base_url=api.base_url, headers=headers, timeout=timeout)


def spent_client(truth: GroundTruth) -> int:
    """A client whose Meta day has conversions (so every fault kind applies)."""
    return next(c for c in range(1, 50) if truth.conversions("meta_ads", c, DAY))


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_fault_kind_is_served_then_the_truth(kind: str) -> None:
    """The first ask gets the fault; asking again gets the true page."""
    truth = GroundTruth(seed=1)
    client_id = spent_client(truth)
    faults = Faults(rate=1.0, kinds=(kind,), hang=3.0, retry_after=3)
    endpoint = meta_conversions if kind == "partial" else meta_insights
    with FakeAdsAPI(truth, faults, page_size=10) as api, http(api) as client:
        if kind == "timeout":
            client.timeout = httpx.Timeout(0.3)
            with pytest.raises(httpx.ReadTimeout):
                endpoint(client, client_id, DAY)
            client.timeout = httpx.Timeout(5.0)
        elif kind == "drop":  # no response at all: a FIN (or a reset) instead of an answer
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                endpoint(client, client_id, DAY)
        else:
            first = endpoint(client, client_id, DAY)
            rows = first.json().get("data")
            if kind == "server_error":
                assert 503 == first.status_code
            elif kind == "throttle":
                assert (429, "3") == (first.status_code, first.headers["Retry-After"])
            elif kind == "token_expiry":
                assert 401 == first.status_code
                assert 401 == endpoint(client, client_id, DAY).status_code  # expired for good
                refreshed = client.post(
                    "/meta/oauth/token",
                    data={"grant_type": "refresh_token", "refresh_token": DEMO_TOKENS["meta_ads"]},
                )
                client.headers["Authorization"] = f"Bearer {refreshed.json()['access_token']}"
            elif kind == "empty":
                assert [] == rows
            elif kind == "partial":
                assert len(truth.conversions("meta_ads", client_id, DAY)) // 2 == len(rows)
            else:
                assert int(rows[0]["clicks"]) > int(rows[0]["impressions"])
        second = endpoint(client, client_id, DAY)
        assert 200 == second.status_code
        if endpoint is meta_insights:
            expected = [r["campaign_id"] for r in truth.campaigns("meta_ads", client_id, DAY)]
            assert expected == [r["campaign_id"] for r in second.json()["data"]]
            clicks = [str(r["clicks"]) for r in truth.campaigns("meta_ads", client_id, DAY)]
            assert clicks == [r["clicks"] for r in second.json()["data"]]
        else:
            expected = [r["campaign_id"] for r in truth.conversions("meta_ads", client_id, DAY)]
            assert expected == [r["campaign_id"] for r in second.json()["data"]]
    assert {kind: 1} == dict(api.injected)
    data = [s for s in api.served if s.endpoint != "meta.oauth"]
    assert (kind, 1) == (data[0].fault, data[0].ask)
    assert (None, 2, 200) == (data[-1].fault, data[-1].ask, data[-1].status)
    assert [] == api.errors


def test_pages_cover_every_row_once() -> None:
    """Following the cursors yields every campaign once, pages capped at the server's size."""
    truth = GroundTruth(seed=2)
    client_id = next(c for c in range(1, 50) if len(truth.campaigns("meta_ads", c, DAY)) >= 3)
    with FakeAdsAPI(truth, page_size=1) as api, http(api) as client:
        ids, after, pages = [], None, 0
        while True:
            body = meta_insights(client, client_id, DAY, after=after, limit=50).json()
            assert 1 == len(body["data"])
            ids += [r["campaign_id"] for r in body["data"]]
            pages += 1
            if "next" not in body["paging"]:
                break
            after = body["paging"]["cursors"]["after"]
            assert body["paging"]["next"].startswith(api.base_url)
    assert [r["campaign_id"] for r in truth.campaigns("meta_ads", client_id, DAY)] == ids
    assert len(ids) == pages


def test_google_pages_and_categories() -> None:
    """Google pages with page tokens; conversions come one row per category, zeros included."""
    truth = GroundTruth(seed=2)
    client_id = spent_client(truth)
    query = (
        "SELECT campaign.id, segments.conversion_action_category, metrics.all_conversions "
        f"FROM campaign WHERE segments.date = '{DAY.isoformat()}'"
    )
    path = f"/google/v17/customers/{client_id}/googleAds:search"
    with FakeAdsAPI(truth, page_size=1) as api, http(api, "google_ads") as client:
        results, token = [], None
        while True:
            body = client.post(path, json={"query": query, "pageToken": token}).json()
            results += body.get("results", [])
            token = body.get("nextPageToken")
            if not token:
                break
    expected = truth.conversions("google_ads", client_id, DAY)
    assert 3 * len(expected) == len(results)
    calls = [r["metrics"]["allConversions"] for r in results[::3]]
    assert [float(r["calls"]) for r in expected] == calls


def test_outage_window_and_down_accounts() -> None:
    """Requests start..start+length-1 to the platform get 503; a down account until removed."""
    truth = GroundTruth(seed=1)
    faults = Faults(outage=Outage("meta_ads", start=2, length=3), down={("meta_ads", 9)})
    with FakeAdsAPI(truth, faults) as api, http(api) as client:
        statuses = [meta_insights(client, 1, DAY).status_code for _ in range(6)]
        assert 503 == meta_insights(client, 9, DAY).status_code
        faults.down.clear()
        assert 200 == meta_insights(client, 9, DAY).status_code
    assert [200, 503, 503, 503, 200, 200] == statuses
    assert {"outage": 3, "down": 1} == dict(api.injected)


def test_tokens_refresh_and_expire() -> None:
    """A wrong refresh token is refused; a refreshed token works until tokens expire."""
    with FakeAdsAPI() as api, http(api) as client:
        wrong = client.post(
            "/meta/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "nope"}
        )
        assert 400 == wrong.status_code
        api.expire_tokens("meta_ads")
        assert 401 == meta_insights(client, 1, DAY).status_code
        fresh = client.post(
            "/meta/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": DEMO_TOKENS["meta_ads"]},
        ).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {fresh}"
        assert 200 == meta_insights(client, 1, DAY).status_code
        google = client.post("/google/v17/customers/1/googleAds:search", json={"query": "x"})
        assert 401 == google.status_code  # a Meta token is no Google token (and auth comes first)
    assert [400, 401, 200, 200, 401] == [s.status for s in api.served]
    assert {"meta.oauth": 2, "meta.insights": 2, "google.unknown": 1} == dict(api.requests)


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/meta/v19.0/act_1/insights", {"level": "account"}, 400),
        ("/meta/v19.0/act_1/conversions", {"date": "yesterday"}, 400),
        ("/meta/v19.0/act_1/conversions", {"date": DAY.isoformat(), "after": "garbage"}, 400),
        ("/meta/v19.0/act_1/conversions", {"date": DAY.isoformat(), "limit": "0"}, 400),
        ("/meta/v19.0/act_1/campaigns", {}, 404),
    ],
)
def test_bad_requests_are_refused(path: str, params: dict[str, str], status: int) -> None:
    """Malformed requests get a 4xx with a message, never a made-up answer."""
    with FakeAdsAPI() as api, http(api) as client:
        response = client.get(path, params=params)
    assert status == response.status_code
    assert response.json()["error"]["message"]


def test_serve_returns_a_running_server() -> None:
    """serve() starts the server in the background; stop() ends it."""
    base_url, api = serve(GroundTruth(seed=1))
    try:
        with http(api) as client:
            assert 200 == meta_conversions(client, 1, DAY).status_code
        assert base_url == api.base_url
    finally:
        api.stop()
    with pytest.raises(RuntimeError, match="not running"):
        api.base_url
