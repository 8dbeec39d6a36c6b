"""Events out to operators: JSON log lines, Prometheus and OpenTelemetry metrics.

Every primitive reports through events (see ``resilient_pipeline.subscribe``);
this module turns them into what monitoring systems read:

* :class:`JsonFormatter`: one JSON object per log record, with the event's
  fields, secrets masked. Plug it into any stdlib ``logging`` handler.
* :class:`RedactingFilter`: masks secrets in any record (message, traceback,
  extras) before a handler's own formatter renders it.
* :class:`PrometheusMetrics` (``prometheus`` extra) and
  :class:`OpenTelemetryMetrics` (``opentelemetry`` extra): event handlers that
  keep three metrics up to date: ``resilient_pipeline_events_total``
  (counter; labels ``event``, ``source``), ``resilient_pipeline_rows_total``
  (counter; ``table``, ``outcome``) and ``resilient_pipeline_circuit_state``
  (gauge; ``circuit``; 0 closed, 1 half-open, 2 open).

Examples:
    >>> import logging, io
    >>> stream = io.StringIO()
    >>> handler = logging.StreamHandler(stream)
    >>> handler.setFormatter(JsonFormatter())
    >>> log = logging.getLogger("demo.json")
    >>> log.addHandler(handler)
    >>> log.warning("GET /x?token=abc failed", extra={"attempt": 2})
    >>> import json
    >>> record = json.loads(stream.getvalue())
    >>> record["message"], record["attempt"], record["level"]
    ('GET /x?token=*** failed', 2, 'WARNING')
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from resilient_pipeline._core import Event, redact, redact_data
from resilient_pipeline.exceptions import MissingDependencyError

__all__ = [
    "CIRCUIT_STATES",
    "JsonFormatter",
    "OpenTelemetryMetrics",
    "PrometheusMetrics",
    "RedactingFilter",
    "redact",
]

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

CIRCUIT_STATES: dict[str, int] = {"CircuitClosed": 0, "CircuitHalfOpened": 1, "CircuitOpened": 2}
"""The circuit-state gauge's value after each breaker transition event."""

_ROW_OUTCOMES = ("inserted", "updated", "unchanged", "stale", "duplicates")


def _jsonable(value: object) -> object:
    """A :func:`redact_data` result as JSON types (other objects by their ``str``)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """Formats each record as one JSON object: time, level, logger, message, extras.

    Fields passed in ``extra`` (every event field, for the library's own
    records) become top-level keys; values that are not JSON types are
    rendered with ``str``. The message, every string (nested ones too), the
    traceback (chained causes and notes included) and the stack go through
    :func:`~resilient_pipeline.observability.redact`; a field whose name
    says it holds a secret (``token``, ``api_key``, ``Authorization``...)
    is masked whole.

    Examples:
        >>> record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO",
        ...                                 "name": "x", "created": 0.0})
        >>> JsonFormatter().format(record)
        '{"time": "1970-01-01T00:00:00+00:00", "level": "INFO", "logger": "x", "message": "hello"}'
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        payload: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = _jsonable(redact_data(value, key))
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            payload["exception"] = redact(record.exc_text)
        if record.stack_info:
            payload["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(payload, default=str)


_PLAIN = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Masks secrets in every record a handler receives, before its formatter runs.

    Add it to a handler (``handler.addFilter(RedactingFilter())``) whose
    formatter is stdlib's or derived from it. It rewrites the record in place:
    the message with its arguments, the traceback of ``logging.exception``
    (chained ``__cause__``/``__context__`` and notes included, rendered once
    and kept as ``exc_text``, which stdlib formatters print instead of
    rendering their own), the stack, and ``extra`` fields (strings redacted,
    secret-named fields masked). Handlers after it see the masked record too.

    Examples:
        >>> import io
        >>> stream = io.StringIO()
        >>> handler = logging.StreamHandler(stream)
        >>> handler.addFilter(RedactingFilter())
        >>> log = logging.getLogger("demo.redacting")
        >>> log.addHandler(handler)
        >>> log.warning("GET %s failed", "/me?access_token=abc&appsecret_proof=f00d")
        >>> stream.getvalue()
        'GET /me?access_token=***&appsecret_proof=*** failed\\n'
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record's secrets in place; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: S110 -- the handler's formatter reports a bad format string
            pass
        else:
            record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and not key.startswith("_"):
                record.__dict__[key] = redact_data(value, key)
        return True


class _Recorder:
    """The event-to-metric mapping shared by the Prometheus and OpenTelemetry bridges."""

    def _count_event(self, event: str, source: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _count_rows(self, table: str, outcome: str, rows: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def _set_circuit(self, circuit: str, state: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, event: Event) -> None:
        """Record ``event`` (subscribe this object with ``resilient_pipeline.subscribe``)."""
        kind = type(event).__name__
        self._count_event(kind, event.source)
        state = CIRCUIT_STATES.get(kind)
        if state is not None:
            self._set_circuit(event.source, state)
        if kind == "RowsUpserted":
            fields = event.fields()
            table = event.source  # RowsUpserted's source is the table
            for outcome in _ROW_OUTCOMES:
                count = fields.get(outcome)
                if isinstance(count, int) and count:
                    self._count_rows(table, outcome, count)


def _missing(package: str, extra: str) -> MissingDependencyError:
    return MissingDependencyError(package=package, extra=extra, feature="metrics export")


class PrometheusMetrics(_Recorder):
    """Keeps Prometheus metrics from events; subscribe it once per process.

    Args:
        registry: The ``prometheus_client`` registry (default: the global one).
        namespace: Prefix of the metric names.

    Examples:
        >>> from prometheus_client import CollectorRegistry, generate_latest
        >>> from resilient_pipeline import subscribe
        >>> metrics = PrometheusMetrics(registry=CollectorRegistry())
        >>> with subscribe(metrics):
        ...     pass  # run your pipeline here
        >>> b"resilient_pipeline_events_total" in generate_latest(metrics.registry)
        True
    """

    def __init__(self, *, registry: Any = None, namespace: str = "resilient_pipeline") -> None:
        try:
            import prometheus_client
        except ImportError as exc:  # pragma: no cover - installed for the tests
            raise _missing("prometheus-client", "prometheus") from exc
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        registry = self.registry
        self._events = prometheus_client.Counter(
            "events",
            "Events emitted by resilient-pipeline.",
            ["event", "source"],
            namespace=namespace,
            registry=registry,
        )
        self._rows = prometheus_client.Counter(
            "rows",
            "Rows written by idempotent upserts, by outcome.",
            ["table", "outcome"],
            namespace=namespace,
            registry=registry,
        )
        self._circuits = prometheus_client.Gauge(
            "circuit_state",
            "0 closed, 1 half-open, 2 open.",
            ["circuit"],
            namespace=namespace,
            registry=registry,
        )

    def _count_event(self, event: str, source: str) -> None:
        self._events.labels(event=event, source=source).inc()

    def _count_rows(self, table: str, outcome: str, rows: int) -> None:
        self._rows.labels(table=table, outcome=outcome).inc(rows)

    def _set_circuit(self, circuit: str, state: int) -> None:
        self._circuits.labels(circuit=circuit).set(state)


class OpenTelemetryMetrics(_Recorder):
    """Reports the same metrics through the OpenTelemetry metrics API.

    Args:
        meter: An ``opentelemetry.metrics.Meter`` (default: the global
            provider's meter named ``resilient_pipeline``).

    Examples:
        >>> from resilient_pipeline import subscribe
        >>> with subscribe(OpenTelemetryMetrics()):
        ...     pass  # run your pipeline here
    """

    def __init__(self, *, meter: Any = None) -> None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:  # pragma: no cover - installed for the tests
            raise _missing("opentelemetry-api", "opentelemetry") from exc
        self.meter = meter if meter is not None else metrics.get_meter("resilient_pipeline")
        self._events = self.meter.create_counter(
            "resilient_pipeline.events", description="Events emitted by resilient-pipeline."
        )
        self._rows = self.meter.create_counter(
            "resilient_pipeline.rows", description="Rows written by idempotent upserts."
        )
        self._circuits = self.meter.create_gauge(
            "resilient_pipeline.circuit_state", description="0 closed, 1 half-open, 2 open."
        )

    def _count_event(self, event: str, source: str) -> None:
        self._events.add(1, {"event": event, "source": source})

    def _count_rows(self, table: str, outcome: str, rows: int) -> None:
        self._rows.add(rows, {"table": table, "outcome": outcome})

    def _set_circuit(self, circuit: str, state: int) -> None:
        self._circuits.set(state, {"circuit": circuit})
