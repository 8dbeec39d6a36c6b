"""/healthz, /readyz and /metrics over real HTTP (stdlib server) and through the ASGI app."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.health import (
    HealthApp,
    HealthCheck,
    HealthOutcome,
    HealthRegistry,
    HealthServer,
    database_ready,
    redis_ready,
    serve_health,
)
from resilient_pipeline.storage import PostgresStore
from resilient_pipeline.testing import FakeClock

TIMEOUT = 0.2
SLACK = 2.0


def degraded() -> HealthOutcome:
    return HealthOutcome("degraded", "lagging")


def broken() -> None:
    raise ConnectionError("postgresql://etl:hunter2@db/kpi refused")


@pytest.fixture
def server() -> Iterator[HealthServer]:
    registry = HealthRegistry([HealthCheck("lag", degraded)], cache_ttl=0)
    with serve_health(registry=registry) as running:
        yield running


def test_healthz_answers_without_running_checks(server: HealthServer) -> None:
    """Liveness is 200 with a tiny JSON body, never cacheable."""
    response = httpx.get(f"{server.url}/healthz")
    assert (200, {"status": "ok"}) == (response.status_code, response.json())
    assert ("application/json", "no-store") == (
        response.headers["content-type"],
        response.headers["cache-control"],
    )


def test_readyz_lists_every_check_and_uses_status_codes() -> None:
    """200 while only degraded, 503 once a critical check fails; every check in the body."""
    clock = FakeClock()
    registry = HealthRegistry([HealthCheck("lag", degraded)], cache_ttl=0, clock=clock)
    with serve_health(registry=registry) as server:
        ready = httpx.get(f"{server.url}/readyz")
        registry.add(HealthCheck("db", broken))
        down = httpx.get(f"{server.url}/readyz")
    assert 200 == ready.status_code
    assert "degraded" == ready.json()["status"]
    assert 503 == down.status_code
    body = down.json()
    assert ("failing", clock.time(), ["lag", "db"]) == (
        body["status"],
        body["checked_at"],
        list(body["checks"]),
    )
    db = body["checks"]["db"]
    assert {"status", "detail", "latency", "checked_at", "critical"} == set(db)
    assert ("failing", "ConnectionError: postgresql://etl:***@db/kpi refused", True) == (
        db["status"],
        db["detail"],
        db["critical"],
    )
    assert "hunter2" not in down.text


def test_methods_and_paths(server: HealthServer) -> None:
    """HEAD: headers, no body; POST: 405 with Allow; unknown path: 404; a query is ignored."""
    head = httpx.head(f"{server.url}/readyz")
    post = httpx.post(f"{server.url}/readyz")
    missing = httpx.get(f"{server.url}/ready")
    query = httpx.get(f"{server.url}/healthz/?verbose=1")
    assert (200, b"", "application/json") == (
        head.status_code,
        head.content,
        head.headers["content-type"],
    )
    assert int(head.headers["content-length"]) > 0
    assert (405, "GET, HEAD") == (post.status_code, post.headers["allow"])
    assert 404 == missing.status_code
    assert "/healthz" in missing.text
    assert (200, {"status": "ok"}) == (query.status_code, query.json())


def test_metrics_serves_the_given_prometheus_registry(server: HealthServer) -> None:
    """/metrics is the exposition of the CollectorRegistry given."""
    import prometheus_client

    metrics = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter("rp_rows_written", "Rows written", registry=metrics)
    counter.inc(3)
    with serve_health(registry=HealthRegistry(), metrics_registry=metrics) as own:
        response = httpx.get(f"{own.url}/metrics")
    assert 200 == response.status_code
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "rp_rows_written_total 3.0" in response.text.splitlines()


def test_metrics_without_prometheus_client_is_501(
    server: HealthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without prometheus-client, /metrics says which extra to install; the rest still works."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    response = httpx.get(f"{server.url}/metrics")
    assert 501 == response.status_code
    assert "pip install 'resilient-pipeline[prometheus]'" in response.text
    assert 200 == httpx.get(f"{server.url}/readyz").status_code


@pytest.mark.postgres
@pytest.mark.redis
def test_real_postgres_and_redis_over_http(postgres_dsn: str, redis_url: str) -> None:
    """Both real servers reachable: /readyz is 200 with both checks ok."""
    store = PostgresStore(postgres_dsn)
    registry = HealthRegistry([database_ready(store), redis_ready(redis_url)])
    try:
        with serve_health(registry=registry) as server:
            response = httpx.get(f"{server.url}/readyz")
    finally:
        store.close()
    checks = response.json()["checks"]
    assert 200 == response.status_code
    assert {"database": "ok", "redis": "ok"} == {n: c["status"] for n, c in checks.items()}


@pytest.mark.postgres
def test_hanging_redis_fails_within_timeout_and_endpoints_keep_answering(
    postgres_dsn: str, hanging_port: int
) -> None:
    """A Redis that never answers: /readyz is 503 within the timeout, and /healthz meanwhile."""
    store = PostgresStore(postgres_dsn)
    registry = HealthRegistry(
        [
            database_ready(store),
            redis_ready(f"redis://127.0.0.1:{hanging_port}/0", timeout=TIMEOUT),
        ],
        cache_ttl=0,
    )
    try:
        with serve_health(registry=registry) as server:
            answers: dict[str, httpx.Response] = {}
            ready_started = threading.Event()

            def readyz() -> None:
                ready_started.set()
                answers["ready"] = httpx.get(f"{server.url}/readyz", timeout=10)

            worker = threading.Thread(target=readyz)
            started = time.perf_counter()
            worker.start()
            ready_started.wait(5)
            answers["live"] = httpx.get(f"{server.url}/healthz", timeout=10)
            worker.join(10)
            elapsed = time.perf_counter() - started
            again = httpx.get(f"{server.url}/readyz", timeout=10)
    finally:
        store.close()
    assert 200 == answers["live"].status_code
    ready = answers["ready"]
    assert 503 == ready.status_code
    checks = ready.json()["checks"]
    assert "ok" == checks["database"]["status"]
    assert "failing" == checks["redis"]["status"]
    assert elapsed < SLACK
    assert (503, "failing") == (again.status_code, again.json()["checks"]["redis"]["status"])


def test_serve_health_refuses_bad_options() -> None:
    """A non-registry, a port out of range, or a port in use: ConfigurationError naming it."""
    with pytest.raises(ConfigurationError) as registry:
        serve_health(registry="checks")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as port:
        serve_health(port=70000, registry=HealthRegistry())
    with (
        serve_health(registry=HealthRegistry()) as taken,
        pytest.raises(ConfigurationError) as in_use,
    ):
        serve_health(port=taken.port, registry=HealthRegistry())
    assert ("registry", "port", "port") == (
        registry.value.option,
        port.value.option,
        in_use.value.option,
    )


def test_close_is_idempotent_and_stops_listening() -> None:
    """After close() nothing answers on the port; a second close() is harmless."""
    server = serve_health(registry=HealthRegistry())
    url = server.url
    assert 200 == httpx.get(f"{url}/healthz").status_code
    server.close()
    server.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz")


# ----------------------------------------------------------------------- ASGI
@pytest.mark.anyio
async def test_asgi_app_answers_like_the_stdlib_server() -> None:
    """Same registry (cached report): the ASGI app and serve_health answer byte for byte alike."""
    clock = FakeClock()
    registry = HealthRegistry(
        [HealthCheck("lag", degraded), HealthCheck("db", broken)], cache_ttl=60, clock=clock
    )
    app = HealthApp(registry)
    requests = [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("HEAD", "/readyz"),
        ("POST", "/readyz"),
        ("GET", "/nope"),
    ]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://health") as client:
        via_asgi = [await client.request(m, p) for m, p in requests]
    with serve_health(registry=registry) as server:

        def fetch() -> list[httpx.Response]:
            return [httpx.request(m, f"{server.url}{p}") for m, p in requests]

        via_http = await anyio.to_thread.run_sync(fetch)

    def shape(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
        headers = {
            k: v
            for k, v in response.headers.items()
            if k in {"content-type", "content-length", "cache-control", "allow"}
        }
        return response.status_code, response.content, headers

    assert [shape(r) for r in via_http] == [shape(r) for r in via_asgi]
    assert [200, 503, 503, 405, 404] == [r.status_code for r in via_asgi]


@pytest.mark.anyio
async def test_asgi_hanging_check_fails_within_timeout(hanging_port: int) -> None:
    """Under asyncio and trio: a hanging Redis is failing in /readyz within its timeout."""
    registry = HealthRegistry(
        [redis_ready(f"redis://127.0.0.1:{hanging_port}/0", timeout=TIMEOUT)], cache_ttl=0
    )
    transport = httpx.ASGITransport(app=HealthApp(registry))
    async with httpx.AsyncClient(transport=transport, base_url="http://health") as client:
        with anyio.fail_after(SLACK):
            ready = await client.get("/readyz")
        live = await client.get("/healthz")
    assert (503, "failing") == (ready.status_code, ready.json()["checks"]["redis"]["status"])
    assert 200 == live.status_code


@pytest.mark.anyio
async def test_asgi_app_mounted_under_a_prefix() -> None:
    """Mounted at /ops (root_path), /ops/readyz is the readiness endpoint."""
    app = HealthApp(HealthRegistry([HealthCheck("lag", degraded)]))
    transport = httpx.ASGITransport(app=app, root_path="/ops")
    async with httpx.AsyncClient(transport=transport, base_url="http://health") as client:
        response = await client.get("/ops/readyz")
    assert (200, "degraded") == (response.status_code, response.json()["status"])


@pytest.mark.anyio
async def test_asgi_lifespan_and_other_scopes() -> None:
    """Lifespan startup/shutdown are acknowledged; a websocket is closed."""
    app = HealthApp(HealthRegistry())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": "lifespan"}, receive, send)
    await app({"type": "websocket", "path": "/healthz"}, receive, send)
    assert [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
        {"type": "websocket.close", "code": 1003},
    ] == sent


def test_asgi_app_refuses_a_non_registry() -> None:
    """HealthApp needs a HealthRegistry: a ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError) as info:
        HealthApp("checks")  # type: ignore[arg-type]
    assert ("registry", "checks") == (info.value.option, info.value.value)


def test_json_is_compact_and_parses() -> None:
    """The readiness body is compact JSON (probes log it) that parses back to the report."""
    registry = HealthRegistry([HealthCheck("lag", degraded)], clock=FakeClock())
    report = registry.run()
    with serve_health(registry=registry) as server:
        response = httpx.get(f"{server.url}/readyz")
    assert report.to_dict() == json.loads(response.content)
    assert b", " not in response.content
