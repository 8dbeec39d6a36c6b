"""Quarantine: rows that failed validation, kept with their issues until they are fixed.

Nothing is dropped. :func:`quarantine` writes the quarantined rows of a
:class:`~resilient_pipeline.validation.PartitionResult` to a sink (a JSONL file, or a table in
a SQLite or PostgreSQL store); :func:`replay` reads them back after a fix,
validates them again and hands the now-valid rows to a writer (typically
``idempotent_upsert``), then removes them from quarantine.

Rows are stored as JSON with tagged values (``{"$decimal": "12.50"}``,
``{"$date": "2026-11-28"}``, ...) so a replayed row has the very types it
had: a ``Decimal`` stays a ``Decimal``, a ``date`` a ``date``.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import logging
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from resilient_pipeline._core import (
    Clock,
    Event,
    EventHandler,
    emit,
    normalize_handlers,
    resolve_clock,
    run_in_worker_thread,
)
from resilient_pipeline.exceptions import ConfigurationError

from ._issues import FieldValues, Issue, PartitionResult, Quarantined

if TYPE_CHECKING:
    from ._validator import Validator

__all__ = [
    "QuarantineRecord",
    "ReplayResult",
    "RowsReplayed",
    "areplay",
    "quarantine",
    "replay",
]


# ---------------------------------------------------------------------- codec
def _encode(value: Any) -> Any:
    """A JSON-ready form of ``value`` that :func:`_decode` turns back into it."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, enum.Enum):  # the class cannot be stored; its value can
        return _encode(value.value)
    if isinstance(value, FieldValues):
        return {"$fields": {str(k): _encode(v) for k, v in value.items()}}
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_encode(v) for v in value]
    return {"$repr": repr(value)}  # kept for the record; replays as text


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$float": float,
    "$decimal": Decimal,
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$uuid": uuid.UUID,
    "$bytes": base64.b64decode,
    "$fields": lambda v: FieldValues((k, _decode(x)) for k, x in v.items()),
    "$repr": str,
}


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, payload),) = value.items()
            decoder = _DECODERS.get(tag)
            if decoder is not None:
                return decoder(payload)
        return {k: _decode(v) for k, v in value.items()}
    return value


def row_as_dict(row: object) -> Any:
    """A mapping of a row's fields (attrs, dataclass, named tuple, object), or the row itself."""
    if isinstance(row, Mapping):
        return dict(row)
    if attrs.has(type(row)):
        return attrs.asdict(row, recurse=False)  # type: ignore[arg-type]
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    if hasattr(row, "_asdict"):
        return row._asdict()
    if hasattr(row, "__dict__") and not isinstance(row, type):
        return dict(vars(row))
    return row


# -------------------------------------------------------------------- records
@attrs.frozen
class QuarantineRecord:
    """One quarantined row, as stored: the row, every issue, where it came from and when.

    Attributes:
        id: Unique id (``uuid4`` hex), used to discard the record after a replay.
        source: Where the row came from (``"meta_ads"``, a file name, a job).
        row: The row as a dict (objects are stored by their fields).
        issues: Every issue found when it was quarantined.
        quarantined_at: Wall-clock seconds since the epoch.

    Examples:
        >>> record = QuarantineRecord("r1", "ads", {"clicks": -1},
        ...                           (Issue("clicks", "ge", "must be >= 0", -1),), 0.0)
        >>> QuarantineRecord.from_json(record.to_json()) == record
        True
    """

    id: str
    source: str
    row: Any
    issues: tuple[Issue, ...]
    quarantined_at: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (typed values tagged, so :meth:`from_json` restores them)."""
        return {
            "id": self.id,
            "source": self.source,
            "quarantined_at": self.quarantined_at,
            "row": _encode(self.row),
            "issues": [issue_to_json(i) for i in self.issues],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuarantineRecord:
        """The record :meth:`to_json` described."""
        return cls(
            id=str(data["id"]),
            source=str(data["source"]),
            row=_decode(data["row"]),
            issues=tuple(issue_from_json(i) for i in data["issues"]),
            quarantined_at=float(data["quarantined_at"]),
        )


def issue_to_json(issue: Issue) -> dict[str, Any]:
    """An issue as a JSON-ready dict."""
    return {
        "field": issue.field,
        "rule": issue.rule,
        "message": issue.message,
        "value": _encode(issue.value),
        "severity": issue.severity,
    }


def issue_from_json(data: Mapping[str, Any]) -> Issue:
    """The issue :func:`issue_to_json` described."""
    return Issue(
        data["field"], data["rule"], data["message"], _decode(data["value"]), data["severity"]
    )


def dumps(data: Any) -> str:
    """Compact, strict JSON (no NaN: PostgreSQL's jsonb would refuse it)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _check_sink(sink: object) -> QuarantineSink:
    if not isinstance(sink, QuarantineSink):
        raise ConfigurationError.for_option(
            "sink", sink, "must be a QuarantineSink (put, records, discard, atomic)"
        )
    return sink


def _check_source(source: object) -> str:
    if not isinstance(source, str) or not source:
        raise ConfigurationError.for_option("source", source, "must be a non-empty str")
    return source


def quarantine(
    sink: QuarantineSink,
    rows: PartitionResult[Any] | Iterable[Quarantined[Any]],
    *,
    source: str,
    clock: Clock | None = None,
) -> list[QuarantineRecord]:
    """Persist quarantined rows with their issues; return the records written.

    Examples:
        >>> from resilient_pipeline import Field, JSONLQuarantine, Validator
        >>> import tempfile, pathlib
        >>> sink = JSONLQuarantine(pathlib.Path(tempfile.mkdtemp()) / "q.jsonl")
        >>> result = Validator(fields={"n": Field(int)}).partition([{"n": 1}, {"n": "2"}])
        >>> [r.row for r in quarantine(sink, result, source="api")]
        [{'n': '2'}]
    """
    checked = _check_sink(sink)
    _check_source(source)
    entries = rows.quarantined if isinstance(rows, PartitionResult) else tuple(rows)
    now = resolve_clock(clock).time()
    records = [
        QuarantineRecord(uuid.uuid4().hex, source, row_as_dict(q.row), q.issues, now)
        for q in entries
    ]
    if records:
        checked.put(records)
    return records


# --------------------------------------------------------------------- replay
@attrs.frozen
class ReplayResult:
    """What :func:`replay` did.

    Attributes:
        replayed: Records whose rows are valid now (after ``fix``): written and removed
            from quarantine. Each record holds the row as it was quarantined.
        still_invalid: Records left in quarantine, with their *current* issues.
        written: What the writer returned (e.g. an ``UpsertResult``), or ``None``.
    """

    replayed: tuple[QuarantineRecord, ...]
    still_invalid: tuple[QuarantineRecord, ...]
    written: Any = None


@attrs.frozen(kw_only=True)
class RowsReplayed(Event):
    """Quarantined rows were validated again; the valid ones were written.

    Attributes:
        replayed: Rows written and removed from quarantine.
        still_invalid: Rows that stay in quarantine.
    """

    logger_name = "resilient_pipeline.validation"
    level = logging.INFO
    template = "{source}: replayed {replayed} quarantined row(s); {still_invalid} still invalid"

    replayed: int
    still_invalid: int


def replay(
    sink: QuarantineSink,
    validator: Validator,
    write: Callable[[list[Any]], Any],
    *,
    fix: Callable[[Any], Any] | None = None,
    source: str | None = None,
    on_event: EventHandler | Iterable[EventHandler] | None = None,
) -> ReplayResult:
    """Validate quarantined rows again; write the now-valid ones and take them out.

    ``fix(row)``, if given, returns a corrected row first (refetched values,
    a unit conversion); rows that stay invalid stay in quarantine unchanged.
    ``write(rows)`` gets the valid rows (as dicts) in one call: pass an
    upsert, e.g. ``functools.partial(idempotent_upsert, store, "kpi",
    key=("client_id", "date"))``. Writing and discarding run inside
    ``sink.atomic()``: with a SQL sink on the same store they commit
    together; otherwise a crash in between only replays the rows again
    later, which an idempotent upsert makes harmless.

    Examples:
        >>> from resilient_pipeline import Field, JSONLQuarantine, Validator
        >>> from resilient_pipeline.validation.rules import ge
        >>> import tempfile, pathlib
        >>> sink = JSONLQuarantine(pathlib.Path(tempfile.mkdtemp()) / "q.jsonl")
        >>> strict = Validator(fields={"n": Field(int, ge(0))})
        >>> _ = quarantine(sink, strict.partition([{"n": -1}, {"n": "x"}]), source="api")
        >>> relaxed = Validator(fields={"n": Field(int)})  # the rule was wrong: fixed
        >>> saved = []
        >>> result = replay(sink, relaxed, saved.extend)
        >>> saved, len(result.still_invalid), len(sink.records())
        ([{'n': -1}], 1, 1)
    """
    checked = _check_sink(sink)
    if not callable(write):
        raise ConfigurationError.for_option("write", write, "must be callable with a list of rows")
    if fix is not None and not callable(fix):
        raise ConfigurationError.for_option("fix", fix, "must be callable with a row, or None")
    if source is not None:
        _check_source(source)
    handlers = normalize_handlers(on_event)
    records = checked.records(source=source)
    rows = [record.row if fix is None else fix(record.row) for record in records]
    result = validator.partition(rows)
    bad = {q.index: q.issues for q in result.quarantined}
    good = [i for i in range(len(records)) if i not in bad]
    still = tuple(attrs.evolve(r, issues=bad[i]) for i, r in enumerate(records) if i in bad)
    written = None
    if good:
        with checked.atomic():
            written = write([rows[i] for i in good])
            checked.discard([records[i].id for i in good])
    if records:
        emit(
            RowsReplayed(
                source=source or "quarantine", replayed=len(good), still_invalid=len(still)
            ),
            handlers,
        )
    return ReplayResult(tuple(records[i] for i in good), still, written)


areplay = run_in_worker_thread(
    replay,
    name="areplay",
    doc="""The async twin of :func:`replay`: runs it in a worker thread (asyncio and trio).

    Takes exactly the arguments of :func:`replay`.

    Examples:
        >>> import anyio, tempfile, pathlib
        >>> from resilient_pipeline import Field, JSONLQuarantine, Validator
        >>> sink = JSONLQuarantine(pathlib.Path(tempfile.mkdtemp()) / "q.jsonl")
        >>> anyio.run(areplay, sink, Validator(fields={"n": Field(int)}), print)
        ReplayResult(replayed=(), still_invalid=(), written=None)
    """,
)


@runtime_checkable
class QuarantineSink(Protocol):
    """Where quarantined rows wait until a fix lets :func:`~resilient_pipeline.replay` save them.

    :class:`~resilient_pipeline.JSONLQuarantine` (a file) and
    :class:`~resilient_pipeline.SQLQuarantine` (a table in a SQLite or
    PostgreSQL store) implement it; so can your own class.

    Examples:
        >>> from resilient_pipeline import JSONLQuarantine
        >>> isinstance(JSONLQuarantine("quarantine.jsonl"), QuarantineSink)
        True
    """

    def put(self, records: Sequence[QuarantineRecord]) -> None:
        """Store the records (all of them, or none on error)."""
        ...

    def records(self, *, source: str | None = None) -> list[QuarantineRecord]:
        """Every record still in quarantine (from ``source`` only, if given), oldest first."""
        ...

    def discard(self, ids: Iterable[str]) -> int:
        """Remove the records with these ids; return how many were removed."""
        ...

    def atomic(self) -> AbstractContextManager[object]:
        """A context in which a replay's write and discard commit together, if possible."""
        ...
