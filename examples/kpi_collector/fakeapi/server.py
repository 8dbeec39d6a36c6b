"""The flaky local HTTP server: both ad platforms, their shapes, paging, OAuth and faults.

One threaded ``http.server`` on 127.0.0.1 and a free port serves two
platforms with deliberately different shapes (the collector's transformers
must bridge them):

* Meta-like, ``GET /meta/v19.0/act_{client}/insights?level=campaign&fields=...
  &time_range={"since":D,"until":D}&limit=N&after=CURSOR`` and
  ``GET /meta/v19.0/act_{client}/conversions?date=D&limit=N&after=CURSOR``:
  ``{"data": [...], "paging": {"cursors": {...}, "next": url}}``; numbers as
  strings, spend as a decimal string of the currency ("12.34"), conversions
  as an ``actions`` list (``click_to_call``, ``email_contact``,
  ``reservation``; zero actions left out, unrelated ones mixed in).
  The new conversions version, ``GET /meta/v20.0/act_{client}/conversions?date=D``
  (endpoint ``meta.conversions_v20``, rolled out behind a feature flag in the
  collector), answers the same truth in another shape: one row per campaign
  with ``date_start``/``date_stop`` and ``actions`` an object of action type
  to an integer count (``{"click_to_call": 3, "reservation": 2}``).
* Google-Ads-like, ``POST /google/v17/customers/{client}/googleAds:search``
  with ``{"query": GAQL, "pageSize": N, "pageToken": T}``:
  ``{"results": [...], "nextPageToken": T}`` (``results`` left out when there
  are none); ``costMicros`` as an int64 string, conversions one row per
  (campaign, ``conversionActionCategory``) with ``allConversions`` a float.
* ``POST /{meta|google}/oauth/token`` (form ``grant_type=refresh_token``,
  ``refresh_token=<the configured token>``): a new access token. The
  configured token is also valid as an access token until it expires.

Pages hold at most ``page_size`` campaigns (whatever the client asks for).
The answers come from a :class:`~.truth.GroundTruth`; a :class:`~.faults.Faults`
plan makes them fail. Counters tell tests what was served.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import attrs

from .faults import TRANSPORT_KINDS, Faults
from .truth import GroundTruth

__all__ = ["DEMO_TOKENS", "FakeAdsAPI", "Served", "serve"]

DEMO_TOKENS: Mapping[str, str] = {
    "meta_ads": "demo-meta-refresh-token-7f3a9c",
    "google_ads": "demo-google-refresh-token-2b8e41",
}
"""The tokens the demo server accepts when none are given (fine to print: they are fake)."""

_PREFIX = {"meta_ads": "meta", "google_ads": "google"}
_META = re.compile(r"/meta/v19\.0/act_(\d+)/(insights|conversions)")
_META_V20 = re.compile(r"/meta/v20\.0/act_(\d+)/(conversions)")
_GOOGLE = re.compile(r"/google/v17/customers/(\d+)/googleAds:search")
_OAUTH = re.compile(r"/(meta|google)/oauth/token")
_GAQL_DATE = re.compile(r"segments\.date\s*=\s*'(\d{4}-\d{2}-\d{2})'")
_META_ACTIONS = {"calls": "click_to_call", "emails": "email_contact", "reservations": "reservation"}
_GOOGLE_CATEGORIES = {
    "calls": "PHONE_CALL_LEAD",
    "emails": "CONTACT",
    "reservations": "BOOK_APPOINTMENT",
}
_META_FIELDS = {"campaign_id", "impressions", "clicks", "spend"}
_FIELDS = "campaign_id,campaign_name,impressions,clicks,spend"


@attrs.frozen
class Served:
    """One request as the server saw it (for tests and the demo's statistics).

    Attributes:
        endpoint: ``"meta.insights"``, ``"meta.conversions"``, ``"meta.conversions_v20"``,
            ``"google.campaigns"``, ``"google.conversions"``, ``"meta.oauth"``,
            ``"google.oauth"`` or ``"unknown"``.
        client: The account asked for (``0`` when none).
        day: The day asked for (``None`` when none).
        page: The page's cursor (``""`` for the first page).
        ask: How many times this page was asked for, this one included (0: not counted).
        fault: The fault injected (a :data:`~.faults.FAULT_KINDS` kind, ``"outage"``,
            ``"down"``), or ``None``.
        status: The HTTP status sent (``None``: the connection was dropped).
    """

    endpoint: str
    client: int = 0
    day: dt.date | None = None
    page: str = ""
    ask: int = 0
    fault: str | None = None
    status: int | None = 200


@attrs.frozen
class _Answer:
    status: int
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    drop: bool = False
    hang: float = 0.0


class _BadRequest(Exception):
    """The request cannot be served as asked (400)."""


@attrs.frozen
class _Request:
    platform: str
    # meta.insights | meta.conversions | meta.conversions_v20 | google.campaigns
    # | google.conversions
    endpoint: str
    client: int
    day: dt.date
    limit: int | None
    cursor: str


def _meta_spend(micros: int) -> str:
    """Micros as Meta writes money: a decimal string of the currency ("12.34")."""
    if micros % 10_000 == 0:
        cents = micros // 10_000
        return f"{cents // 100}.{cents % 100:02d}"
    return str(Decimal(micros).scaleb(-6))


class FakeAdsAPI:
    """The flaky ad-platform server; a context manager that runs it in a background thread.

    Args:
        truth: What the platforms answer (default: ``GroundTruth(seed=0)``).
        faults: What goes wrong (default: nothing).
        tokens: Platform → its refresh token, also valid as the first access
            token (default: :data:`DEMO_TOKENS`).
        page_size: Most campaigns per page, whatever the client asks for.

    Attributes:
        requests: Requests per endpoint.
        injected: Faults injected per kind (plus ``"outage"`` and ``"down"``).
        served: Every request, in order (:class:`Served`).
        errors: Unexpected exceptions in the server's handlers (should stay empty).

    Examples:
        >>> import httpx
        >>> with FakeAdsAPI(page_size=1) as api:
        ...     answer = httpx.get(f"{api.base_url}/meta/v19.0/act_1/conversions",
        ...                        params={"date": "2026-11-28"})
        >>> answer.status_code, api.requests["meta.conversions"]
        (401, 1)
    """

    def __init__(
        self,
        truth: GroundTruth | None = None,
        faults: Faults | None = None,
        *,
        tokens: Mapping[str, str] | None = None,
        page_size: int = 2,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size={page_size!r} must be >= 1")
        self.truth = truth if truth is not None else GroundTruth()
        self.faults = faults if faults is not None else Faults()
        self.tokens = dict(tokens if tokens is not None else DEMO_TOKENS)
        if set(self.tokens) != set(_PREFIX):
            raise ValueError(f"tokens must name exactly the platforms {sorted(_PREFIX)}")
        self.page_size = page_size
        self.requests: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.served: list[Served] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._asks: Counter[tuple[str, int, dt.date, str]] = Counter()
        self._numbered: Counter[str] = Counter()
        self._valid: dict[str, set[str]] = {p: {t} for p, t in self.tokens.items()}
        self._closing = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- running -------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (only while running)."""
        if self._httpd is None:
            raise RuntimeError("the fake API is not running: start() it or use `with`")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeAdsAPI:
        """Listen on a free port and serve in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("the fake API is already running")
        self._closing.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-ads-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; hanging answers are abandoned (idempotent)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._closing.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> FakeAdsAPI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- tokens --------------------------------------------------------------------
    def expire_tokens(self, platform: str) -> None:
        """Expire every access token of ``platform`` (the next data request gets 401)."""
        with self._lock:
            self._valid[platform].clear()

    # -- answering -----------------------------------------------------------------
    def answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[_Answer, Served]:
        """The answer to one request, and its record (the handler only sends it)."""
        url = urlsplit(target)
        if method == "POST" and (oauth := _OAUTH.fullmatch(url.path)):
            return self._oauth(oauth.group(1), body)
        platform = None
        if method == "GET" and (_META.fullmatch(url.path) or _META_V20.fullmatch(url.path)):
            platform = "meta_ads"
        elif method == "POST" and _GOOGLE.fullmatch(url.path):
            platform = "google_ads"
        authorization = headers.get("authorization", "")
        token = authorization.removeprefix("Bearer ")
        with self._lock:
            authorised = platform is not None and token in self._valid[platform]
        try:
            request = self._parse(method, url.path, url.query, body)
        except _BadRequest as exc:
            if platform is not None and not authorised:  # who you are comes first
                return self._refused(platform, f"{_PREFIX[platform]}.unknown")
            return _Answer(400, {"error": {"message": str(exc), "code": 100}}), Served(
                "unknown", status=400
            )
        if request is None:
            return _Answer(404, {"error": {"message": "no such endpoint"}}), Served(
                "unknown", status=404
            )
        if not authorised or not authorization.startswith("Bearer "):
            return self._refused(request.platform, request.endpoint, request)
        return self._data(request, token)

    def _refused(
        self, platform: str, endpoint: str, request: _Request | None = None
    ) -> tuple[_Answer, Served]:
        with self._lock:
            self.requests[endpoint] += 1
        if request is None:
            return self._unauthorised(platform), Served(endpoint, status=401)
        served = Served(endpoint, request.client, request.day, request.cursor, status=401)
        return self._unauthorised(platform), served

    def _oauth(self, prefix: str, body: bytes) -> tuple[_Answer, Served]:
        platform = next(p for p, x in _PREFIX.items() if x == prefix)
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        endpoint = f"{prefix}.oauth"
        with self._lock:
            self.requests[endpoint] += 1
        if form.get("grant_type") != "refresh_token" or not secrets.compare_digest(
            form.get("refresh_token", ""), self.tokens[platform]
        ):
            return _Answer(400, {"error": "invalid_grant"}), Served(endpoint, status=400)
        token = f"{prefix}-access-{secrets.token_urlsafe(16)}"
        with self._lock:
            self._valid[platform].add(token)
        body_out = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        return _Answer(200, body_out), Served(endpoint)

    def _parse(self, method: str, path: str, query: str, body: bytes) -> _Request | None:
        meta = _META.fullmatch(path) or _META_V20.fullmatch(path)
        if method == "GET" and meta:
            params = {k: v[-1] for k, v in parse_qs(query).items()}
            client, kind = int(meta.group(1)), meta.group(2)
            version = "_v20" if meta.re is _META_V20 else ""
            if kind == "insights":
                if params.get("level") != "campaign":
                    raise _BadRequest("level must be 'campaign'")
                missing = _META_FIELDS - set(params.get("fields", "").split(","))
                if missing:
                    raise _BadRequest(f"fields must include {', '.join(sorted(missing))}")
                try:
                    span = json.loads(params.get("time_range", ""))
                    since, until = span["since"], span["until"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise _BadRequest(f"time_range must be JSON with since/until ({exc})") from exc
                if since != until:
                    raise _BadRequest("time_range must be one day (since == until)")
                day = since
            else:
                day = params.get("date", "")
            return _Request(
                "meta_ads",
                f"meta.{kind}{version}",
                client,
                self._day(day),
                self._limit(params.get("limit")),
                params.get("after", ""),
            )
        if method == "POST" and (google := _GOOGLE.fullmatch(path)):
            try:
                payload = json.loads(body or b"{}")
                gaql = str(payload["query"])
            except (ValueError, KeyError, TypeError) as exc:
                raise _BadRequest(f"the body must be JSON with a query ({exc})") from exc
            if not re.search(r"\bFROM\s+campaign\b", gaql):
                raise _BadRequest("the query must select FROM campaign")
            if "segments.conversion_action_category" in gaql:
                kind = "conversions"
            elif "metrics.cost_micros" in gaql:
                kind = "campaigns"
            else:
                raise _BadRequest(
                    "select metrics.cost_micros or segments.conversion_action_category"
                )
            found = _GAQL_DATE.search(gaql)
            if found is None:
                raise _BadRequest("the query must filter segments.date = 'YYYY-MM-DD'")
            size = payload.get("pageSize")
            return _Request(
                "google_ads",
                f"google.{kind}",
                int(google.group(1)),
                self._day(found.group(1)),
                self._limit(None if size is None else str(size)),
                str(payload.get("pageToken") or ""),
            )
        return None

    @staticmethod
    def _day(text: str) -> dt.date:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise _BadRequest(f"not a day: {text!r}") from None

    @staticmethod
    def _limit(text: str | None) -> int | None:
        if text is None:
            return None
        if not text.isdigit() or int(text) < 1:
            raise _BadRequest(f"the page size must be a positive integer, not {text!r}")
        return int(text)

    def _data(self, request: _Request, token: str) -> tuple[_Answer, Served]:
        platform, faults = request.platform, self.faults
        record = Served(request.endpoint, request.client, request.day, request.cursor, status=None)
        with self._lock:
            self.requests[request.endpoint] += 1
            self._numbered[platform] += 1
            number = self._numbered[platform]
            if (platform, request.client) in faults.down:
                self.injected["down"] += 1
                return self._error(platform, 503), attrs.evolve(record, fault="down", status=503)
            if faults.outage is not None and faults.outage.covers(platform, number):
                self.injected["outage"] += 1
                return self._error(platform, 503), attrs.evolve(record, fault="outage", status=503)
            thing = (request.endpoint, request.client, request.day, request.cursor)
            self._asks[thing] += 1
            ask = self._asks[thing]
        record = attrs.evolve(record, ask=ask)
        try:
            items, after = self._page(request)
        except _BadRequest as exc:
            return _Answer(400, {"error": {"message": str(exc), "code": 100}}), attrs.evolve(
                record, status=400
            )
        applicable = list(TRANSPORT_KINDS)
        if not request.cursor and items:
            applicable.append("empty")
        if items and _is_conversions(request.endpoint):
            applicable.append("partial")
        if items and not _is_conversions(request.endpoint):
            applicable.append("illogical")
        fault = faults.decide(thing, ask, applicable)
        scripted = (platform, request.client, request.day) in faults.illogical
        if scripted and not request.cursor and items and not _is_conversions(request.endpoint):
            fault = fault if fault in TRANSPORT_KINDS else "illogical"
        if fault is not None:
            with self._lock:
                self.injected[fault] += 1
        record = attrs.evolve(record, fault=fault, status=200)
        if fault == "server_error":
            return self._error(platform, 503), attrs.evolve(record, status=503)
        if fault == "throttle":
            answer = self._error(platform, 429)
            headers = {"Retry-After": str(faults.retry_after)}
            return attrs.evolve(answer, headers=headers), attrs.evolve(record, status=429)
        if fault == "drop":
            return _Answer(0, drop=True), attrs.evolve(record, status=None)
        if fault == "token_expiry":
            with self._lock:
                self._valid[platform].discard(token)
            return self._unauthorised(platform), attrs.evolve(record, status=401)
        if fault == "empty":
            items, after = [], None
        elif fault == "partial":
            items = items[: len(items) // 2]
        elif fault == "illogical":
            items = [{**items[0], "clicks": items[0]["impressions"] + 7}, *items[1:]]
        body = self._shape(request, items, after)
        hang = faults.hang if fault == "timeout" else 0.0
        return _Answer(200, body, hang=hang), record

    def _page(self, request: _Request) -> tuple[list[dict[str, Any]], str | None]:
        """The page's truth rows and the cursor of the next page (``None``: last)."""
        unit = self.truth.unit(request.platform, request.client, request.day)
        rows = unit["conversions" if _is_conversions(request.endpoint) else "campaigns"]
        offset = self._offset(request) if request.cursor else 0
        size = min(request.limit or self.page_size, self.page_size)
        end = offset + size
        after = self._cursor(request, end) if end < len(rows) else None
        return rows[offset:end], after

    @staticmethod
    def _cursor(request: _Request, offset: int) -> str:
        raw = json.dumps([request.endpoint, request.client, request.day.isoformat(), offset])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _offset(self, request: _Request) -> int:
        text = request.cursor + "=" * (-len(request.cursor) % 4)
        try:
            endpoint, client, day, offset = json.loads(base64.urlsafe_b64decode(text))
        except (ValueError, TypeError, binascii.Error) as exc:
            raise _BadRequest(f"invalid cursor ({exc})") from exc
        same = (endpoint, client, day) == (
            request.endpoint,
            request.client,
            request.day.isoformat(),
        )
        if not same or not isinstance(offset, int) or offset < 0:
            raise _BadRequest("the cursor belongs to another query")
        return offset

    def _shape(self, request: _Request, items: list[dict[str, Any]], after: str | None) -> Any:
        if request.platform == "meta_ads":
            shape = {
                "meta.insights": self._meta_campaign,
                "meta.conversions": self._meta_conv,
                "meta.conversions_v20": self._meta_conv_v20,
            }[request.endpoint]
            data = [shape(row) for row in items]
            body: dict[str, Any] = {"data": data}
            if data:
                paging: dict[str, Any] = {"cursors": {"before": request.cursor or "start"}}
                if after is not None:
                    paging["cursors"]["after"] = after
                    paging["next"] = f"{self.base_url}{self._meta_path(request)}&after={after}"
                body["paging"] = paging
            return body
        if request.endpoint == "google.campaigns":
            results = [self._google_campaign(row) for row in items]
        else:
            results = [r for row in items for r in self._google_conv(row)]
        shaped: dict[str, Any] = {"fieldMask": "campaign.id,segments.date"}
        if results:
            shaped["results"] = results
        if after is not None:
            shaped["nextPageToken"] = after
        return shaped

    @staticmethod
    def _meta_path(request: _Request) -> str:
        kind, _, version = request.endpoint.split(".")[1].partition("_")
        day = request.day.isoformat()
        if kind == "conversions":
            query = urlencode({"date": day})
        else:
            span = json.dumps({"since": day, "until": day})
            query = urlencode({"level": "campaign", "time_range": span, "fields": _FIELDS})
        number = "v20.0" if version == "v20" else "v19.0"
        return f"/meta/{number}/act_{request.client}/{kind}?{query}"

    @staticmethod
    def _meta_campaign(row: Mapping[str, Any]) -> dict[str, Any]:
        day = row["date"].isoformat()
        return {
            "account_id": str(row["client_id"]),
            "campaign_id": row["campaign_id"],
            "campaign_name": row["campaign_name"],
            "impressions": str(row["impressions"]),
            "clicks": str(row["clicks"]),
            "spend": _meta_spend(row["spend_micros"]),
            "date_start": day,
            "date_stop": day,
        }

    @staticmethod
    def _meta_conv(row: Mapping[str, Any]) -> dict[str, Any]:
        actions = [
            {"action_type": action, "value": str(row[kind])}
            for kind, action in _META_ACTIONS.items()
            if row[kind]
        ]
        # Meta reports many action types; only three are conversions here.
        actions.insert(len(actions) // 2, {"action_type": "link_click", "value": "12"})
        return {
            "campaign_id": row["campaign_id"],
            "date": row["date"].isoformat(),
            "actions": actions,
        }

    @staticmethod
    def _meta_conv_v20(row: Mapping[str, Any]) -> dict[str, Any]:
        # v20.0: the actions as one object by type, counts as numbers, the day as a span.
        actions: dict[str, int] = {"link_click": 12}
        actions.update({action: row[kind] for kind, action in _META_ACTIONS.items() if row[kind]})
        day = row["date"].isoformat()
        return {
            "campaign_id": row["campaign_id"],
            "date_start": day,
            "date_stop": day,
            "actions": actions,
        }

    @staticmethod
    def _google_campaign(row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "campaign": {
                "resourceName": f"customers/{row['client_id']}/campaigns/{row['campaign_id']}",
                "id": row["campaign_id"],
                "name": row["campaign_name"],
            },
            "metrics": {
                "impressions": str(row["impressions"]),
                "clicks": str(row["clicks"]),
                "costMicros": str(row["spend_micros"]),
            },
            "segments": {"date": row["date"].isoformat()},
        }

    @staticmethod
    def _google_conv(row: Mapping[str, Any]) -> list[dict[str, Any]]:
        # Every category, zeros included: an empty answer is never a zero here.
        campaign = {
            "resourceName": f"customers/{row['client_id']}/campaigns/{row['campaign_id']}",
            "id": row["campaign_id"],
        }
        return [
            {
                "campaign": campaign,
                "segments": {"date": row["date"].isoformat(), "conversionActionCategory": category},
                "metrics": {"allConversions": float(row[kind])},
            }
            for kind, category in _GOOGLE_CATEGORIES.items()
        ]

    @staticmethod
    def _unauthorised(platform: str) -> _Answer:
        if platform == "meta_ads":
            error = {
                "message": "Error validating access token: the session has expired",
                "code": 190,
            }
        else:
            error = {"code": 401, "status": "UNAUTHENTICATED", "message": "invalid credentials"}
        return _Answer(401, {"error": error}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    @staticmethod
    def _error(platform: str, status: int) -> _Answer:
        text = "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE"
        if platform == "meta_ads":
            return _Answer(
                status, {"error": {"message": text.lower(), "code": 2, "is_transient": True}}
            )
        return _Answer(status, {"error": {"code": status, "status": text}})

    # -- recording -----------------------------------------------------------------
    def record(self, served: Served) -> None:
        """Keep ``served`` (the handler calls this once per request)."""
        with self._lock:
            self.served.append(served)


def _is_conversions(endpoint: str) -> bool:
    """Whether ``endpoint`` answers conversions (any version)."""
    return endpoint.rsplit(".", maxsplit=1)[-1].startswith("conversions")


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.0"  # one request per connection: nothing idles on shutdown
    timeout = 10.0  # a client that never finishes its request does not hold a thread forever

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        api = self.server.api
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer, served = api.answer(method, self.path, headers, body)
        api.record(served)
        if answer.hang and api._closing.wait(answer.hang):
            return  # the server is stopping: abandon the late answer
        if answer.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the collector's own events tell the story."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # One connection per request (HTTP/1.0) from a fleet of workers: the default backlog
    # of 5 drops connections under load, which a client sees as a connect timeout.
    request_queue_size = 128

    def __init__(self, api: FakeAdsAPI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (after its timeout) is expected; anything else is kept."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)) or error is None:
            return
        with self.api._lock:
            self.api.errors.append(error)


def serve(
    truth: GroundTruth | None = None,
    faults: Faults | None = None,
    *,
    tokens: Mapping[str, str] | None = None,
    page_size: int = 2,
) -> tuple[str, FakeAdsAPI]:
    """Start a :class:`FakeAdsAPI` in the background: its base URL and the server (``stop()`` it).

    Examples:
        >>> base_url, api = serve(GroundTruth(seed=1))
        >>> base_url.startswith("http://127.0.0.1:")
        True
        >>> api.stop()
    """
    api = FakeAdsAPI(truth, faults, tokens=tokens, page_size=page_size).start()
    return api.base_url, api
