"""Events to metrics: one mapping, two bridges (prometheus_client and OpenTelemetry)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, cast

import attrs

from resilient_pipeline._core import Clock, Event, callable_or_none, integer, resolve_clock
from resilient_pipeline.exceptions import ConfigurationError, MissingDependencyError

__all__ = [
    "CIRCUIT_STATES",
    "METRICS",
    "BusinessGauge",
    "MetricSpec",
    "OpenTelemetryMetrics",
    "PrometheusMetrics",
]

CIRCUIT_STATES: dict[str, int] = {"CircuitClosed": 0, "CircuitHalfOpened": 1, "CircuitOpened": 2}
"""The breaker-state gauge's value after each breaker transition event."""

Kind = Literal["counter", "gauge", "histogram"]


@attrs.frozen
class MetricSpec:
    """One metric the bridges keep: its name, kind, unit, labels and meaning.

    Attributes:
        name: The name without namespace or unit (``"call_duration"``).
        kind: ``"counter"``, ``"gauge"`` or ``"histogram"``.
        unit: ``"seconds"`` or ``""``.
        labels: The label names, in order.
        description: What it measures.

    Examples:
        >>> spec = MetricSpec("call_duration", "histogram", "seconds", ("source", "outcome"), "")
        >>> spec.exported("resilient_pipeline")
        'resilient_pipeline_call_duration_seconds'
        >>> MetricSpec("retries", "counter", "", ("source",), "").exported("resilient_pipeline")
        'resilient_pipeline_retries_total'
    """

    name: str
    kind: Kind
    unit: str
    labels: tuple[str, ...]
    description: str

    def exported(self, namespace: str) -> str:
        """The name Prometheus shows (a counter's with ``_total``, a histogram's base name)."""
        name = f"{namespace}_{self.name}" + (f"_{self.unit}" if self.unit else "")
        return f"{name}_total" if self.kind == "counter" else name


def _spec(name: str, kind: Kind, unit: str, labels: str, description: str) -> MetricSpec:
    return MetricSpec(name, kind, unit, tuple(labels.split()), description)


METRICS: tuple[MetricSpec, ...] = (
    _spec("events", "counter", "", "event source", "Events emitted, by class and source."),
    _spec(
        "call_duration",
        "histogram",
        "seconds",
        "source outcome",
        "Duration of retried calls, all attempts and waits included.",
    ),
    _spec("attempts", "counter", "", "source", "Attempts made by retried calls."),
    _spec("retries", "counter", "", "source", "Retries scheduled after a failed attempt."),
    _spec("giveups", "counter", "", "source reason", "Retried calls that gave up, by reason."),
    _spec("breaker_state", "gauge", "", "breaker", "Breaker state: 0 closed, 1 half-open, 2 open."),
    _spec(
        "breaker_transitions",
        "counter",
        "",
        "breaker state",
        "Breaker transitions, by the state entered.",
    ),
    _spec(
        "rejected_calls",
        "counter",
        "",
        "policy source",
        "Calls refused without running: breaker, rate_limit, bulkhead or timeout.",
    ),
    _spec(
        "rows",
        "counter",
        "",
        "source outcome",
        "Rows written by upserts (inserted, updated, unchanged, stale, duplicates) "
        "or quarantined by validation (whole units of a partition contract included).",
    ),
    _spec(
        "partitions",
        "counter",
        "",
        "source outcome",
        "Ledger partitions collected (new, unchanged, restated) or failed "
        "(failed, exhausted, recheck_failed).",
    ),
    _spec("ledger_gaps", "gauge", "", "source", "Partitions the last backfill run left as gaps."),
    _spec("restatements", "counter", "", "source", "Partitions whose upstream data changed."),
    _spec(
        "check_results",
        "counter",
        "",
        "check severity outcome",
        "Data checks that failed or could not run (outcome errored), by severity.",
    ),
    _spec(
        "alerts", "counter", "", "severity outcome", "Alerts sent, suppressed or failed to send."
    ),
    _spec(
        "last_success_timestamp",
        "gauge",
        "seconds",
        "source",
        "Unix time of the last partition collected per source.",
    ),
)
"""Every built-in metric, in the order the bridges create them."""

_BY_NAME = {spec.name: spec for spec in METRICS}
_ROW_OUTCOMES = ("inserted", "updated", "unchanged", "stale", "duplicates")
_FAILED_STATUS = {"failed": "failed", "exhausted": "exhausted", "succeeded": "recheck_failed"}
_REJECTIONS = {
    "CallRejected": "breaker",
    "RateLimitRejected": "rate_limit",
    "BulkheadRejected": "bulkhead",
    "TimedOut": "timeout",
}
_ALERTS = {"AlertSent": "sent", "AlertSuppressed": "suppressed", "AlertDeliveryFailed": "failed"}
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def _is_name(value: object) -> bool:
    return isinstance(value, str) and _NAME.match(value) is not None


def _rollup(name: str) -> str:
    """A keyed breaker's or limiter's name (``ads[act_1]``) rolled up to its template's."""
    if name.endswith("]"):
        head, bracket, _ = name.partition("[")
        if bracket and head:
            return head
    return name


def _partition_source(event: Event) -> str:
    """The partition's source: bound by the backfill, else ``source`` of ``source/key/period``."""
    bound = event.context.get("source")
    if isinstance(bound, str):
        return bound
    partition = str(getattr(event, "partition", ""))
    return partition.split("/", 1)[0] if partition else event.source


class _Recorder:
    """The event-to-metric mapping shared by the Prometheus and OpenTelemetry bridges."""

    namespace: str

    def __init__(self, clock: Clock | None) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        # rolled-up breaker name -> {breaker name: state} of its breakers not closed
        self._breakers: dict[str, dict[str, int]] = {}
        self._instruments = {spec.name: self._make(spec) for spec in METRICS}
        self._business: dict[str, BusinessGauge] = {}

    # -- what a backend provides --------------------------------------------
    def _make(self, spec: MetricSpec) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _record(
        self, spec: MetricSpec, instrument: Any, value: float, labels: dict[str, str]
    ) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the mapping ---------------------------------------------------------
    def _put(self, name: str, value: float, **labels: str) -> None:
        self._record(_BY_NAME[name], self._instruments[name], value, labels)

    def __call__(self, event: Event) -> None:
        """Record ``event`` (subscribe this object with ``resilient_pipeline.subscribe``)."""
        kind = type(event).__name__
        source = _rollup(event.source)
        self._put("events", 1, event=kind, source=source)
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, event, source)

    def _call_finished(self, event: Any, source: str) -> None:
        self._put("call_duration", event.elapsed, source=source, outcome=event.outcome)
        self._put("attempts", event.attempts, source=source)

    def _retry_scheduled(self, _event: Any, source: str) -> None:
        self._put("retries", 1, source=source)

    def _retry_exhausted(self, event: Any, source: str) -> None:
        self._put("giveups", 1, source=source, reason=event.reason)

    def _circuit(self, event: Any, source: str) -> None:
        kind = type(event).__name__
        state = CIRCUIT_STATES[kind]
        with self._lock:
            states = self._breakers.setdefault(source, {})
            if state:
                states[event.source] = state
            else:
                states.pop(event.source, None)
            worst = max(states.values(), default=0)
            if not states:
                del self._breakers[source]
        self._put("breaker_state", worst, breaker=source)
        entered = {0: "closed", 1: "half_open", 2: "open"}[state]
        self._put("breaker_transitions", 1, breaker=source, state=entered)

    def _rejected(self, event: Any, source: str) -> None:
        self._put("rejected_calls", 1, policy=_REJECTIONS[type(event).__name__], source=source)

    def _rows_upserted(self, event: Any, source: str) -> None:
        for outcome in _ROW_OUTCOMES:
            count = getattr(event, outcome)
            if isinstance(count, int) and count:
                self._put("rows", count, source=source, outcome=outcome)

    def _rows_quarantined(self, event: Any, source: str) -> None:
        if event.quarantined:
            self._put("rows", event.quarantined, source=source, outcome="quarantined")

    def _unit_quarantined(self, event: Any, source: str) -> None:
        # A partition contract quarantines a whole unit: every row of it counts.
        if event.rows:
            self._put("rows", event.rows, source=source, outcome="quarantined")

    def _partition_collected(self, event: Any, _source: str) -> None:
        source = _partition_source(event)
        self._put("partitions", 1, source=source, outcome=event.outcome)
        self._put("last_success_timestamp", resolve_clock(self.clock).time(), source=source)

    def _partition_failed(self, event: Any, _source: str) -> None:
        outcome = _FAILED_STATUS.get(event.status, event.status)
        self._put("partitions", 1, source=_partition_source(event), outcome=outcome)

    def _partition_restated(self, event: Any, _source: str) -> None:
        self._put("restatements", 1, source=_partition_source(event))

    def _backfill_finished(self, event: Any, _source: str) -> None:
        self._put("ledger_gaps", event.failed, source=_partition_source(event))

    def _check_failed(self, event: Any, _source: str) -> None:
        self._put("check_results", 1, check=event.check, severity=event.severity, outcome="failed")

    def _check_errored(self, event: Any, _source: str) -> None:
        # The outcome of a check that could not run is unknown, and so is its severity here.
        self._put("check_results", 1, check=event.check, severity="unknown", outcome="errored")

    def _alert(self, event: Any, _source: str) -> None:
        outcome = _ALERTS[type(event).__name__]
        self._put("alerts", 1, severity=event.severity, outcome=outcome)

    # -- business gauges -----------------------------------------------------
    def business_gauge(
        self,
        name: str,
        *,
        description: str,
        labels: Iterable[str] = (),
        unit: str = "",
        value: Callable[[Any], float] | None = None,
        max_series: int = 100,
    ) -> BusinessGauge:
        """Declare a gauge of your own data (spend collected per platform...), kept here.

        Args:
            name: The metric name, without namespace (``"spend_collected"``).
            description: What it measures.
            labels: Its label names; declare only bounded ones (a platform,
                not a client id): each label set is a time series.
            unit: ``"seconds"``, ``"bytes"``, a currency... appended to the name.
            value: Computes the value from rows, for :meth:`BusinessGauge.observe`.
            max_series: How many label sets it may hold; one more is an error.

        Examples:
            >>> from prometheus_client import CollectorRegistry
            >>> metrics = PrometheusMetrics(registry=CollectorRegistry())
            >>> spend = metrics.business_gauge(
            ...     "spend_collected", description="Spend collected today.",
            ...     labels=("platform",), unit="euros",
            ...     value=lambda rows: sum(row["spend"] for row in rows))
            >>> spend.observe([{"spend": 2.5}, {"spend": 1.0}], platform="meta")
            >>> metrics.registry.get_sample_value(
            ...     "resilient_pipeline_spend_collected_euros", {"platform": "meta"})
            3.5
        """
        if not _is_name(name):
            raise ConfigurationError.for_option(
                "name", name, "must be a metric name ([a-zA-Z_0-9])"
            )
        if name in _BY_NAME or name in self._business:
            raise ConfigurationError.for_option("name", name, "is already a metric of this bridge")
        if unit and not _is_name(unit):
            raise ConfigurationError.for_option("unit", unit, "must be a word ([a-zA-Z_0-9])")
        label_names: tuple[object, ...] = (labels,) if isinstance(labels, str) else tuple(labels)
        if not all(_is_name(label) for label in label_names):
            raise ConfigurationError.for_option("labels", labels, "must be label names")
        integer(ge=1).check("max_series", max_series)
        callable_or_none().check("value", value)
        spec = MetricSpec(name, "gauge", unit, cast("tuple[str, ...]", label_names), description)
        gauge = BusinessGauge(self, spec, self._make(spec), value, max_series)
        self._business[name] = gauge
        return gauge


_HANDLERS: dict[str, Callable[[_Recorder, Any, str], None]] = {
    "CallFinished": _Recorder._call_finished,
    "RetryScheduled": _Recorder._retry_scheduled,
    "RetryExhausted": _Recorder._retry_exhausted,
    **dict.fromkeys(CIRCUIT_STATES, _Recorder._circuit),
    **dict.fromkeys(_REJECTIONS, _Recorder._rejected),
    "RowsUpserted": _Recorder._rows_upserted,
    "RowsQuarantined": _Recorder._rows_quarantined,
    "PartitionQuarantined": _Recorder._unit_quarantined,
    "PartitionCollected": _Recorder._partition_collected,
    "PartitionFailed": _Recorder._partition_failed,
    "PartitionRestated": _Recorder._partition_restated,
    "BackfillFinished": _Recorder._backfill_finished,
    "CheckFailed": _Recorder._check_failed,
    "CheckErrored": _Recorder._check_errored,
    **dict.fromkeys(_ALERTS, _Recorder._alert),
}


class BusinessGauge:
    """A gauge of your own data, declared with ``metrics.business_gauge(...)``.

    Examples:
        >>> from prometheus_client import CollectorRegistry
        >>> metrics = PrometheusMetrics(registry=CollectorRegistry())
        >>> rows = metrics.business_gauge("campaigns_seen", description="Campaigns.",
        ...                               labels=("platform",))
        >>> rows.set(12, platform="google")
        >>> metrics.registry.get_sample_value(
        ...     "resilient_pipeline_campaigns_seen", {"platform": "google"})
        12.0
    """

    def __init__(
        self,
        recorder: _Recorder,
        spec: MetricSpec,
        instrument: Any,
        value: Callable[[Any], float] | None,
        max_series: int,
    ) -> None:
        self.spec = spec
        self._recorder = recorder
        self._instrument = instrument
        self._value = value
        self._max_series = max_series
        self._series: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<BusinessGauge {self.spec.name!r} labels={self.spec.labels}>"

    def _labels(self, labels: Mapping[str, object]) -> dict[str, str]:
        expected = self.spec.labels
        if set(labels) != set(expected):
            raise ConfigurationError(
                f"gauge {self.spec.name!r} takes labels {list(expected)}, got {sorted(labels)}",
                option="labels",
                value=sorted(labels),
            )
        values = {name: str(labels[name]) for name in expected}
        key = tuple(values[name] for name in expected)
        with self._lock:
            if key not in self._series:
                if len(self._series) >= self._max_series:
                    raise ConfigurationError(
                        f"gauge {self.spec.name!r} already holds max_series={self._max_series} "
                        f"label sets; {values} would be one more (a label per client? "
                        "declare a coarser label, or raise max_series)",
                        option="max_series",
                        value=self._max_series,
                    )
                self._series.add(key)
        return values

    def set(self, value: float, **labels: object) -> None:
        """Set the gauge for ``labels`` to ``value``."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError.for_option(self.spec.name, value, "must be a number")
        self._recorder._record(self.spec, self._instrument, float(value), self._labels(labels))

    def observe(self, rows: Any, **labels: object) -> None:
        """Set the gauge for ``labels`` to ``value(rows)`` (the ``value`` it was declared with)."""
        if self._value is None:
            raise ConfigurationError.for_option(
                "value", None, f"gauge {self.spec.name!r} was declared without one; use set()"
            )
        self.set(self._value(rows), **labels)


def _missing(package: str, extra: str) -> MissingDependencyError:
    return MissingDependencyError(package=package, extra=extra, feature="metrics export")


class PrometheusMetrics(_Recorder):
    """Keeps Prometheus metrics from events; subscribe it once per process.

    The metrics are listed in ``METRICS`` and in ``docs/observability.md``.
    Label values stay few: a keyed breaker (``ads[act_1]``) counts under its
    template's name (``ads``), and no metric has a partition-key label.

    Args:
        registry: The ``prometheus_client`` registry (default: the global one).
        namespace: Prefix of the metric names.
        clock: The clock the freshness gauge reads (default: the library's).

    Examples:
        >>> from prometheus_client import CollectorRegistry, generate_latest
        >>> from resilient_pipeline import subscribe
        >>> metrics = PrometheusMetrics(registry=CollectorRegistry())
        >>> with subscribe(metrics):
        ...     pass  # run your pipeline here
        >>> b"resilient_pipeline_retries_total" in generate_latest(metrics.registry)
        True
    """

    def __init__(
        self,
        *,
        registry: Any = None,
        namespace: str = "resilient_pipeline",
        clock: Clock | None = None,
    ) -> None:
        try:
            import prometheus_client
        except ImportError as exc:  # pragma: no cover - installed for the tests
            raise _missing("prometheus-client", "prometheus") from exc
        if not _is_name(namespace):
            raise ConfigurationError.for_option("namespace", namespace, "must be a metric name")
        self._client = prometheus_client
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        self.namespace = namespace
        self._children: dict[tuple[object, ...], Any] = {}
        super().__init__(clock)

    def _make(self, spec: MetricSpec) -> Any:
        client = self._client
        factory = {
            "counter": client.Counter,
            "gauge": client.Gauge,
            "histogram": client.Histogram,
        }[spec.kind]
        return factory(
            spec.name,
            spec.description,
            spec.labels,
            namespace=self.namespace,
            unit=spec.unit,
            registry=self.registry,
        )

    def _record(
        self, spec: MetricSpec, instrument: Any, value: float, labels: dict[str, str]
    ) -> None:
        # prometheus_client's labels() costs microseconds; label sets are few, so keep them.
        key = (spec.name, *labels.items())
        child = self._children.get(key)
        if child is None:
            child = instrument.labels(**labels) if labels else instrument
            self._children[key] = child
        if spec.kind == "counter":
            child.inc(value)
        elif spec.kind == "gauge":
            child.set(value)
        else:
            child.observe(value)


# Unitless instruments keep an empty unit: "1" would make exporters add "_ratio".
_OTEL_UNITS = {"seconds": "s", "bytes": "By"}


class OpenTelemetryMetrics(_Recorder):
    """Reports the same metrics through the OpenTelemetry metrics API.

    Instrument names are ``resilient_pipeline.<name>`` with the unit apart
    (``s`` for seconds); OpenTelemetry's Prometheus exporter turns them into
    the names :class:`PrometheusMetrics` uses.

    Args:
        meter: An ``opentelemetry.metrics.Meter`` (default: the global
            provider's meter named ``resilient_pipeline``).
        clock: The clock the freshness gauge reads (default: the library's).

    Examples:
        >>> from resilient_pipeline import subscribe
        >>> with subscribe(OpenTelemetryMetrics()):
        ...     pass  # run your pipeline here
    """

    namespace = "resilient_pipeline"

    def __init__(self, *, meter: Any = None, clock: Clock | None = None) -> None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:  # pragma: no cover - installed for the tests
            raise _missing("opentelemetry-api", "opentelemetry") from exc
        self.meter = meter if meter is not None else metrics.get_meter("resilient_pipeline")
        super().__init__(clock)

    def _make(self, spec: MetricSpec) -> Any:
        create = {
            "counter": self.meter.create_counter,
            "gauge": self.meter.create_gauge,
            "histogram": self.meter.create_histogram,
        }[spec.kind]
        return create(
            f"{self.namespace}.{spec.name}",
            unit=_OTEL_UNITS.get(spec.unit, spec.unit),
            description=spec.description,
        )

    def _record(
        self, spec: MetricSpec, instrument: Any, value: float, labels: dict[str, str]
    ) -> None:
        if spec.kind == "counter":
            instrument.add(value, labels)
        elif spec.kind == "gauge":
            instrument.set(value, labels)
        else:
            instrument.record(value, labels)
