"""The health endpoints as a plain ASGI 3 application (no web framework needed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import attrs

from resilient_pipeline.exceptions import ConfigurationError

from ._http import Response, ready_failed, respond, route
from ._registry import HealthRegistry

__all__ = ["HealthApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _registry(_: object, __: object, value: HealthRegistry) -> None:
    if not isinstance(value, HealthRegistry):
        raise ConfigurationError.for_option("registry", value, "must be a HealthRegistry")


def _path(scope: Scope) -> str:
    # Mounted under a prefix, servers differ on whether ``path`` still holds it.
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


@attrs.frozen
class HealthApp:
    """``/healthz``, ``/readyz`` and ``/metrics`` as an ASGI 3 app; mount it anywhere.

    * ``/healthz`` (liveness) answers ``200 {"status": "ok"}`` without running
      any check: it fails only when the process no longer answers at all,
      which is when a restart helps.
    * ``/readyz`` (readiness) runs the registry (:meth:`HealthRegistry.arun`,
      cached for its ``cache_ttl``): ``200`` when every critical check is
      ``ok`` or ``degraded``, ``503`` when one is ``failing``, with every
      check in the JSON body.
    * ``/metrics`` serves ``prometheus_client``'s exposition of
      ``metrics_registry`` (default: its global registry); ``501`` with the
      pip command when ``prometheus-client`` is not installed.

    ``GET`` and ``HEAD`` only (``405`` otherwise); any other path is ``404``.
    Answers are never cacheable (``Cache-Control: no-store``).

    Args:
        registry: The checks ``/readyz`` runs.
        metrics_registry: A ``prometheus_client.CollectorRegistry`` for ``/metrics``.

    Examples:
        >>> import anyio, httpx
        >>> from resilient_pipeline.health import HealthRegistry
        >>> app = HealthApp(HealthRegistry())
        >>> async def get(path: str) -> tuple[int, str]:
        ...     async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
        ...                                  base_url="http://health") as client:
        ...         response = await client.get(path)
        ...         return response.status_code, response.text
        >>> anyio.run(get, "/readyz")
        (200, '{"status":"ok","checked_at":...,"checks":{}}')
    """

    registry: HealthRegistry = attrs.field(validator=_registry)
    metrics_registry: Any = attrs.field(default=None, kw_only=True)

    async def _answer(self, method: str, path: str) -> Response:
        target = route(method, path)
        if isinstance(target, Response):
            return target
        if target != "ready":
            return respond(target, None, self.metrics_registry)
        try:
            report = await self.registry.arun()
        except Exception as exc:
            return ready_failed(exc)
        return respond(target, report, self.metrics_registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection (``http``; ``lifespan`` is acknowledged)."""
        kind = scope.get("type")
        if kind == "lifespan":
            # Served on its own (uvicorn app:health), it has nothing to start or stop.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        method = scope.get("method", "GET")
        response = await self._answer(method, _path(scope))
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers
                ],
            }
        )
        body = b"" if method == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})
