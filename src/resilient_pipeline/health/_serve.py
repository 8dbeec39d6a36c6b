"""The health endpoints on the standard library's HTTP server, for scripts and cron jobs."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import urlsplit

import attrs

from resilient_pipeline._core import integer, non_empty_str
from resilient_pipeline.exceptions import ConfigurationError

from ._http import Response, ready_failed, respond, route
from ._registry import HealthRegistry

__all__ = ["HealthServer", "serve_health"]

logger = logging.getLogger("resilient_pipeline.health")


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a request still running never keeps the process alive
    block_on_close = False
    registry: HealthRegistry
    metrics_registry: Any


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # A client that connects and never sends a request frees its thread after this.
    timeout: ClassVar[float] = 10.0
    server_version = "resilient-pipeline-health"
    sys_version = ""

    def _answer(self) -> Response:
        target = route(self.command, urlsplit(self.path).path)
        if isinstance(target, Response):
            return target
        if target != "ready":
            return respond(target, None, self.server.metrics_registry)
        try:
            report = self.server.registry.run()
        except Exception as exc:
            return ready_failed(exc)
        return respond(target, report, self.server.metrics_registry)

    def _serve(self) -> None:
        response = self._answer()
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


@attrs.define(eq=False)
class HealthServer:
    """A running :func:`serve_health` server: its address, and ``close()``.

    Use it as a context manager to stop it on the way out.

    Attributes:
        host: The address it listens on.
        port: The port it listens on (the one the system picked for ``port=0``).
    """

    host: str
    port: int
    _server: _Server = attrs.field(repr=False)
    _thread: threading.Thread = attrs.field(repr=False)

    @property
    def url(self) -> str:
        """``http://host:port``, to append ``/healthz``, ``/readyz`` or ``/metrics`` to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop listening and wait for the serving thread (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_health(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    registry: HealthRegistry,
    metrics_registry: Any = None,
) -> HealthServer:
    """Serve ``/healthz``, ``/readyz`` and ``/metrics`` from a daemon thread (stdlib only).

    The answers are exactly those of :class:`HealthApp` (the same code builds
    them); ``/readyz`` runs :meth:`HealthRegistry.run` in the request's
    thread. Meant for scripts and cron jobs that have no web framework: the
    server runs beside the work and never keeps the process alive.

    Args:
        host: The address to listen on (``"0.0.0.0"`` for every interface;
            the default only answers the machine itself).
        port: The port (``0``: any free one; read it from the result).
        registry: The checks ``/readyz`` runs.
        metrics_registry: A ``prometheus_client.CollectorRegistry`` for ``/metrics``.

    Raises:
        ConfigurationError: The address cannot be listened on (in use, unknown host).

    Examples:
        >>> import httpx
        >>> from resilient_pipeline.health import HealthRegistry
        >>> with serve_health(registry=HealthRegistry()) as server:
        ...     httpx.get(f"{server.url}/healthz").json()
        {'status': 'ok'}
    """
    if not isinstance(registry, HealthRegistry):
        raise ConfigurationError.for_option("registry", registry, "must be a HealthRegistry")
    non_empty_str().check("host", host)
    if integer(ge=0).check("port", port) > 65535:
        raise ConfigurationError.for_option("port", port, "must be an int from 0 to 65535")
    server_type = _Server6 if ":" in host else _Server
    try:
        server = server_type((host, port), _Handler)
    except OSError as exc:
        raise ConfigurationError.for_option(
            "port" if port else "host", port if port else host, f"cannot listen: {exc.strerror}"
        ) from exc
    server.registry = registry
    server.metrics_registry = metrics_registry
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name=f"resilient-pipeline health server :{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return HealthServer(host, server.server_address[1], server, thread)
