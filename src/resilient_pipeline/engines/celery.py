"""Celery as an engine: a worker task on your app, and a fan-out of one ledger run.

:func:`register` adds the task every worker runs to *your* Celery app: it
builds the job from its ``"package.module:factory"`` reference in the
worker's process and runs it with :func:`~resilient_pipeline.engines.run_job`,
returning :meth:`WorkResult.to_dict() <resilient_pipeline.engines.WorkResult.to_dict>`.
:func:`dispatch` enqueues one task per worker slot (each runs the whole job;
the ledger shares the partitions out) or one per chunk of keys, all under one
ledger run id, and gives back a :class:`Dispatched` whose
:meth:`~Dispatched.results` are :class:`~resilient_pipeline.engines.WorkResult`.

The task is registered with settings that make Celery's failures harmless:

* ``acks_late=True`` and ``reject_on_worker_lost=True``: a task is acknowledged
  only when it returns, so the broker redelivers the task of a worker that
  was killed or lost its connection. Also set ``worker_prefetch_multiplier=1``
  on the app and give each worker its real concurrency (``--pool=solo`` takes
  ``--concurrency=1``, else it prefetches for every CPU), so a busy worker
  does not hold tasks an idle one could run.
* The worker that died may have held partitions: a task (the redelivered
  one, or any other of the run) that finds a partition of its share leased
  but not renewed waits for that lease to end and takes the partition over
  before it returns (see :func:`~resilient_pipeline.engines.run_job`), so no
  result reports the run done while it is still a gap. Keep leases short (the
  default 30 s is fine): the wait blocks the worker.
* JSON only, both ways: the arguments are a reference, JSON parameters and
  keys; the result is plain JSON. No code and no connection crosses the
  broker; secrets stay in the workers' environment (:func:`dispatch` refuses
  parameters that look like credentials).
* A task that raises (an unknown job, a bad option) is acknowledged and not
  redelivered: it would fail the same way again. Partition failures never
  raise; they are in the result.

Duplicate deliveries, retries and killed workers cannot collect a partition
twice: a partition already succeeded is not claimed again, and a leased one
is held by one worker at a time.

RabbitMQ closes a channel whose delivery stays unacknowledged longer than its
``consumer_timeout`` (30 minutes by default): raise it above your longest
run, or use ``limit=`` / ``chunks=`` so each task stays short.

Examples:
    The worker module of your app::

        app = Celery("collector", broker="amqp://rabbit//", backend="redis://redis/1")
        app.conf.worker_prefetch_multiplier = 1
        collect = register(app)

    and, anywhere that can reach the broker::

        run = dispatch(app, "mycompany.jobs:meta_ads", params={"days": 30}, slots=8)
        failed = [r for r in run.results(timeout=3600) if not r.ok]

    The same, in one process without a broker (``task_always_eager``):

    >>> from celery import Celery
    >>> app = Celery("example", broker="memory://", backend="cache+memory://")
    >>> app.conf.task_always_eager = True
    >>> collect = register(app)
    >>> run = dispatch(app, "resilient_pipeline.engines._job:_example_job", slots=2)
    >>> [r.counts["new"] for r in run.results(timeout=10)]
    [2, 2]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from resilient_pipeline._core import number
from resilient_pipeline.exceptions import ConfigurationError, MissingDependencyError

from ._fanout import FanOut
from ._job import run_job
from ._wire import JSONValue, WorkResult

try:
    import celery  # type: ignore[import-untyped]
    import celery.exceptions  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - the celery extra installs it
    raise MissingDependencyError(
        package="celery", extra="celery", feature="the Celery engine"
    ) from exc

__all__ = ["TASK_NAME", "Dispatched", "dispatch", "register"]

TASK_NAME = "resilient_pipeline.collect"
"""The worker task's name, unless :func:`register` is given another."""


def register(app: celery.Celery, *, name: str = TASK_NAME) -> celery.Task:
    """Add the worker task to ``app``: ``task(ref, params=, keys=, limit=, run_id=, concurrency=)``.

    Call it in the module your workers load (``celery -A module worker``);
    the task runs :func:`~resilient_pipeline.engines.run_job` and returns
    :meth:`WorkResult.to_dict() <resilient_pipeline.engines.WorkResult.to_dict>`.
    See the module's documentation for the settings it is registered with.

    Args:
        app: Your Celery app.
        name: The task's name (give another to run two registrations on one app).

    Returns:
        The task (``task.delay(...)`` works, though :func:`dispatch` is the usual way).

    Raises:
        ConfigurationError: ``name`` is empty (naming ``name``).

    Examples:
        >>> from celery import Celery
        >>> app = Celery("example", broker="memory://", backend="cache+memory://")
        >>> task = register(app)
        >>> task.name, task.acks_late, task.reject_on_worker_lost, task.serializer
        ('resilient_pipeline.collect', True, True, 'json')
    """
    if type(name) is not str or not name:
        raise ConfigurationError.for_option("name", name, "must be a non-empty task name")

    def collect(
        task: Any,
        ref: str,
        params: Mapping[str, JSONValue] | None = None,
        keys: Sequence[str] | None = None,
        limit: int | None = None,
        run_id: str | None = None,
        concurrency: int | None = None,
    ) -> dict[str, JSONValue]:
        # A redelivery needs no wait of its own: run_job takes over what the dead delivery
        # left leased once its lease ends (a Celery retry with a countdown would not do:
        # Celery 5.7 leaves the redelivered message unacknowledged, and it comes back).
        result = run_job(
            ref, params=params, keys=keys, limit=limit, run_id=run_id, concurrency=concurrency
        )
        return result.to_dict()

    collect.__doc__ = f"Run a resilient-pipeline job's backfill here ({name})."
    return app.task(
        collect,
        name=name,
        shared=False,  # on this app only, not on every app created later
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        serializer="json",
        track_started=True,
    )


@attrs.frozen
class Dispatched:
    """The tasks of one :func:`dispatch`: one run of the ledger, spread over the workers.

    Attributes:
        run_id: The ledger's run id every task of the dispatch shares.
        group: Celery's ``GroupResult`` of the tasks.

    Examples:
        >>> from celery import Celery
        >>> app = Celery("example", broker="memory://", backend="cache+memory://")
        >>> app.conf.task_always_eager = True
        >>> _ = register(app)
        >>> run = dispatch(app, "resilient_pipeline.engines._job:_example_job",
        ...                keys=["1", "2", "3"], chunks=2, run_id="r1")
        >>> run.run_id, len(run.task_ids), run.ready()
        ('r1', 2, True)
        >>> [r.counts["new"] for r in run.results(timeout=10)]  # 2 keys, then 1; 2 days each
        [4, 2]
    """

    run_id: str
    group: Any = attrs.field(repr=False)

    @property
    def task_ids(self) -> list[str]:
        """The Celery ids of the tasks, in dispatch order."""
        return [str(result.id) for result in self.group.results]

    def ready(self) -> bool:
        """Whether every task has ended (successfully or not)."""
        return bool(self.group.ready())

    def results(self, *, timeout: float) -> list[WorkResult]:
        """Wait for every task and return their results, in dispatch order.

        Args:
            timeout: Seconds to wait at most, in all.

        Raises:
            TimeoutError: Not every task ended within ``timeout`` (the tasks run on).
            ConfigurationError: ``timeout`` is not a positive number.
            Exception: The error of a task that raised (an unknown job, a bad option).
        """
        number(gt=0, finite=True).check("timeout", timeout)
        try:
            values = self.group.get(timeout=timeout, propagate=True)
        except celery.exceptions.TimeoutError as exc:
            done = sum(1 for result in self.group.results if result.ready())
            raise TimeoutError(
                f"run {self.run_id}: {done} of {len(self.group.results)} tasks ended"
                f" within {timeout} s"
            ) from exc
        return [WorkResult.from_dict(value) for value in values]


def dispatch(
    app: celery.Celery,
    ref: str,
    *,
    params: Mapping[str, JSONValue] | None = None,
    slots: int | None = None,
    chunks: int | None = None,
    keys: Sequence[object] | None = None,
    limit: int | None = None,
    run_id: str | None = None,
    concurrency: int | None = None,
    name: str = TASK_NAME,
    queue: str | None = None,
) -> Dispatched:
    """Enqueue a job as one run of the ledger: one task per worker slot, or per chunk of keys.

    With ``slots=n`` every task runs the whole job (or ``keys``); the ledger
    hands each partition to one of them, so ``n`` tasks are ``n`` workers
    sharing the work, however many machines they run on. With ``chunks=n``
    the ``keys`` are cut into ``n`` contiguous chunks, one task each (useful
    to keep tasks short). Neither: one task. Every task shares one ledger run
    id, so a partition that failed in the run is not tried again by another
    task of it, and a look-back re-checks each partition once.

    Args:
        app: The Celery app (it need not have the task registered here: the
            task is sent by name).
        ref: The job, ``"package.module:factory"`` (see
            :func:`~resilient_pipeline.engines.load_job`), importable in the workers.
        params: JSON parameters for the factory. Brokers store them and
            dashboards show them: no secrets (refused when they look like one).
        slots: Tasks that each run the whole job.
        chunks: Tasks that each run a chunk of ``keys``.
        keys: The job's keys to collect, sent as ``str`` (the ledger's form); default:
            the job's own; required with ``chunks``.
        limit: Partitions each task claims at most.
        run_id: The ledger's run id (default: a new one).
        concurrency: Partitions in flight in each task (default: the job's).
        name: The task's name given to :func:`register`.
        queue: The queue to send the tasks to (default: the app's routing).

    Returns:
        The :class:`Dispatched` tasks; ``.results(timeout=...)`` waits for them.

    Raises:
        ConfigurationError: An option is invalid (the error names it).

    Examples:
        >>> from celery import Celery
        >>> app = Celery("example", broker="memory://")
        >>> dispatch(app, "jobs:meta", slots=2, chunks=2)
        Traceback (most recent call last):
        ...
        resilient_pipeline.exceptions.ConfigurationError: chunks=2 is invalid: give slots or ...
        >>> dispatch(app, "jobs:meta", params={"dsn": "postgresql://etl:hunter2@db/kpi"})
        Traceback (most recent call last):
        ...
        resilient_pipeline.exceptions.ConfigurationError: params={'dsn': 'postgresql://etl:***@db/kpi'} is invalid: ...
    """  # noqa: E501
    fan = FanOut.of(
        ref, params=params, keys=keys, limit=limit, run_id=run_id, concurrency=concurrency
    )
    parts = fan.shares(slots=slots, chunks=chunks)
    options: dict[str, Any] = {} if queue is None else {"queue": queue}
    signatures = [
        app.signature(name, kwargs={"ref": fan.ref, **fan.task(part)}, serializer="json", **options)
        for part in parts
    ]
    return Dispatched(run_id=fan.run_id, group=celery.group(signatures, app=app).apply_async())
