"""Units of a partition: their collections, pairing rules, checked units and the events.

A partition often has more than one part (the campaigns of a client's day
*and* its conversions). These are the pieces a
:class:`~resilient_pipeline.validation.PartitionContract` is made of and
what its check returns; the contract itself is in ``_contract.py``, the
quarantine of whole units in ``_unit_quarantine.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import attrs

from resilient_pipeline._core import (
    Event,
    non_empty_str,
)
from resilient_pipeline.exceptions import (
    ConfigurationError,
    IncompletePartitionError,
    InvalidPartitionError,
)

from ._issues import Issue
from ._validator import Validator

__all__ = [
    "CheckedUnit",
    "Collection",
    "Pairing",
    "PartitionQuarantined",
    "PartitionRejected",
    "UnitIssue",
    "UnitRows",
    "Verdict",
    "any_row",
    "paired",
]

Verdict: TypeAlias = Literal["complete", "incomplete", "invalid"]
"""What :meth:`PartitionContract.check` decided for a whole unit."""

UnitRows: TypeAlias = Mapping[str, Sequence[Any]]
"""A unit's collections as answered: name → rows (a missing collection is absent)."""


# ----------------------------------------------------------------- collections
@attrs.frozen
class _AnyRow:
    collection: str
    where: Callable[[Any], bool]

    def __call__(self, unit: UnitRows) -> bool:
        return any(self.where(row) for row in unit.get(self.collection, ()))

    def __repr__(self) -> str:
        name = getattr(self.where, "__name__", repr(self.where))
        return f"any_row({self.collection!r}, {name})"


def any_row(collection: str, where: Callable[[Any], bool]) -> Callable[[UnitRows], bool]:
    """A ``required_when`` predicate: some row of ``collection`` satisfies ``where``.

    Examples:
        >>> def has_spend(row): return row["spend"] > 0
        >>> spent = any_row("campaigns", has_spend)
        >>> spent({"campaigns": [{"spend": 0}, {"spend": 12.5}]}), spent
        (True, any_row('campaigns', has_spend))
    """
    non_empty_str().check("collection", collection)
    if not callable(where):
        raise ConfigurationError.for_option("where", where, "must be callable with a row")
    return _AnyRow(collection, where)


def _validator(_: object, __: object, value: Validator | None) -> None:
    if value is not None and not isinstance(value, Validator):
        raise ConfigurationError.for_option("validator", value, "must be a Validator or None")


def _empty(_: object, __: object, value: object) -> None:
    if value not in ("forbidden", "allowed") or not isinstance(value, str):
        raise ConfigurationError.for_option("empty", value, "must be 'forbidden' or 'allowed'")


@attrs.frozen(kw_only=True)
class Collection:
    """One collection of a unit: how its rows are validated, and whether it may be empty.

    Args:
        validator: Checks each row (and the batch rules over all rows); ``None``
            only requires each row to be a mapping or an object with fields.
        empty: ``"forbidden"`` (the default: no rows is an incomplete unit) or
            ``"allowed"`` (no rows is a genuine answer).
        required_when: With ``empty="allowed"``: a predicate over the unit's
            collections (name → rows) that makes rows required after all, e.g.
            ``any_row("campaigns", lambda r: r["spend"] > 0)``: "may be empty,
            unless some campaign spent".

    Examples:
        >>> Collection().empty, Collection(empty="allowed").empty
        ('forbidden', 'allowed')
        >>> Collection(required_when=lambda unit: True)
        Traceback (most recent call last):
        ...
        resilient_pipeline.exceptions.ConfigurationError: required_when=... is invalid: ...
    """

    validator: Validator | None = attrs.field(default=None, validator=_validator)
    empty: Literal["forbidden", "allowed"] = attrs.field(default="forbidden", validator=_empty)
    required_when: Callable[[UnitRows], bool] | None = None

    def __attrs_post_init__(self) -> None:
        if self.required_when is None:
            return
        if not callable(self.required_when):
            raise ConfigurationError.for_option(
                "required_when", self.required_when, "must be callable with the unit, or None"
            )
        if self.empty != "allowed":
            raise ConfigurationError.for_option(
                "required_when",
                self.required_when,
                "only means something with empty='allowed' (rows are always required otherwise)",
            )


# --------------------------------------------------------------------- pairing
@attrs.frozen(kw_only=True)
class Pairing:
    """A pairing rule between two collections; build it with :func:`paired`."""

    left: str
    right: str
    on: tuple[str, ...]
    when: Callable[[Any], bool] | None = None
    right_when: Callable[[Any], bool] | None = None

    def __repr__(self) -> str:
        extra = "" if self.when is None else f", when={getattr(self.when, '__name__', '...')}"
        if self.right_when is not None:
            extra += f", right_when={getattr(self.right_when, '__name__', '...')}"
        return f"paired({self.left!r}, {self.right!r}, on={self.on!r}{extra})"


def paired(
    left: str,
    right: str,
    *,
    on: str | Sequence[str],
    when: Callable[[Any], bool] | None = None,
    right_when: Callable[[Any], bool] | None = None,
) -> Pairing:
    """Every ``left`` row (matching ``when``) has a ``right`` row with the same ``on`` values.

    A right row with zeros counts: a campaign that spent and converted nobody
    has its conversion row, with ``conversions = 0``. ``right_when`` restricts
    which right rows count (e.g. only campaigns with spend, for "conversions
    without spend"). Only left rows that passed their validator are judged (an
    invalid row is already reported); any right row with the key counts as a
    partner, so one bad row is not reported twice.

    Examples:
        >>> def spent(row): return row["spend"] > 0
        >>> paired("campaigns", "conversions", on="campaign_id", when=spent)
        paired('campaigns', 'conversions', on=('campaign_id',), when=spent)
    """
    columns: tuple[object, ...] = (on,) if isinstance(on, str) else tuple(on)
    if not columns or not all(isinstance(c, str) and c for c in columns):
        raise ConfigurationError.for_option("on", on, "must be a field name or a sequence of them")
    for option, fn in (("when", when), ("right_when", right_when)):
        if fn is not None and not callable(fn):
            raise ConfigurationError.for_option(option, fn, "must be callable with a row, or None")
    names = tuple(str(c) for c in columns)
    return Pairing(left=left, right=right, on=names, when=when, right_when=right_when)


# ---------------------------------------------------------------------- issues
@attrs.frozen
class UnitIssue:
    """One problem of a unit, located: the collection, the row index, and the issue.

    Attributes:
        collection: The collection it is about.
        index: The row's position in that collection; ``None`` for the collection as a whole.
        issue: What is wrong (field, rule, message, value, severity).
        kind: ``"incomplete"`` (a collection missing or empty: retry may help)
            or ``"invalid"`` (rows or pairings are wrong).

    Examples:
        >>> issue = UnitIssue("campaigns", 3, Issue("spend", "ge", "must be >= 0", -1), "invalid")
        >>> print(issue)
        campaigns[3]: spend=-1: must be >= 0 [ge]
        >>> issue.located().field
        'campaigns[3].spend'
    """

    collection: str
    index: int | None
    issue: Issue
    kind: Literal["incomplete", "invalid"] = "invalid"

    @property
    def where(self) -> str:
        """``campaigns[3]``, or ``campaigns`` for the collection as a whole."""
        return self.collection if self.index is None else f"{self.collection}[{self.index}]"

    @property
    def is_error(self) -> bool:
        """Whether it decides the verdict (warnings only report)."""
        return self.issue.severity == "error"

    def located(self) -> Issue:
        """The issue with its location in the field (``"campaigns[3].spend"``), for storage."""
        field = self.where if self.issue.field is None else f"{self.where}.{self.issue.field}"
        return attrs.evolve(self.issue, field=field)

    def __str__(self) -> str:
        issue = self.issue
        if issue.field is None and issue.value is None:  # about the collection or row as a whole
            label = "" if issue.severity == "error" else " (warning)"
            return f"{self.where}: {issue.message} [{issue.rule}]{label}"
        return f"{self.where}: {issue}"


@attrs.frozen(kw_only=True)
class CheckedUnit:
    """A unit after :meth:`PartitionContract.check`: its rows, every issue, one verdict.

    Attributes:
        verdict: ``"complete"``, ``"incomplete"`` or ``"invalid"``.
        collections: Each answered collection's rows, as given (a missing one is absent).
        issues: Every issue found, errors and warnings, in collection order.
        unit_id: The id the unit was checked with (``"meta_ads/7/2026-11-28"``), if any.
        contract: The contract's name.

    Examples:
        >>> unit = CheckedUnit(verdict="complete", collections={"kpi": ({"n": 0},)})
        >>> unit.complete, unit.raise_for_verdict() is unit, unit.row_count
        (True, True, 1)
    """

    verdict: Verdict
    collections: Mapping[str, tuple[Any, ...]]
    issues: tuple[UnitIssue, ...] = ()
    unit_id: str | None = None
    contract: str = "partition"

    @property
    def complete(self) -> bool:
        """Whether every collection may be written."""
        return self.verdict == "complete"

    @property
    def errors(self) -> tuple[UnitIssue, ...]:
        """The issues that decided the verdict (warnings excluded)."""
        return tuple(i for i in self.issues if i.is_error)

    @property
    def warnings(self) -> tuple[UnitIssue, ...]:
        """Issues reported as warnings: they do not block the unit."""
        return tuple(i for i in self.issues if not i.is_error)

    @property
    def missing(self) -> tuple[str, ...]:
        """Collections the unit has no answer for (absent, or ``None``)."""
        return tuple(i.collection for i in self.issues if i.issue.rule == "missing")

    @property
    def empty(self) -> tuple[str, ...]:
        """Collections that answered no rows where the contract expects rows."""
        rules = ("non_empty", "required_when")
        return tuple(
            i.collection
            for i in self.issues
            if i.kind == "incomplete" and i.issue.rule in rules and i.index is None
        )

    @property
    def row_count(self) -> int:
        """Rows in every collection together."""
        return sum(len(rows) for rows in self.collections.values())

    def rows(self, collection: str) -> tuple[Any, ...]:
        """The rows of ``collection`` (``KeyError`` when the unit has no answer for it)."""
        return self.collections[collection]

    def raise_for_verdict(self) -> CheckedUnit:
        """Return ``self`` when complete; else raise with every issue that decided the verdict.

        Raises:
            IncompletePartitionError: retry may help (not a ``PermanentError``).
            InvalidPartitionError: quarantine the whole unit (a ``PermanentError``).
        """
        if self.verdict == "complete":
            return self
        error = IncompletePartitionError if self.verdict == "incomplete" else InvalidPartitionError
        raise error(unit_id=self.unit_id, issues=self.errors, unit=self)


# ---------------------------------------------------------------------- events
@attrs.frozen(kw_only=True)
class PartitionRejected(Event):
    """A unit was checked against its contract and may not be written.

    Attributes:
        unit: The unit's id (``""`` when it has none).
        verdict: ``"incomplete"`` or ``"invalid"``.
        issues: How many issues decided it.
        missing: Collections with no answer.
        empty: Collections that answered no rows where rows are expected.
    """

    logger_name = "resilient_pipeline.validation"
    level = logging.WARNING
    template = "{source}: unit {unit!r} is {verdict} ({issues} issue(s))"

    unit: str
    verdict: str
    issues: int
    missing: tuple[str, ...]
    empty: tuple[str, ...]


@attrs.frozen(kw_only=True)
class PartitionQuarantined(Event):
    """A whole unit (every collection, every reason) was put in quarantine.

    Attributes:
        unit: The unit's id.
        verdict: ``"incomplete"`` or ``"invalid"``.
        rows: Rows kept, all collections together.
        issues: Issues stored with them.
        record: The quarantine record's id.
    """

    logger_name = "resilient_pipeline.validation"
    level = logging.WARNING
    template = "{source}: quarantined unit {unit!r} ({verdict}, {rows} row(s), {issues} issue(s))"

    unit: str
    verdict: str
    rows: int
    issues: int
    record: str
