"""Dask as an engine: every task of a dispatch is one worker of one ledger.

:func:`dispatch` submits :func:`~resilient_pipeline.engines.run_job` to a
Dask cluster, once per worker slot (each task runs the whole job; the ledger
shares the partitions out) or once per chunk of keys. Every task of a
dispatch runs under the same ``run_id``: one ledger run, many workers.

What Dask does on its own is harmless, because the ledger decides what each
task does, not Dask:

* a worker process dies: Dask runs its task again elsewhere (up to
  ``distributed.scheduler.allowed-failures`` times). The new task skips every
  partition already succeeded; the partitions the dead one held are claimable
  again once their lease ends. A task that finds nothing left to claim while
  a lease of its share is not being renewed waits for that lease to end and
  takes the partition over before it returns (see
  :func:`~resilient_pipeline.engines.run_job`), so :meth:`Dispatched.results`
  never reports a run done while a dead worker's partition is still a gap;
* a task runs twice (recomputed, resubmitted, retried with ``retries=``): a
  partition is leased by one process at a time, and one that succeeded is not
  collected again (in the same run not even re-checked by a look-back).

Requires the ``dask`` extra (``pip install 'resilient-pipeline[dask]'``);
:mod:`resilient_pipeline.engines` itself never imports Dask.

Examples:
    A cluster of two threads, two tasks sharing one SQLite ledger:

    >>> import pathlib, tempfile
    >>> from distributed import Client, LocalCluster
    >>> db = str(pathlib.Path(tempfile.mkdtemp()) / "ledger.sqlite3")
    >>> with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
    ...                   dashboard_address=":0") as cluster, Client(cluster) as client:
    ...     fleet = dispatch(client, "resilient_pipeline.engines.dask:_example_job",
    ...                      params={"db": db})
    ...     results = fleet.results(timeout=60)
    >>> len(results), sum(r.counts["new"] for r in results), len({r.run_id for r in results})
    (2, 8, 1)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import anyio.to_thread
import attrs

from resilient_pipeline._core import integer
from resilient_pipeline.exceptions import ConfigurationError, MissingDependencyError

from ._fanout import FanOut
from ._job import Job, run_job
from ._wire import JSONValue, WorkResult

try:
    import distributed
except ImportError as exc:  # pragma: no cover - the test extra installs it
    raise MissingDependencyError(
        package="dask[distributed]", extra="dask", feature="the Dask engine"
    ) from exc

__all__ = ["Dispatched", "dispatch"]

# distributed's wait() and Client.gather() are untyped: the Any stays at these two names.
_untyped: Any = distributed


def _untyped_client(client: distributed.Client) -> Any:
    return client


def _timed_out(timeout: float | None) -> TimeoutError:
    """The builtin ``TimeoutError`` (Dask raises asyncio's, a different class on 3.10)."""
    return TimeoutError(f"not every task finished within {timeout} s; they keep running")


@attrs.frozen(eq=False)
class Dispatched:
    """The tasks of one :func:`dispatch`: one ledger run, one Dask future per task.

    Attributes:
        client: The Dask client the tasks were submitted with.
        ref: The job's ``"package.module:factory"``.
        run_id: The ledger's run id, shared by every task.
        futures: One future per task; each resolves to a
            :class:`~resilient_pipeline.engines.WorkResult`.

    Examples:
        >>> from distributed import Client, LocalCluster
        >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, \\
        ...      Client(cluster) as client:
        ...     fleet = dispatch(client, "resilient_pipeline.engines._job:_example_job",
        ...                      slots=1, run_id="nightly-1")
        ...     [(r.run_id, r.counts["new"], r.ok) for r in fleet.results()]
        [('nightly-1', 2, True)]
    """

    client: distributed.Client
    ref: str
    run_id: str
    futures: tuple[distributed.Future[WorkResult], ...]

    def results(self, *, timeout: float | None = None) -> list[WorkResult]:
        """Wait for every task; their results in submission order.

        Partition failures never raise (see each result's ``failed``); a task
        raises only when the job cannot run at all (a bad reference, the
        ledger unreachable), or Dask gives it up (``KilledWorker`` after its
        workers died ``allowed-failures`` times). That exception is raised here.

        Raises:
            TimeoutError: Not every task finished within ``timeout`` seconds
                (they keep running; call again).
        """
        futures = list(self.futures)
        try:
            _untyped.wait(futures, timeout=timeout)
        except asyncio.TimeoutError as exc:  # not the builtin before Python 3.11
            raise _timed_out(timeout) from exc
        values: list[WorkResult] = _untyped_client(self.client).gather(futures)
        return values

    async def aresults(self, *, timeout: float | None = None) -> list[WorkResult]:
        """:meth:`results` in a running event loop (asyncio or trio).

        With an asynchronous client (``Client(asynchronous=True)``, asyncio
        only) the futures are awaited in its loop; a synchronous client is
        waited on in a worker thread.
        """
        if not self.client.asynchronous:
            wait = functools.partial(self.results, timeout=timeout)
            return await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)
        futures = list(self.futures)
        try:
            await _untyped.wait(futures, timeout=timeout)
        except asyncio.TimeoutError as exc:  # not the builtin before Python 3.11
            raise _timed_out(timeout) from exc
        values: list[WorkResult] = await _untyped_client(self.client).gather(futures)
        return values


def dispatch(
    client: distributed.Client,
    ref: str,
    *,
    params: Mapping[str, JSONValue] | None = None,
    slots: int | None = None,
    chunks: int | None = None,
    keys: Sequence[object] | None = None,
    limit: int | None = None,
    run_id: str | None = None,
    concurrency: int | None = None,
    retries: int | None = None,
    resources: Mapping[str, float] | None = None,
) -> Dispatched:
    """Run a job on a Dask cluster: one task per worker slot, or one per chunk of keys.

    Each task calls :func:`~resilient_pipeline.engines.run_job` in a worker
    (``pure=False``: every task is distinct, never merged with an equal one),
    which builds the job there from ``ref`` and ``params`` and runs its
    backfill. Every task of the dispatch shares ``run_id``: a partition that
    fails is not tried again by another task of the same run, and a
    look-back re-checks a partition once per run, not once per task.

    Args:
        client: A ``distributed.Client`` (synchronous or asynchronous).
        ref: ``"package.module:factory"``, importable in the workers.
        params: JSON parameters of the factory. No secrets: the scheduler
            keeps task arguments and its dashboard shows them; a parameter
            that looks like one (a DSN's password, ``api_token=...``) is refused.
            Workers read secrets from their own environment.
        slots: Tasks to submit, each running the whole job (default: one per
            worker thread of the cluster now). Not with ``chunks``.
        chunks: Split ``keys`` into this many chunks (contiguous, sizes
            differing by one at most), one task each; needs ``keys``. A
            chunk's partitions are collected by its task only, so use it when
            keys are expensive to switch between (one token, one connection
            per client); ``slots`` balances better.
        keys: The keys to collect (default: the job's own).
        limit: Each task claims at most this many partitions (the rest stays
            for the other tasks, or the next dispatch).
        run_id: The ledger's run id (default: a new one).
        concurrency: Partitions in flight in each task (default: the job's).
        retries: Dask runs a task that raised again this many times (a
            ledger unreachable when the task started). A killed worker's
            task is run again whatever this says.
        resources: Dask resources each task needs, e.g. ``{"ads_api": 1}``
            with workers started with ``--resources ads_api=1``.

    Returns:
        A :class:`Dispatched`; :meth:`Dispatched.results` waits for the tasks.

    Raises:
        ConfigurationError: An option is invalid (named in the message).

    Examples:
        >>> dispatch(object(), "pkg.jobs:nightly", slots=0)
        Traceback (most recent call last):
        ...
        resilient_pipeline.exceptions.ConfigurationError: client=<object ...> is invalid: ...
    """
    if not isinstance(client, distributed.Client):
        raise ConfigurationError.for_option("client", client, "must be a distributed.Client")
    fan = FanOut.of(
        ref, params=params, keys=keys, limit=limit, run_id=run_id, concurrency=concurrency
    )
    integer(ge=0, optional=True).check("retries", retries)
    task_resources = _checked_resources(resources)
    shares = fan.shares(slots=slots, chunks=chunks, default=lambda: _threads(client))
    futures = tuple(
        client.submit(
            run_job,
            fan.ref,
            **fan.task(share),
            pure=False,
            retries=retries,
            resources=task_resources,
        )
        for share in shares
    )
    return Dispatched(client=client, ref=fan.ref, run_id=fan.run_id, futures=futures)


def _checked_resources(resources: Mapping[str, float] | None) -> dict[str, float] | None:
    if resources is None:
        return None
    given: object = resources
    entries: dict[str, float] = {}
    for name, amount in given.items() if isinstance(given, Mapping) else ():
        if not isinstance(name, str) or isinstance(amount, bool):
            break
        if not isinstance(amount, (int, float)) or not amount > 0:
            break
        entries[name] = float(amount)
    else:
        if entries:
            return entries
    raise ConfigurationError.for_option(
        "resources", resources, "must map resource names to positive amounts"
    )


def _threads(client: distributed.Client) -> int:
    """Worker threads in the cluster now (the asynchronous client's last known count)."""
    threads = int(client.scheduler_info().get("total_threads", 0))
    if threads < 1:
        raise ConfigurationError.for_option(
            "slots", None, "the cluster has no worker thread yet: give slots= (tasks queue)"
        )
    return threads


def _example_job(db: str) -> Job:
    """The docstrings' job: four keys, two days, a SQLite ledger file every task shares."""
    from resilient_pipeline.ledger import PartitionLedger
    from resilient_pipeline.storage import SQLiteStore

    return Job(
        ledger=PartitionLedger(SQLiteStore(db)),
        source="example",
        keys=[1, 2, 3, 4],
        start=dt.date(2026, 11, 1),
        end=dt.date(2026, 11, 2),
        fetch=lambda p: [],
        write=lambda tx, p, rows: None,
    )
