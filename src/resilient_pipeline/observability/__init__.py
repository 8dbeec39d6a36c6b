"""Events out to operators: log lines, bound context, Prometheus and OpenTelemetry metrics.

Every primitive reports through events (see ``resilient_pipeline.subscribe``);
this package turns them into what people and monitoring systems read:

* :func:`configure_logging`: one call for an application: level from
  ``LOG_LEVEL``, :class:`ConsoleFormatter` lines for people or
  :class:`JsonFormatter` lines for machines, secrets masked before any handler.
* :func:`bind_context`: fields (run id, source, partition key, attempt) bound
  once to a unit of work, on every event and log line inside it, in worker
  threads and tasks too; :func:`bound_context` reads them.
* :class:`RedactingFilter`: masks secrets in any record (message, traceback,
  extras) before a handler's own formatter renders it.
* :class:`PrometheusMetrics` (``prometheus`` extra) and
  :class:`OpenTelemetryMetrics` (``opentelemetry`` extra): event handlers
  keeping the metrics listed in :data:`METRICS` (call durations, retries,
  give-ups, breaker states, rejections, rows, partitions, freshness, checks,
  alerts), plus business gauges you declare.
* :class:`StructlogSink` and :func:`add_bound_context` (``structlog`` extra):
  the same events and fields through structlog.

See ``docs/observability.md`` for every log field and metric.

Examples:
    >>> import logging, io
    >>> stream = io.StringIO()
    >>> handler = logging.StreamHandler(stream)
    >>> handler.setFormatter(JsonFormatter())
    >>> log = logging.getLogger("demo.json")
    >>> log.addHandler(handler)
    >>> with bind_context(run_id="r1"):
    ...     log.warning("GET /x?token=abc failed", extra={"attempt": 2})
    >>> import json
    >>> record = json.loads(stream.getvalue())
    >>> record["message"], record["attempt"], record["level"], record["context"]
    ('GET /x?token=*** failed', 2, 'WARNING', {'run_id': 'r1'})
"""

from __future__ import annotations

from resilient_pipeline._core import bind_context, bound_context, redact

from ._logging import (
    ConsoleFormatter,
    JsonFormatter,
    RedactingFilter,
    configure_logging,
    record_context,
)
from ._metrics import (
    CIRCUIT_STATES,
    METRICS,
    BusinessGauge,
    MetricSpec,
    OpenTelemetryMetrics,
    PrometheusMetrics,
)
from ._structlog import StructlogSink, add_bound_context

__all__ = [
    "CIRCUIT_STATES",
    "METRICS",
    "BusinessGauge",
    "ConsoleFormatter",
    "JsonFormatter",
    "MetricSpec",
    "OpenTelemetryMetrics",
    "PrometheusMetrics",
    "RedactingFilter",
    "StructlogSink",
    "add_bound_context",
    "bind_context",
    "bound_context",
    "configure_logging",
    "record_context",
    "redact",
]
