"""Distributed engines as workers of one ledger: Celery, Dask, or plain processes.

The library has no scheduler of its own. An engine decides where and how many
workers run; the partition ledger decides what each one does. Every engine
calls the same entry point, :func:`run_job`, which runs
:func:`~resilient_pipeline.ledger.backfill` on a :class:`Job` the worker
builds in its own process from a ``"package.module:factory"`` reference. So an
engine's retries, duplicate deliveries and killed workers are harmless: a
partition already succeeded is not collected again, and a leased partition is
held by one worker at a time.

Examples:
    >>> result = run_job("resilient_pipeline.engines._job:_example_job", limit=1)
    >>> result.counts["new"], len(result.collected)
    (1, 1)
"""

from __future__ import annotations

from ._job import Job, JobFactory, arun_job, load_job, run_job
from ._wire import WorkResult, check_params

__all__ = [
    "Job",
    "JobFactory",
    "WorkResult",
    "arun_job",
    "check_params",
    "load_job",
    "run_job",
]
