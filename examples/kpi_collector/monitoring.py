"""What an operator watches while a run goes on: ``/healthz``, ``/readyz`` and ``/metrics``.

``--serve-metrics PORT`` starts a :class:`RunMonitor`'s server before the run
and stops it after. The run tells the monitor what to watch as it goes:

* ``/readyz``: the database answers (``database``), every account's circuit
  breaker of each platform is closed (``<platform>_breakers``), a partition of
  each platform succeeded within ``max_age`` (``<platform>_fresh``), and the
  run's check report has no failed ``error``/``critical`` check (``checks``;
  ``degraded`` until the checks ran);
* ``/metrics``: the library's metrics of the run (a
  :class:`~resilient_pipeline.observability.PrometheusMetrics` bridge subscribed
  while it runs) and one business gauge, the spend stored for the run's days
  per platform (``resilient_pipeline_spend_collected_micros{platform=...}``;
  no client label: a thousand clients make two series).

Example:
    >>> import httpx
    >>> with RunMonitor() as monitor:
    ...     url = monitor.serve(port=0)
    ...     monitor.spend.set(12_340_000, platform="meta_ads")
    ...     text = httpx.get(f"{url}/metrics").text
    >>> 'resilient_pipeline_spend_collected_micros{platform="meta_ads"} 1.234e+07' in text
    True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from resilient_pipeline import PartitionLedger, subscribe
from resilient_pipeline.breaker import CircuitBreaker, CircuitBreakerRegistry
from resilient_pipeline.checks import CheckReport
from resilient_pipeline.events import Subscription
from resilient_pipeline.exceptions import ConfigurationError, MissingDependencyError
from resilient_pipeline.health import (
    HealthRegistry,
    HealthServer,
    breakers_closed,
    checks_passing,
    database_ready,
    ledger_fresh,
    serve_health,
)
from resilient_pipeline.observability import PrometheusMetrics
from resilient_pipeline.storage import Store

from . import repository

__all__ = ["FRESH_WITHIN", "SPEND_GAUGE", "RunMonitor"]

SPEND_GAUGE = "spend_collected"
"""The business gauge's name (exported as ``resilient_pipeline_spend_collected_micros``)."""

FRESH_WITHIN = dt.timedelta(hours=26)
"""How old a platform's last collected partition may be before ``/readyz`` fails (a daily
run, plus slack): the same bound as the ``StalePipelineData`` alert."""


class RunMonitor:
    """The collector's health checks and metrics for one run, and the server for both.

    Give it to :func:`~examples.kpi_collector.pipeline.run` (``monitor=``): the
    run subscribes :attr:`metrics` while it runs, registers its store,
    ledgers and breakers as health checks, sets the spend gauge after
    collecting and the check report after checking, and calls each
    :attr:`at_end` hook (with the server's URL) before it closes its store.
    One monitor watches one run. Needs ``prometheus-client`` (the
    ``prometheus`` extra).

    Args:
        metrics_registry: The ``prometheus_client`` registry for the run's
            metrics (default: a new one, so ``/metrics`` shows this run only).
        max_age: The ledger freshness bound per platform.
        cache_ttl: Seconds ``/readyz`` reuses a report.
    """

    def __init__(
        self,
        *,
        metrics_registry: Any = None,
        max_age: dt.timedelta = FRESH_WITHIN,
        cache_ttl: float = 1.0,
    ) -> None:
        if metrics_registry is None:
            try:
                from prometheus_client import CollectorRegistry
            except ImportError:
                raise MissingDependencyError(
                    package="prometheus-client", extra="prometheus", feature="--serve-metrics"
                ) from None
            metrics_registry = CollectorRegistry()
        self.metrics = PrometheusMetrics(registry=metrics_registry)
        self.spend = self.metrics.business_gauge(
            SPEND_GAUGE,
            description="Spend stored for the run's days, per platform, in micros of the "
            "account currency.",
            labels=("platform",),
            unit="micros",
        )
        self.max_age = max_age
        self.health = HealthRegistry(cache_ttl=cache_ttl)
        self.report: CheckReport | None = None
        self.health.add(checks_passing(lambda: self.report, name="checks"))
        self.at_end: list[Callable[[str | None], None]] = []
        self.server: HealthServer | None = None
        self._subscription: Subscription | None = None

    # -- the server ---------------------------------------------------------------
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving (``port=0``: any free port); the base URL."""
        if self.server is not None:
            raise ConfigurationError.for_option("port", port, "the monitor is already serving")
        self.server = serve_health(
            host, port, registry=self.health, metrics_registry=self.metrics.registry
        )
        return self.server.url

    @property
    def url(self) -> str | None:
        """``http://host:port`` while serving, else ``None``."""
        return None if self.server is None else self.server.url

    def close(self) -> None:
        """Stop the server and the metrics subscription (idempotent)."""
        self.stop_recording()
        if self.server is not None:
            self.server.close()
            self.server = None

    def __enter__(self) -> RunMonitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what the run calls ---------------------------------------------------------
    def start_recording(self) -> None:
        """Subscribe the metrics bridge to every event of the process (the run's)."""
        if self._subscription is None:
            self._subscription = subscribe(self.metrics)

    def stop_recording(self) -> None:
        """Unsubscribe the metrics bridge; the values stay."""
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None

    def watch_store(self, store: Store) -> None:
        """``/readyz`` checks that the run's database answers."""
        self.health.add(database_ready(store, timeout=2.0))

    def watch_platform(
        self,
        platform: str,
        ledger: PartitionLedger,
        breakers: CircuitBreaker | CircuitBreakerRegistry,
    ) -> None:
        """``/readyz`` checks the platform's breakers and its ledger freshness."""
        self.health.add(
            breakers_closed(breakers, name=f"{platform}_breakers"),
            ledger_fresh(ledger, platform, max_age=self.max_age, timeout=2.0),
        )

    def record_spend(
        self, store: Store, platforms: Sequence[str], start: dt.date, end: dt.date
    ) -> dict[str, int]:
        """Set the spend gauge from the database: spend of ``start``..``end`` per platform."""
        spend = dict.fromkeys(platforms, 0)
        for row in repository.daily_totals(store, start=start, end=end):
            if row.platform in spend:
                spend[row.platform] += int(row.spend_micros)
        for platform, micros in spend.items():
            self.spend.set(micros, platform=platform)
        return spend

    def checked(self, report: CheckReport) -> None:
        """Keep the run's check report for ``/readyz``."""
        self.report = report

    def finished(self) -> None:
        """Call the :attr:`at_end` hooks (the server is still up, the store still open)."""
        for hook in self.at_end:
            hook(self.url)
