"""Request to response, written once for the ASGI app and the stdlib server.

Both servers ask :func:`route` what a request is for, get the registry's
report themselves (``arun`` or ``run``) when it is ``/readyz``, and send
what :func:`respond` builds; so both answer byte for byte the same.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeAlias

import attrs

from resilient_pipeline._core import describe_error
from resilient_pipeline.exceptions import MissingDependencyError

from ._values import HealthReport

__all__ = ["Response", "Route", "error_response", "ready_failed", "respond", "route"]

Route: TypeAlias = Literal["live", "ready", "metrics"]

PATHS: dict[str, Route] = {"/healthz": "live", "/readyz": "ready", "/metrics": "metrics"}
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"


@attrs.frozen
class Response:
    """What to send: status, headers (name, value) and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _response(status: int, content_type: str, body: bytes, *extra: tuple[str, str]) -> Response:
    headers = (
        ("content-type", content_type),
        ("content-length", str(len(body))),
        # A probe's answer is only true now: no proxy or client may reuse it.
        ("cache-control", "no-store"),
        *extra,
    )
    return Response(status, headers, body)


def error_response(status: int, text: str, *extra: tuple[str, str]) -> Response:
    """A plain-text answer (404, 405, 500, 501)."""
    return _response(status, _TEXT, f"{text}\n".encode(), *extra)


def route(method: str, path: str) -> Route | Response:
    """The endpoint a request asks for, or the error to answer at once."""
    target = PATHS.get(path.rstrip("/") or "/")
    if target is None:
        return error_response(404, f"not found; try {', '.join(PATHS)}")
    if method not in ("GET", "HEAD"):
        return error_response(405, "method not allowed", ("allow", "GET, HEAD"))
    return target


def _json(status: int, data: dict[str, Any]) -> Response:
    body = json.dumps(data, separators=(",", ":"), sort_keys=False).encode()
    return _response(status, _JSON, body)


def _metrics(metrics_registry: Any) -> Response:
    try:
        import prometheus_client
    except ImportError:
        error = MissingDependencyError(
            package="prometheus-client", extra="prometheus", feature="/metrics"
        )
        return error_response(501, str(error))
    registry = metrics_registry if metrics_registry is not None else prometheus_client.REGISTRY
    return _response(
        200, prometheus_client.CONTENT_TYPE_LATEST, prometheus_client.generate_latest(registry)
    )


def respond(target: Route, report: HealthReport | None, metrics_registry: Any) -> Response:
    """The answer for ``target`` (``report`` is the registry's, for ``ready``)."""
    if target == "live":
        return _json(200, {"status": "ok"})
    if target == "metrics":
        try:
            return _metrics(metrics_registry)
        except Exception as exc:  # a collector that raises: say so, keep serving
            return error_response(500, f"metrics failed: {describe_error(exc)}")
    assert report is not None
    return _json(report.http_status, report.to_dict())


def ready_failed(exc: Exception) -> Response:
    """``/readyz`` when the registry itself raised (a bug, not a failing check): 503."""
    return _json(503, {"status": "failing", "error": describe_error(exc), "checks": {}})
