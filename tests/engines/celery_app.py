"""The Celery app of the engine tests' workers: ``celery -A tests.engines.celery_app worker``.

Everything comes from the environment the test gives its workers: the broker,
the result backend, and a queue of the test run's own, so workers of another
run (or a leftover one) on the same broker never take these tasks.
"""

from __future__ import annotations

import os

from celery import Celery

from resilient_pipeline.engines.celery import register

BROKER_ENV = "RP_TEST_AMQP_URL"
BACKEND_ENV = "RP_TEST_CELERY_BACKEND"
QUEUE_ENV = "RP_TEST_CELERY_QUEUE"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def make_app(broker: str, backend: str, queue: str) -> Celery:
    """The app, configured as the engine's documentation advises."""
    app = Celery("rp_engine_tests", broker=broker, backend=backend)
    app.conf.update(
        task_default_queue=queue,
        worker_prefetch_multiplier=1,  # a busy worker holds no task an idle one could run
        broker_connection_retry_on_startup=True,
        result_expires=600,
    )
    return app


app = make_app(
    os.environ.get(BROKER_ENV, DEFAULT_BROKER),
    os.environ.get(BACKEND_ENV, "rpc://"),
    os.environ.get(QUEUE_ENV, "rp-engine-tests"),
)
collect = register(app)
