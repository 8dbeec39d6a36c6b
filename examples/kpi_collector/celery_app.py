"""The collector's Celery app: the broker and result backend from the environment.

Start the workers (each runs one task at a time; add processes for more)::

    export KPI_CELERY_BROKER=amqp://user:password@rabbit//
    export KPI_CELERY_BACKEND=redis://redis:6379/1
    export KPI_META_TOKEN=... KPI_GOOGLE_TOKEN=... KPI_DB=postgresql://...
    celery -A examples.kpi_collector.celery_app worker --pool=solo --concurrency=1

then ``python -m examples.kpi_collector collect --engine celery --workers 8 ...``
sends 8 tasks per pass. Both URLs may hold passwords: they come from the
environment only, never the command line.
"""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]

from resilient_pipeline.engines.celery import register
from resilient_pipeline.exceptions import ConfigurationError

__all__ = ["BACKEND_ENV", "BROKER_ENV", "app", "collect", "configured"]

BROKER_ENV = "KPI_CELERY_BROKER"
BACKEND_ENV = "KPI_CELERY_BACKEND"


def configured() -> None:
    """Fail with one line naming the variable when the broker or the backend is not set."""
    for variable, what in ((BROKER_ENV, "broker"), (BACKEND_ENV, "result backend")):
        if not os.environ.get(variable, "").strip():
            raise ConfigurationError(
                f"{variable} is not set: export the Celery {what} URL (--engine celery)",
                option=variable,
                value=None,
            )


# Importable without them (tests, docs); the collector calls configured() before dispatching.
app = Celery(
    "kpi_collector",
    broker=os.environ.get(BROKER_ENV) or None,
    backend=os.environ.get(BACKEND_ENV) or None,
)
# A busy worker does not hold tasks an idle one could run (see engines.celery).
app.conf.worker_prefetch_multiplier = 1
collect = register(app)
