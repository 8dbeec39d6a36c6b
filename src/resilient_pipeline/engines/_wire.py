"""What crosses the wire between a fleet's caller and its workers: JSON parameters, JSON results.

Brokers store and dashboards show both, so parameters are checked to be exact
JSON without a secret before they are sent, and a worker's result is plain
JSON that comes back the same.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Mapping
from typing import Any, TypeAlias, cast

import attrs

from resilient_pipeline._core import redact_data
from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.ledger import BackfillReport

__all__ = ["JSONValue", "WorkResult", "check_params"]

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"


@attrs.frozen(kw_only=True)
class WorkResult:
    """What one worker's run did, JSON-able (a Celery result, a Dask future's value).

    Attributes:
        run_id: The run's id in the ledger.
        source: The source collected.
        worker: ``host:pid`` of the process that ran it.
        counts: :meth:`BackfillReport.counts` of the run.
        collected: ``[key, period, outcome]`` of every partition committed.
        failed: ``[key, period, status, error]`` of every partition that failed
            (errors masked).
        errors: Why the run stopped early, if it did.
        duration: Seconds.
        counters: What the job's own counters (:attr:`Job.counters`) grew by
            during the run; names that did not move are left out.

    Examples:
        >>> result = WorkResult(run_id="r1", source="meta", worker="h:1", counts={"new": 2})
        >>> WorkResult.from_dict(result.to_dict()) == result, result.ok
        (True, True)
    """

    run_id: str
    source: str
    worker: str
    counts: Mapping[str, int] = attrs.field(factory=dict)
    collected: tuple[tuple[str, str, str], ...] = ()
    failed: tuple[tuple[str, str, str, str], ...] = ()
    errors: tuple[str, ...] = ()
    duration: float = 0.0
    counters: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """No partition failed and the run did not stop early."""
        return not self.failed and not self.errors

    @classmethod
    def of(cls, report: BackfillReport, counters: Mapping[str, int] | None = None) -> WorkResult:
        """The result of a report, stamped with this process (and the counters' growth)."""
        return cls(
            run_id=report.run_id,
            source=report.source,
            worker=f"{socket.gethostname()}:{os.getpid()}",
            counts=report.counts(),
            collected=tuple((p.key, p.period, outcome) for p, outcome in report.collected),
            failed=tuple(
                (f.partition.key, f.partition.period, f.status, f.error) for f in report.failures
            ),
            errors=report.errors,
            duration=report.duration,
            counters=dict(counters or {}),
        )

    def to_dict(self) -> dict[str, JSONValue]:
        """Plain JSON types only (Celery's default serializer, a log line)."""
        return {
            "run_id": self.run_id,
            "source": self.source,
            "worker": self.worker,
            "counts": dict(self.counts),
            "collected": [list(c) for c in self.collected],
            "failed": [list(f) for f in self.failed],
            "errors": list(self.errors),
            "duration": self.duration,
            "counters": dict(self.counters),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkResult:
        """Back from :meth:`to_dict`."""
        return cls(
            run_id=str(data["run_id"]),
            source=str(data["source"]),
            worker=str(data["worker"]),
            counts={str(k): int(v) for k, v in dict(data["counts"]).items()},
            collected=tuple((str(a), str(b), str(c)) for a, b, c in data.get("collected", ())),
            failed=tuple((str(a), str(b), str(c), str(d)) for a, b, c, d in data.get("failed", ())),
            errors=tuple(str(e) for e in data.get("errors", ())),
            duration=float(data.get("duration", 0.0)),
            counters={str(k): int(v) for k, v in dict(data.get("counters", {})).items()},
        )


def check_params(params: Mapping[str, JSONValue] | None) -> dict[str, JSONValue]:
    """``params`` as a plain dict, once sure a broker may store it: JSON only, no secret.

    Engines send the parameters through brokers and result stores and show
    them in dashboards, so a DSN password or a token in them is refused: put
    secrets in the worker's environment and read them in the factory.

    Raises:
        ConfigurationError: Not a mapping with str keys, not exact JSON (a
            tuple, NaN, an object), or a value that looks like a secret (the
            message shows it masked).

    Examples:
        >>> check_params({"platform": "meta", "clients": [1, 2]})
        {'platform': 'meta', 'clients': [1, 2]}
        >>> try:
        ...     check_params({"db": "postgresql://etl:hunter2@db/prod"})
        ... except ConfigurationError as exc:
        ...     print(exc.option, "hunter2" in str(exc), str(exc)[:46])
        params False params={'db': 'postgresql://etl:***@db/prod'}
    """
    if params is None:
        return {}
    if not isinstance(cast(object, params), Mapping) or not all(isinstance(k, str) for k in params):
        raise ConfigurationError.for_option(
            "params", redact_data(params), "must be a mapping with str keys"
        )
    plain = dict(params)
    masked = redact_data(plain)
    if masked != plain:
        raise ConfigurationError.for_option(
            "params",
            masked,
            "carries a secret: brokers store and dashboards show params; "
            "read secrets from the worker's environment in the job factory",
        )
    try:
        exact = json.loads(json.dumps(plain, allow_nan=False)) == plain
    except (TypeError, ValueError):
        exact = False
    if not exact or _has_nan(plain):
        raise ConfigurationError.for_option(
            "params", masked, "must be plain JSON (str, int, float, bool, None, list, dict)"
        )
    return plain


def _has_nan(value: object) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False
