"""A backfill job that an engine's worker builds in its own process, runs, and reports on."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from resilient_pipeline._core import redact_data
from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.ledger import BackfillReport, PartitionLedger, abackfill, backfill

from . import _settle
from ._wire import JSONValue, WorkResult, check_params

__all__ = [
    "Job",
    "JobFactory",
    "arun_job",
    "load_job",
    "run_job",
    "split_ref",
]

JobFactory: TypeAlias = Callable[..., "Job"]


_OWN_ARGUMENTS = frozenset(
    {"source", "start", "end", "periods", "fetch", "write", "concurrency", "run_id", "progress"}
)


@attrs.frozen(kw_only=True)
class Job:
    """One source's backfill, as every worker of a fleet runs it: the arguments of ``backfill``.

    A worker never receives a ``Job`` over the wire (a ledger holds a database
    connection; ``fetch`` and ``write`` are code): it receives a *reference*,
    ``"package.module:factory"``, and JSON parameters, imports the factory and
    calls it with the parameters in its own process. Secrets (tokens, DSN
    passwords) belong in the worker's environment, never in the parameters,
    which brokers store and dashboards show.

    Attributes:
        ledger: The PostgreSQL ledger every worker shares (SQLite for one machine).
        source: The source name.
        keys: The expected keys.
        fetch: ``fetch(partition)``, sync or async.
        write: ``write(tx, partition, rows_or_unit)``.
        start: First period ...
        end: ... and last one; or ``periods``.
        periods: The expected periods themselves.
        concurrency: Partitions in flight at once in one worker.
        options: Any other keyword argument of
            :func:`~resilient_pipeline.ledger.backfill` (``contract``,
            ``quarantine``, ``policies``, ``lookback``, ``measure``, ...).
        counters: The job's own counts (rows written, retries, breaker
            openings: whatever its ``fetch`` and ``write`` count), as
            ``counters() -> {name: int}``. :func:`run_job` reads them before
            and after the run and returns the difference in
            :attr:`WorkResult.counters`, so a fleet's caller can add up what
            its workers did, not only which partitions they did.

    Examples:
        >>> import datetime as dt
        >>> from resilient_pipeline import SQLiteStore, PartitionLedger
        >>> job = Job(ledger=PartitionLedger(SQLiteStore(":memory:")), source="meta",
        ...           keys=[1], start=dt.date(2026, 11, 1), end=dt.date(2026, 11, 2),
        ...           fetch=lambda p: [], write=lambda tx, p, rows: None)
        >>> job.run(progress=False).counts()["new"]
        2
    """

    ledger: PartitionLedger
    source: str
    keys: Sequence[object]
    fetch: Callable[..., Any]
    write: Callable[..., object]
    start: object = None
    end: object = None
    periods: Sequence[object] | None = None
    concurrency: int = 1
    options: Mapping[str, Any] = attrs.field(factory=dict)
    counters: Callable[[], Mapping[str, int]] | None = None

    def read_counters(self) -> dict[str, int]:
        """The job's counters now (``{}`` without ``counters``); a bad value is named.

        Raises:
            ConfigurationError: ``counters()`` returned something other than
                ``{str: int}``.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, PartitionLedger
            >>> seen = {"rows": 3}
            >>> job = Job(ledger=PartitionLedger(SQLiteStore(":memory:")), source="meta",
            ...           keys=[1], periods=[], fetch=lambda p: [],
            ...           write=lambda tx, p, rows: None, counters=lambda: seen)
            >>> job.read_counters()
            {'rows': 3}
            >>> seen["rows"] = 2.5
            >>> job.read_counters()
            Traceback (most recent call last):
            ...
            resilient_pipeline.exceptions.ConfigurationError: ...counters...
        """
        if self.counters is None:
            return {}
        found: object = self.counters()
        if not isinstance(found, Mapping) or any(
            type(name) is not str or type(n) is not int for name, n in found.items()
        ):
            raise ConfigurationError.for_option(
                "counters", self.counters, f"must return {{str: int}}, returned {found!r}"
            )
        return dict(found)

    def _arguments(
        self,
        keys: Sequence[object] | None,
        limit: int | None,
        run_id: str | None,
        concurrency: int | None,
        progress: bool | None,
    ) -> dict[str, Any]:
        if "limit" in self.options or "keys" in self.options:
            raise ConfigurationError.for_option(
                "options", dict(self.options), "limit and keys are given per run, not in the job"
            )
        # Each of these has its own place (a field of the job, or an argument of the run):
        # given in options too, one of the two would be dropped without a word.
        taken = sorted(set(self.options) & _OWN_ARGUMENTS)
        if taken:
            raise ConfigurationError.for_option(
                "options",
                dict(self.options),
                f"{', '.join(taken)}: give these as the job's fields or the run's arguments",
            )
        return {
            **self.options,
            "source": self.source,
            "keys": self.keys if keys is None else keys,
            "start": self.start,
            "end": self.end,
            "periods": self.periods,
            "fetch": self.fetch,
            "write": self.write,
            "concurrency": self.concurrency if concurrency is None else concurrency,
            "limit": limit,
            "run_id": run_id,
            "progress": progress,
        }

    def run(
        self,
        *,
        keys: Sequence[object] | None = None,
        limit: int | None = None,
        run_id: str | None = None,
        concurrency: int | None = None,
        progress: bool | None = False,
    ) -> BackfillReport:
        """Run the backfill here (sync): the job's keys, or a chunk of them; at most ``limit``."""
        return backfill(self.ledger, **self._arguments(keys, limit, run_id, concurrency, progress))

    async def arun(
        self,
        *,
        keys: Sequence[object] | None = None,
        limit: int | None = None,
        run_id: str | None = None,
        concurrency: int | None = None,
        progress: bool | None = False,
    ) -> BackfillReport:
        """:meth:`run` in a running event loop (asyncio or trio)."""
        return await abackfill(
            self.ledger, **self._arguments(keys, limit, run_id, concurrency, progress)
        )


def split_ref(ref: str, *, option: str) -> tuple[str, str]:
    """``"package.module:name"`` as ``(module, name)``; anything else names ``option``.

    Examples:
        >>> split_ref("jobs.meta:nightly", option="job")
        ('jobs.meta', 'nightly')
    """
    module, colon, name = str(ref).partition(":")
    if type(ref) is not str or not (module and colon and name):
        raise ConfigurationError.for_option(option, ref, "must be 'package.module:name'")
    return module, name


def load_job(ref: str, params: Mapping[str, JSONValue] | None = None) -> Job:
    """Import ``"package.module:name"`` and build the job: ``name(**params)``, or ``name`` itself.

    Raises:
        ConfigurationError: ``ref`` is malformed, cannot be imported, or does
            not give a :class:`Job` (naming ``job``).

    Examples:
        >>> load_job("no-colon")
        Traceback (most recent call last):
        ...
        resilient_pipeline.exceptions.ConfigurationError: job='no-colon' is invalid: ...
    """
    module_name, attr = split_ref(ref, option="job")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError.for_option("job", ref, f"cannot be imported: {exc}") from exc
    if isinstance(target, Job):
        job: object = target
    elif callable(target):
        arguments = check_params(params)
        try:
            inspect.signature(target).bind(**arguments)
        except TypeError as exc:
            raise ConfigurationError.for_option(
                "params", redact_data(arguments), f"do not fit {ref}: {exc}"
            ) from exc
        except ValueError:  # no signature to check (a builtin): the call tells
            pass
        job = target(**arguments)
    else:
        job = target
    if not isinstance(job, Job):
        raise ConfigurationError.for_option(
            "job", ref, f"gave {type(job).__name__}, not a resilient_pipeline.engines.Job"
        )
    return job


def run_job(
    ref: str,
    *,
    params: Mapping[str, JSONValue] | None = None,
    keys: Sequence[object] | None = None,
    limit: int | None = None,
    run_id: str | None = None,
    concurrency: int | None = None,
    settle: bool = True,
) -> WorkResult:
    """The worker entry point every engine calls: build the job here, run its backfill, report.

    The same code path as :func:`~resilient_pipeline.ledger.backfill`, so
    the ledger's guarantees hold however the engine schedules, retries or
    kills workers: a partition already succeeded is not collected again; two
    deliveries of one task never hold one partition at the same time (its
    lease); a killed worker's partitions are taken over when their lease ends.

    And taken over before this call returns: when the pass has nothing left to
    claim but a partition of its share (its keys x periods) is still leased,
    the lease is watched on the ledger's clock. Renewed, it belongs to a live
    worker and is left to it; not renewed, its worker died, so the call waits
    for it to end and runs another pass to take the partition over (three at
    most). So a result never reports a run done while a dead worker's
    partition is still a gap. At the end of a run this may wait up to a third
    of the lease for the other workers' renewals.

    Args:
        ref: ``"package.module:factory"`` (see :func:`load_job`).
        params: JSON parameters for the factory (no secrets).
        keys: This worker's chunk of the job's keys (default: all of them; the
            ledger shares them out between workers).
        limit: Claim at most this many partitions.
        run_id: The ledger's run id (default: a random one).
        concurrency: Overrides the job's.
        settle: Take over what dead workers left leased in the share, as
            above (with ``limit`` never: such a run takes its share only).

    Examples:
        >>> result = run_job("resilient_pipeline.engines._job:_example_job")
        >>> result.counts["new"], result.ok
        (2, True)
    """
    job = load_job(ref, params)
    before = job.read_counters()

    def once() -> BackfillReport:
        return job.run(keys=keys, limit=limit, run_id=run_id, concurrency=concurrency)

    report = once() if not settle or limit is not None else _settle.settle(job, once, keys=keys)
    return WorkResult.of(report, _growth(before, job.read_counters()))


async def arun_job(
    ref: str,
    *,
    params: Mapping[str, JSONValue] | None = None,
    keys: Sequence[object] | None = None,
    limit: int | None = None,
    run_id: str | None = None,
    concurrency: int | None = None,
    settle: bool = True,
) -> WorkResult:
    """:func:`run_job` in a running event loop (asyncio or trio).

    Examples:
        >>> import anyio
        >>> anyio.run(lambda: arun_job("resilient_pipeline.engines._job:_example_job")).ok
        True
    """
    job = load_job(ref, params)
    before = job.read_counters()

    async def once() -> BackfillReport:
        return await job.arun(keys=keys, limit=limit, run_id=run_id, concurrency=concurrency)

    if not settle or limit is not None:
        report = await once()
    else:
        report = await _settle.asettle(job, once, keys=keys)
    return WorkResult.of(report, _growth(before, job.read_counters()))


def _growth(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """What each counter grew by (a factory may cache a job, and its counters, per process)."""
    grown = {name: n - before.get(name, 0) for name, n in after.items()}
    return {name: n for name, n in grown.items() if n}


def _example_job() -> Job:
    """The docstrings' job: one key, two days, an in-memory ledger."""
    from resilient_pipeline.storage import SQLiteStore

    return Job(
        ledger=PartitionLedger(SQLiteStore(":memory:")),
        source="example",
        keys=[1],
        start=dt.date(2026, 11, 1),
        end=dt.date(2026, 11, 2),
        fetch=lambda p: [],
        write=lambda tx, p, rows: None,
    )
