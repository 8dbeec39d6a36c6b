"""Plain processes as an engine: :func:`run_processes` runs a job in N processes of this machine.

No broker, no cluster: ``workers`` fresh processes (the ``spawn`` start
method, so nothing of this process's state, connections or threads is
inherited) each call :func:`~resilient_pipeline.engines.run_job` on the same
reference and parameters, under one ledger run id. The ledger shares the
partitions out, exactly as it does between Celery or Dask workers: each
partition is leased by one process at a time, and one already succeeded is
not collected again. Use a PostgreSQL ledger (or a SQLite file, which
serialises the writes) that every process opens.

Examples:
    >>> import pathlib, tempfile
    >>> db = str(pathlib.Path(tempfile.mkdtemp()) / "ledger.sqlite3")
    >>> results = run_processes("resilient_pipeline.engines.local:_example_job",
    ...                         params={"db": db}, workers=2)
    >>> sum(r.counts["new"] for r in results), len({r.run_id for r in results})
    (4, 1)
    >>> len({r.worker for r in results})  # two processes
    2
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from resilient_pipeline._core import integer
from resilient_pipeline.exceptions import ConfigurationError

from ._fanout import FanOut
from ._job import Job, run_job
from ._wire import JSONValue, WorkResult

__all__ = ["run_processes"]


def _work(conn: Connection, environ: Mapping[str, str], ref: str, options: dict[str, Any]) -> None:
    """One worker process: its share of secrets, then ``run_job``; the result or the error back."""
    os.environ.update(environ)
    try:
        outcome: tuple[str, object] = ("result", run_job(ref, **options))
    except Exception as exc:  # sent back and raised in the parent, like Celery and Dask do
        outcome = ("error", exc)
    try:
        conn.send(outcome)
    except Exception as exc:  # an error that does not pickle: its text at least
        conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def run_processes(
    ref: str,
    *,
    params: Mapping[str, JSONValue] | None = None,
    workers: int,
    keys: Sequence[object] | None = None,
    limit: int | None = None,
    run_id: str | None = None,
    concurrency: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[WorkResult]:
    """Run the job in ``workers`` new processes at once, as one ledger run; their results.

    Each process builds the job from ``ref`` and ``params`` and runs one
    backfill pass (:func:`~resilient_pipeline.engines.run_job`); the call
    returns when every process has.

    Args:
        ref: ``"package.module:factory"`` (see :func:`~resilient_pipeline.engines.load_job`).
        params: JSON parameters of the factory; no secrets (refused when they
            look like one), as for the other engines.
        workers: Processes to start (>= 1).
        keys: The keys to collect (default: the job's own); every process
            gets all of them, and the ledger shares them out.
        limit: Partitions each process claims at most.
        run_id: The ledger's run id every process shares (default: a new one).
        concurrency: Partitions in flight in each process (default: the job's).
        environ: Environment variables set in each process before it builds
            the job (a token the factory reads from the environment). They
            cross a pipe to a child of this process, never a broker.

    Returns:
        One :class:`~resilient_pipeline.engines.WorkResult` per process, in start order.

    Raises:
        ConfigurationError: An option is invalid (named in the message), or
            the job cannot be built in a worker (the worker's error, raised here).
        ChildProcessError: A worker process died (killed, out of memory); the
            others ran to their end first.
    """
    fan = FanOut.of(
        ref, params=params, keys=keys, limit=limit, run_id=run_id, concurrency=concurrency
    )
    integer(ge=1).check("workers", workers)
    given: object = {} if environ is None else environ
    if not isinstance(given, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in given.items()
    ):
        raise ConfigurationError.for_option("environ", None, "must map str names to str values")
    options = fan.task(fan.keys)
    context = multiprocessing.get_context("spawn")
    started: list[tuple[BaseProcess, Connection]] = []
    try:
        for _ in range(workers):
            parent, child = context.Pipe(duplex=False)
            process = context.Process(
                target=_work, args=(child, dict(environ or {}), ref, options), daemon=True
            )
            process.start()
            child.close()  # the parent's copy: recv() ends at EOF when the worker dies
            started.append((process, parent))
        outcomes: list[tuple[str, object] | None] = []
        for worker, parent in started:
            try:
                outcomes.append(parent.recv())
            except EOFError:
                outcomes.append(None)  # died without a word (killed, out of memory)
            worker.join()
    finally:
        for worker, parent in started:
            parent.close()
            if worker.is_alive():  # interrupted while waiting: no orphan outlives the call
                worker.kill()
                worker.join()
    return _results(outcomes, started)


def _results(
    outcomes: Sequence[tuple[str, object] | None],
    started: Sequence[tuple[BaseProcess, Connection]],
) -> list[WorkResult]:
    results = []
    for number, (outcome, (process, _)) in enumerate(zip(outcomes, started, strict=True), 1):
        if outcome is None:
            raise ChildProcessError(
                f"worker {number} of {len(started)} (pid {process.pid}) died with exit code "
                f"{process.exitcode}: a partition it held that the other workers did not take "
                "over is a gap again once its lease ends; run again to collect it"
            )
        kind, value = outcome
        if kind == "error":
            assert isinstance(value, BaseException)
            raise value
        assert isinstance(value, WorkResult)
        results.append(value)
    return results


def _example_job(db: str) -> Job:
    """The docstrings' job: two keys, two days, a SQLite ledger every process opens."""
    from resilient_pipeline.ledger import PartitionLedger
    from resilient_pipeline.storage import SQLiteStore

    return Job(
        ledger=PartitionLedger(SQLiteStore(db)),
        source="example",
        keys=[1, 2],
        start=dt.date(2026, 11, 1),
        end=dt.date(2026, 11, 2),
        fetch=lambda p: [],
        write=lambda tx, p, rows: None,
    )
