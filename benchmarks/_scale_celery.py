"""The Celery app of ``bench_scale.py``'s workers: ``celery -A _scale_celery worker``.

Results come back over RabbitMQ itself (``rpc://``): the benchmark shares no
Redis database with the test suites running beside it. The benchmark sends
its tasks to a queue of its own (``RP_BENCH_CELERY_QUEUE``), so no other
worker on the broker takes them.
"""

from __future__ import annotations

import os

import bench_scale  # noqa: F401 -- imported before the pool forks, not by every child
from celery import Celery

from resilient_pipeline.engines.celery import register

BROKER = os.environ.get("RP_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")

app = Celery("bench_scale", broker=BROKER, backend="rpc://")
app.conf.task_default_queue = os.environ.get("RP_BENCH_CELERY_QUEUE", "rp_bench")
app.conf.worker_prefetch_multiplier = 1
app.conf.broker_connection_retry_on_startup = True
collect = register(app)
