"""Health checks for a running pipeline: probes, ``/healthz``, ``/readyz`` and ``/metrics``.

A :class:`HealthRegistry` runs named checks concurrently, each with its own
timeout, and reports each one ``ok``, ``degraded`` or ``failing`` with a
detail and its latency. Built-in checks cover the database
(:func:`database_ready`), Redis (:func:`redis_ready`), circuit breakers
(:func:`breakers_closed`), the partition ledger's freshness
(:func:`ledger_fresh`) and consistency checks (:func:`checks_passing`).
:class:`HealthApp` serves the registry as a plain ASGI app (mount it in
Starlette or FastAPI); :func:`serve_health` serves it from the standard
library's HTTP server, for scripts and cron jobs.

Examples:
    >>> from resilient_pipeline import SQLiteStore
    >>> from resilient_pipeline.health import HealthRegistry, database_ready
    >>> registry = HealthRegistry([database_ready(SQLiteStore(":memory:"))])
    >>> report = registry.run()
    >>> report.status, report.http_status
    ('ok', 200)
"""

from __future__ import annotations

from ._asgi import HealthApp
from ._builtin import breakers_closed, checks_passing, database_ready, ledger_fresh, redis_ready
from ._registry import HealthCheck, HealthRegistry
from ._serve import HealthServer, serve_health
from ._values import HealthOutcome, HealthReport, HealthResult, HealthStatus

__all__ = [
    "HealthApp",
    "HealthCheck",
    "HealthOutcome",
    "HealthRegistry",
    "HealthReport",
    "HealthResult",
    "HealthServer",
    "HealthStatus",
    "breakers_closed",
    "checks_passing",
    "database_ready",
    "ledger_fresh",
    "redis_ready",
    "serve_health",
]
