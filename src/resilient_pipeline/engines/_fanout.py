"""One job fanned out to many workers: the options every engine checks, and the keys' shares.

Celery's :func:`~resilient_pipeline.engines.celery.dispatch`, Dask's
:func:`~resilient_pipeline.engines.dask.dispatch` and
:func:`~resilient_pipeline.engines.local.run_processes` take the same options
for the same reasons; they are checked here, once, before anything is sent,
and each error names its option.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from resilient_pipeline._core import integer
from resilient_pipeline.exceptions import ConfigurationError

from ._job import split_ref
from ._wire import JSONValue, check_params

__all__ = ["FanOut", "split"]

_K = TypeVar("_K")


@attrs.frozen(kw_only=True)
class FanOut:
    """The checked arguments of one run of a job spread over workers.

    Attributes:
        ref: ``"package.module:factory"``.
        params: The factory's JSON parameters (no secret).
        keys: The keys to collect as ``str`` (the ledger's form), each once;
            ``None``: the job's own.
        limit: Partitions each task claims at most.
        run_id: The ledger's run id every task shares.
        concurrency: Partitions in flight in each task (``None``: the job's).

    Examples:
        >>> fan = FanOut.of("jobs:meta", keys=[3, 1, 2, 3, 4, 5], run_id="r1")
        >>> fan.keys, fan.shares(chunks=2)
        (['3', '1', '2', '4', '5'], [['3', '1', '2'], ['4', '5']])
        >>> fan.task(["3"])["keys"], fan.task(None)["run_id"]
        (['3'], 'r1')
        >>> FanOut.of("jobs:meta", limit=0)
        Traceback (most recent call last):
        ...
        resilient_pipeline.exceptions.ConfigurationError: limit=0 is invalid: ...
    """

    ref: str
    params: dict[str, JSONValue]
    keys: list[str] | None
    limit: int | None
    run_id: str
    concurrency: int | None

    @classmethod
    def of(
        cls,
        ref: str,
        *,
        params: Mapping[str, JSONValue] | None = None,
        keys: Sequence[object] | None = None,
        limit: int | None = None,
        run_id: str | None = None,
        concurrency: int | None = None,
    ) -> FanOut:
        """Check the options every engine takes (the error names the option); a new run id.

        Raises:
            ConfigurationError: ``ref`` is not ``"package.module:factory"``;
                ``params`` is not plain JSON or carries a secret; ``keys`` is a
                str; ``limit`` or ``concurrency`` is not an int >= 1;
                ``run_id`` is an empty str.
        """
        split_ref(ref, option="ref")
        plain = check_params(params)
        integer(ge=1, optional=True).check("limit", limit)
        integer(ge=1, optional=True).check("concurrency", concurrency)
        if run_id is not None and not (type(run_id) is str and run_id):
            raise ConfigurationError.for_option("run_id", run_id, "must be a non-empty str or None")
        if isinstance(keys, (str, bytes)):
            raise ConfigurationError.for_option(
                "keys", keys, "must be a sequence of keys, not a str"
            )
        return cls(
            ref=ref,
            params=plain,
            keys=None if keys is None else list(dict.fromkeys(str(k) for k in keys)),
            limit=limit,
            run_id=run_id or uuid.uuid4().hex[:12],
            concurrency=concurrency,
        )

    def shares(
        self,
        *,
        slots: int | None = None,
        chunks: int | None = None,
        default: Callable[[], int] = lambda: 1,
    ) -> list[list[str] | None]:
        """Each task's keys: ``slots`` tasks of every key, or ``keys`` in ``chunks`` runs.

        With neither, ``default()`` tasks of every key (one; Dask: the cluster's threads).

        Raises:
            ConfigurationError: ``slots`` or ``chunks`` is not an int >= 1, both
                are given, or ``chunks`` without (non-empty) ``keys``.
        """
        integer(ge=1, optional=True).check("slots", slots)
        integer(ge=1, optional=True).check("chunks", chunks)
        if chunks is None:
            return [self.keys] * (default() if slots is None else slots)
        if slots is not None:
            raise ConfigurationError.for_option(
                "chunks", chunks, "give slots or chunks, not both (slots: each task runs every key)"
            )
        if not self.keys:
            raise ConfigurationError.for_option(
                "chunks", chunks, "cuts the keys into chunks: give keys= (a non-empty list) too"
            )
        return list(split(self.keys, min(chunks, len(self.keys))))

    def task(self, keys: list[str] | None) -> dict[str, Any]:
        """The keyword arguments of :func:`~resilient_pipeline.engines.run_job` for one task."""
        return {
            "params": self.params,
            "keys": keys,
            "limit": self.limit,
            "run_id": self.run_id,
            "concurrency": self.concurrency,
        }


def split(keys: Sequence[_K], chunks: int) -> list[list[_K]]:
    """``keys`` in ``chunks`` contiguous runs (a client range stays together), sizes within one.

    Examples:
        >>> split(["1", "2", "3", "4", "5"], 3)
        [['1', '2'], ['3', '4'], ['5']]
    """
    size, extra = divmod(len(keys), chunks)
    runs, start = [], 0
    for n in range(chunks):
        end = start + size + (n < extra)
        runs.append(list(keys[start:end]))
        start = end
    return runs
