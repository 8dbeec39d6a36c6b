"""Whole units in quarantine: stored with every reason, read back, replayed.

A unit that fails its :class:`~resilient_pipeline.validation.PartitionContract`
is quarantined whole (every collection, never one table written and the other
set aside), in the row quarantine's sinks, under one format tag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from resilient_pipeline._core import (
    Clock,
    EventHandler,
    emit,
    normalize_handlers,
)
from resilient_pipeline.exceptions import (
    ConfigurationError,
)

from ._contract import PartitionContract
from ._issues import Issue, Quarantined
from ._quarantine import QuarantineRecord, QuarantineSink, quarantine, row_as_dict
from ._unit import (
    CheckedUnit,
    PartitionQuarantined,
)

__all__ = [
    "QuarantinedUnit",
    "UnitReplayResult",
    "quarantine_unit",
    "replay_units",
    "unit_of_record",
]

_FORMAT = "resilient_pipeline.unit/1"


# ------------------------------------------------------------------ quarantine
def quarantine_unit(
    sink: QuarantineSink,
    unit: CheckedUnit,
    *,
    source: str,
    clock: Clock | None = None,
    on_event: EventHandler | Iterable[EventHandler] | None = None,
) -> QuarantineRecord:
    """Put a whole incomplete or invalid unit in quarantine: one record, every collection.

    The record's ``row`` is an envelope, so the collections stay together and
    a replay can fetch the whole unit again by its id::

        {"format": "resilient_pipeline.unit/1", "unit": "<unit_id>",
         "contract": "<name>", "verdict": "invalid", "missing": [...],
         "collections": {"campaigns": [{...}, ...], "conversions": [...]}}

    Its ``issues`` are every issue of the unit, each field prefixed with its
    location (``"campaigns[3].spend"``). Read it back with :func:`unit_of_record`.

    Raises:
        ConfigurationError: the unit is complete (write it instead), or has no ``unit_id``.

    Examples:
        >>> import pathlib, tempfile
        >>> from resilient_pipeline.validation import Collection, JSONLQuarantine
        >>> sink = JSONLQuarantine(pathlib.Path(tempfile.mkdtemp()) / "q.jsonl")
        >>> contract = PartitionContract(collections={"campaigns": Collection(),
        ...                                           "conversions": Collection()})
        >>> checked = contract.check({"campaigns": [{"spend": 3.0}], "conversions": []},
        ...                          unit_id="acme/2026-11-28")
        >>> record = quarantine_unit(sink, checked, source="ads")
        >>> record.row["collections"], [i.field for i in record.issues]
        ({'campaigns': [{'spend': 3.0}], 'conversions': []}, ['conversions'])
    """
    if not isinstance(unit, CheckedUnit):
        raise ConfigurationError.for_option("unit", unit, "must be a CheckedUnit (from check())")
    if unit.complete:
        raise ConfigurationError.for_option(
            "unit", unit.unit_id, "is complete: write it; only a failed unit is quarantined"
        )
    if unit.unit_id is None:
        raise ConfigurationError.for_option(
            "unit_id", None, "quarantining a unit needs the unit_id it was checked with"
        )
    envelope = {
        "format": _FORMAT,
        "unit": unit.unit_id,
        "contract": unit.contract,
        "verdict": unit.verdict,
        "missing": list(unit.missing),
        "collections": {
            name: [row_as_dict(row) for row in rows] for name, rows in unit.collections.items()
        },
    }
    issues = tuple(issue.located() for issue in unit.issues)
    (record,) = quarantine(sink, [Quarantined(envelope, issues, 0)], source=source, clock=clock)
    emit(
        PartitionQuarantined(
            source=source,
            unit=unit.unit_id,
            verdict=unit.verdict,
            rows=unit.row_count,
            issues=len(issues),
            record=record.id,
        ),
        normalize_handlers(on_event),
    )
    return record


@attrs.frozen(kw_only=True)
class QuarantinedUnit:
    """A unit read back from quarantine (see :func:`unit_of_record`).

    Attributes:
        record_id: The quarantine record's id (to discard it after a replay).
        source: The record's source.
        unit_id: The unit's id, to fetch it again.
        contract: The name of the contract that rejected it.
        verdict: ``"incomplete"`` or ``"invalid"`` when it was quarantined.
        collections: The rows it had, as dicts (a missing collection is absent).
        issues: Every issue it had, fields prefixed with their location.
    """

    record_id: str
    source: str
    unit_id: str
    contract: str
    verdict: str
    collections: Mapping[str, list[Any]]
    issues: tuple[Issue, ...]


def unit_of_record(record: QuarantineRecord) -> QuarantinedUnit | None:
    """The unit a :func:`quarantine_unit` record holds; ``None`` for a record of a single row.

    Examples:
        >>> record = QuarantineRecord("r1", "ads", {"format": "resilient_pipeline.unit/1",
        ...     "unit": "acme/2026-11-28", "contract": "p", "verdict": "incomplete",
        ...     "missing": [], "collections": {"kpi": []}}, (), 0.0)
        >>> unit_of_record(record).collections
        {'kpi': []}
        >>> unit_of_record(attrs.evolve(record, row={"spend": 1})) is None
        True
    """
    row = record.row
    if not isinstance(row, Mapping) or row.get("format") != _FORMAT:
        return None
    return QuarantinedUnit(
        record_id=record.id,
        source=record.source,
        unit_id=str(row["unit"]),
        contract=str(row["contract"]),
        verdict=str(row["verdict"]),
        collections={str(k): list(v) for k, v in row["collections"].items()},
        issues=record.issues,
    )


@attrs.frozen
class UnitReplayResult:
    """What :func:`replay_units` did.

    Attributes:
        replayed: Units now complete: written and taken out of quarantine.
        still_failing: Units checked again and still incomplete or invalid
            (left in quarantine as they were), with their current issues.
        written: What ``write`` returned for each replayed unit, in order.
    """

    replayed: tuple[CheckedUnit, ...]
    still_failing: tuple[CheckedUnit, ...]
    written: tuple[Any, ...] = ()


def replay_units(
    sink: QuarantineSink,
    contract: PartitionContract,
    write: Callable[[CheckedUnit], Any],
    *,
    source: str | None = None,
    refetch: Callable[[str], Mapping[str, Iterable[Any] | None]] | None = None,
) -> UnitReplayResult:
    """Check quarantined units again (fetched anew with ``refetch``); write the complete ones.

    For each unit record (records of single rows are left for :func:`replay`):
    ``refetch(unit_id)``, if given, returns the unit again from upstream;
    otherwise the stored rows are checked again (after a fix to the contract).
    A unit that is now complete is passed whole to ``write`` and discarded from
    quarantine; the others stay as they were. Each unit is taken inside its own
    ``sink.atomic()`` with ``sink.claim()`` (when the sink has one), as
    :func:`replay` does, so two processes replaying one quarantine never write
    the same unit twice and their counts are true. An error from ``refetch``
    or ``write`` propagates: the units replayed before it stay replayed, the
    rest stay in quarantine.

    Examples:
        >>> import pathlib, tempfile
        >>> from resilient_pipeline.validation import Collection, JSONLQuarantine
        >>> sink = JSONLQuarantine(pathlib.Path(tempfile.mkdtemp()) / "q.jsonl")
        >>> contract = PartitionContract(collections={"kpi": Collection()})
        >>> _ = quarantine_unit(sink, contract.check({"kpi": []}, unit_id="acme/1"), source="ads")
        >>> saved = []
        >>> result = replay_units(sink, contract, saved.append,
        ...                       refetch=lambda unit_id: {"kpi": [{"spend": 0.0}]})
        >>> [u.rows("kpi") for u in saved], len(sink.records())
        ([({'spend': 0.0},)], 0)
    """
    if not isinstance(contract, PartitionContract):
        raise ConfigurationError.for_option("contract", contract, "must be a PartitionContract")
    if not callable(write):
        raise ConfigurationError.for_option("write", write, "must be callable with a CheckedUnit")
    if refetch is not None and not callable(refetch):
        raise ConfigurationError.for_option("refetch", refetch, "must be callable or None")
    replayed: list[CheckedUnit] = []
    still: list[CheckedUnit] = []
    written: list[Any] = []
    claim = getattr(sink, "claim", None)
    ids = [r.id for r in sink.records(source=source) if unit_of_record(r) is not None]
    for record_id in ids:
        with sink.atomic():
            # Claimed inside the sink's transaction (or file lock): a concurrent
            # replay skips or waits for this unit, then finds it gone.
            current = claim(source=source) if callable(claim) else sink.records(source=source)
            record = next((r for r in current if r.id == record_id), None)
            stored = unit_of_record(record) if record is not None else None
            if record is None or stored is None:
                continue  # another replay took it meanwhile
            unit = refetch(stored.unit_id) if refetch is not None else stored.collections
            checked = contract.check(unit, unit_id=stored.unit_id)
            if not checked.complete:
                still.append(checked)
                continue
            written.append(write(checked))
            sink.discard([record.id])
        replayed.append(checked)
    return UnitReplayResult(tuple(replayed), tuple(still), tuple(written))
