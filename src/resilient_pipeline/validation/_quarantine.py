"""Quarantine: rows that failed validation, kept with their issues until they are fixed.

Nothing is dropped. :func:`quarantine` writes the quarantined rows of a
:class:`~resilient_pipeline.validation.PartitionResult` to a sink (a JSONL file, or a table in
a SQLite or PostgreSQL store); :func:`replay` reads them back after a fix,
validates them again and hands the now-valid rows to a writer (typically
``idempotent_upsert``), then removes them from quarantine.

Rows are stored as JSON with tagged values (``{"$decimal": "12.50"}``,
``{"$date": "2026-11-28"}``, ...) so a replayed row has the very types it
had: a ``Decimal`` stays a ``Decimal``, a ``date`` a ``date``, a tuple a
tuple; a dict of the row's own that looks like a tag, NUL characters and
lone surrogates are escaped (see ``_codec.py``), so the round trip is exact
and no sink refuses a row.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
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
from resilient_pipeline.exceptions import ConfigurationError, QuarantineError

from . import _codec
from ._issues import Issue, PartitionResult, Quarantined

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
def _storable_text(option: str) -> Callable[[Any, Any, Any], None]:
    """An attrs validator: a non-empty str every sink can store (no NUL, no lone surrogate)."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, str) or not value or not _codec.is_safe(value):
            raise ConfigurationError.for_option(
                option, value, "must be a non-empty str without NUL or lone surrogates"
            )

    return check


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

    id: str = attrs.field(validator=_storable_text("id"))
    source: str = attrs.field(validator=_storable_text("source"))
    row: Any
    issues: tuple[Issue, ...]
    quarantined_at: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (typed values tagged, so :meth:`from_json` restores them).

        Raises:
            QuarantineError: A value nests too deeply to be stored (or contains itself).
        """
        return {
            "format": _codec.FORMAT,
            "id": self.id,
            "source": self.source,
            "quarantined_at": self.quarantined_at,
            "row": _encode_value(self.row, self, None),
            "issues": [_issue_to_json(issue, self) for issue in self.issues],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QuarantineRecord:
        """The record :meth:`to_json` described (or an older version wrote).

        Raises:
            QuarantineError: The data is damaged, or was written by a newer version.
        """
        record_id = data.get("id")
        name = record_id if isinstance(record_id, str) else None
        version = data.get("format", 1)
        if type(version) is int and version > _codec.FORMAT:
            raise QuarantineError(
                f"quarantine record {name!r} is in format {version}; this version reads"
                f" formats 1 to {_codec.FORMAT}: upgrade resilient-pipeline to read it",
                record=name,
            )
        if version not in (1, _codec.FORMAT):
            raise QuarantineError(
                f"quarantine record {name!r} cannot be read: unknown format", record=name
            )
        decode = _codec.decode if version == _codec.FORMAT else _codec.decode_v1
        try:
            return cls(
                id=data["id"],
                source=data["source"],
                row=decode(data["row"]),
                issues=tuple(_issue_from_json(i, decode) for i in data["issues"]),
                quarantined_at=float(data["quarantined_at"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            # Our own Corrupt messages name a tag, never a value; other errors may
            # quote the stored data, so only their type is kept.
            why = str(exc) if isinstance(exc, _codec.Corrupt) else type(exc).__name__
        # Raised outside the handler: no cause or context quoting the stored data.
        raise QuarantineError(f"quarantine record {name!r} cannot be read: {why}", record=name)


def _encode_value(value: Any, record: QuarantineRecord, issue: Issue | None) -> Any:
    """``value`` encoded, or a QuarantineError naming the field that nests too deeply."""
    try:
        return _codec.encode(value)
    except _codec.TooDeep as exc:
        path = exc.path[::-1]  # collected innermost first
        if issue is not None:
            field, where = issue.field, "the issue value of"
        else:
            top = path[0] if path and isinstance(record.row, Mapping) else None
            field, where = (top if isinstance(top, str) else None), "the value of"
        what = "the row" if field is None else f"{where} field {field!r}"
        raise QuarantineError(
            f"{what} nests deeper than {_codec.MAX_DEPTH} levels (or contains itself):"
            " too deep to store in quarantine",
            field=field,
            record=record.id,
        ) from None


def _issue_to_json(issue: Issue, record: QuarantineRecord) -> dict[str, Any]:
    return {
        "field": _codec.encode(issue.field),
        "rule": _codec.encode(issue.rule),
        "message": _codec.encode(issue.message),
        "value": _encode_value(issue.value, record, issue),
        "severity": _codec.encode(issue.severity),
    }


def _issue_from_json(data: Mapping[str, Any], decode: Callable[[Any], Any]) -> Issue:
    return Issue(
        decode(data["field"]),
        decode(data["rule"]),
        decode(data["message"]),
        decode(data["value"]),
        decode(data["severity"]),
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
    if not isinstance(source, str) or not source or not _codec.is_safe(source):
        raise ConfigurationError.for_option(
            "source", source, "must be a non-empty str without NUL or lone surrogates"
        )
    return source


def quarantine(
    sink: QuarantineSink,
    rows: PartitionResult[Any] | Iterable[Quarantined[Any]],
    *,
    source: str,
    clock: Clock | None = None,
) -> list[QuarantineRecord]:
    """Persist quarantined rows with their issues; return the records written.

    Every row is checked before anything is written: all are stored, or none.

    Raises:
        QuarantineError: A row holds a value nested too deeply to store
            (naming the row's index in the batch and its field).

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
    records = []
    for q in entries:
        record = QuarantineRecord(uuid.uuid4().hex, source, row_as_dict(q.row), q.issues, now)
        try:
            record.to_json()  # fail before the sink has written anything
        except QuarantineError as exc:
            raise QuarantineError(
                f"cannot quarantine row {q.index}: {exc}", row=q.index, field=exc.field
            ) from None
        records.append(record)
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
    key=("client_id", "date"))``.

    Reading, writing and discarding all run inside ``sink.atomic()``, and the
    records are read with ``sink.claim()`` when the sink has one, else
    ``sink.records()``: each record is replayed by one caller only, even when
    several processes replay the same quarantine, and the counts are true.
    :class:`~resilient_pipeline.SQLQuarantine` claims its rows in the unit of
    work (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so a concurrent replay
    skips them; SQLite's write lock serialises replays);
    :class:`~resilient_pipeline.JSONLQuarantine` holds its file lock. With a
    SQL sink on the same store, the write and the discard commit together;
    otherwise a crash in between only replays the rows again later, which an
    idempotent upsert makes harmless.

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
    claim = getattr(checked, "claim", None)
    with checked.atomic():
        # Read inside the sink's transaction (or file lock): a concurrent replay
        # cannot take the same records, so no row is written twice.
        if callable(claim):
            records: list[QuarantineRecord] = claim(source=source)
        else:
            records = checked.records(source=source)
        rows = [record.row if fix is None else fix(record.row) for record in records]
        result = validator.partition(rows)
        bad = {q.index: q.issues for q in result.quarantined}
        good = [i for i in range(len(records)) if i not in bad]
        still = tuple(attrs.evolve(r, issues=bad[i]) for i, r in enumerate(records) if i in bad)
        written = None
        if good:
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
        """A context in which a replay reads, writes and discards as one, if possible.

        A sink may also have ``claim(*, source=None)``: like :meth:`records`,
        but the records it returns stay reserved for the caller until
        ``atomic()`` ends, so two concurrent replays never take the same one.
        """
        ...
