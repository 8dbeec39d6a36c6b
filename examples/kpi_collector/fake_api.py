"""A local, deliberately flaky ad-platform API for the KPI collector to survive.

It serves, on 127.0.0.1 and a free port:

* ``GET /v1/campaigns?client_id=C&date=D``: the day's campaign metrics;
* ``GET /v1/conversions?client_id=C&date=D``: the day's conversions.

Every response is computed from (client, date), so runs are reproducible. A
:class:`Faults` plan makes it misbehave the way real platforms do: throttling
(429 with ``Retry-After``), 5xx errors, dropped connections, conversions that
arrive empty the first time they are asked for (the seed incident: campaigns
but no conversions), a row whose clicks exceed its impressions, and days that
the platform later restates.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PLATFORM = "meta_ads"
CAMPAIGNS_PER_CLIENT = 3


@dataclass
class Faults:
    """What goes wrong, and when: "first" faults hit the first request for a (client, day)."""

    throttle_first: set[str] = field(default_factory=set)  # client ids: first call -> 429
    error_first: set[str] = field(default_factory=set)  # client ids: first call -> 503
    drop_first: set[str] = field(default_factory=set)  # client ids: first call -> no response
    empty_conversions_first: set[str] = field(default_factory=set)  # first call -> []
    always_failing: set[str] = field(default_factory=set)  # client ids: every call -> 503
    illogical_rows: set[tuple[str, str]] = field(default_factory=set)  # (client, date)
    restated: set[tuple[str, str]] = field(default_factory=set)  # (client, date): +10% spend
    retry_after: int = 1


def _unit(*parts: str) -> float:
    """A stable pseudo-random number in [0, 1) from the parts."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def campaigns(client_id: str, day: str, faults: Faults) -> list[dict[str, object]]:
    """The campaign rows the platform reports for a client and day."""
    rows = []
    for n in range(CAMPAIGNS_PER_CLIENT):
        campaign = f"{client_id}-c{n}"
        impressions = 1000 + int(_unit(campaign, day, "imp") * 9000)
        clicks = int(impressions * (0.01 + _unit(campaign, day, "ctr") * 0.04))
        spend = round(clicks * (0.2 + _unit(campaign, day, "cpc")), 2)
        if (client_id, day) in faults.restated:
            spend = round(spend * 1.1, 2)
        if (client_id, day) in faults.illogical_rows and n == 0:
            clicks = impressions + 50  # clicks > impressions: the platform's bug, not ours
        rows.append(
            {
                "client_id": client_id,
                "date": day,
                "platform": PLATFORM,
                "campaign_id": campaign,
                "impressions": impressions,
                "clicks": clicks,
                "spend": spend,
            }
        )
    return rows


def conversions(client_id: str, day: str, faults: Faults) -> list[dict[str, object]]:
    """The conversion rows the platform reports for a client and day."""
    rows = []
    for row in campaigns(client_id, day, faults):
        campaign = str(row["campaign_id"])
        count = max(1, int(int(str(row["clicks"])) * (0.02 + _unit(campaign, day, "cvr") * 0.05)))
        rows.append(
            {
                "client_id": client_id,
                "date": day,
                "platform": PLATFORM,
                "campaign_id": campaign,
                "conversions": count,
                "revenue": round(count * (20 + _unit(campaign, day, "aov") * 60), 2),
            }
        )
    return rows


class _Handler(BaseHTTPRequestHandler):
    server: FakeAdsAPI

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        client_id, day = query.get("client_id", ""), query.get("date", "")
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._send(401, {"error": "invalid or expired token"})
            return
        if url.path not in ("/v1/campaigns", "/v1/conversions") or not client_id or not day:
            self._send(404, {"error": "not found"})
            return
        faults = self.server.faults
        with self.server.lock:
            self.server.requests[url.path] += 1
            self.server.calls[(url.path, client_id, day)] += 1
            nth = self.server.calls[(url.path, client_id, day)]
        first_campaigns = nth == 1 and url.path == "/v1/campaigns"
        if client_id in faults.always_failing:
            self._send(503, {"error": "upstream unavailable"})
        elif first_campaigns and client_id in faults.throttle_first:
            self._send(429, {"error": "rate limited"}, {"Retry-After": str(faults.retry_after)})
        elif first_campaigns and client_id in faults.error_first:
            self._send(503, {"error": "try again"})
        elif first_campaigns and client_id in faults.drop_first:
            self.close_connection = True  # hang up without a response
        elif url.path == "/v1/campaigns":
            self._send(200, {"data": campaigns(client_id, day, faults)})
        elif nth == 1 and client_id in faults.empty_conversions_first:
            self._send(200, {"data": []})  # the seed incident: campaigns, no conversions
        else:
            self._send(200, {"data": conversions(client_id, day, faults)})

    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the collector's own logs tell the story."""


class FakeAdsAPI(ThreadingHTTPServer):
    """The flaky API server; use :func:`serve` to run it in a background thread."""

    daemon_threads = True

    def __init__(self, faults: Faults, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.faults = faults
        self.token = token
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.calls: Counter[tuple[str, str, str]] = Counter()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


@contextmanager
def serve(faults: Faults, *, token: str) -> Iterator[FakeAdsAPI]:
    """Run the fake API for the duration of the block."""
    server = FakeAdsAPI(faults, token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
