"""Partition contracts: several collections fetched, validated and written as one unit.

A partition often has more than one part: the campaigns of a client's day
*and* its conversions. Storing one part without the other is the silent loss
this module exists to prevent. A :class:`PartitionContract` says what a
complete unit contains; :meth:`PartitionContract.check` collects every problem
and gives one verdict for the whole unit:

* ``"complete"``: write every collection (together, in one unit of work);
* ``"incomplete"``: an expected collection is missing from the unit (the
  endpoint was not asked, or gave no answer) or answered no rows where rows
  are required. Often transient upstream: retry, then report;
* ``"invalid"``: rows fail their validator or a pairing rule: quarantine the
  *whole* unit with every reason (:func:`quarantine_unit`), never one table
  written and the other quarantined.

An empty list is an answer ("no rows"); a missing key (or ``None``) is no
answer. A genuine zero is a row with zeros: it is stored, and it satisfies a
pairing rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import attrs

from resilient_pipeline._core import (
    MASK,
    Clock,
    Event,
    EventHandler,
    describe_error,
    emit,
    non_empty_str,
    normalize_handlers,
)
from resilient_pipeline.exceptions import (
    ConfigurationError,
    IncompletePartitionError,
    InvalidPartitionError,
)

from ._issues import MISSING, FieldValues, Issue, Quarantined, accessor, has_errors, not_a_row
from ._quarantine import QuarantineRecord, QuarantineSink, quarantine, row_as_dict
from ._validator import Validator

__all__ = [
    "CheckedUnit",
    "Collection",
    "Pairing",
    "PartitionContract",
    "PartitionQuarantined",
    "PartitionRejected",
    "QuarantinedUnit",
    "UnitIssue",
    "UnitReplayResult",
    "Verdict",
    "any_row",
    "paired",
    "quarantine_unit",
    "replay_units",
    "unit_of_record",
]

Verdict: TypeAlias = Literal["complete", "incomplete", "invalid"]
"""What :meth:`PartitionContract.check` decided for a whole unit."""

UnitRows: TypeAlias = Mapping[str, Sequence[Any]]
"""A unit's collections as answered: name → rows (a missing collection is absent)."""

_FORMAT = "resilient_pipeline.unit/1"


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


# -------------------------------------------------------------------- contract
def _collections(value: object) -> dict[str, Collection]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigurationError.for_option("collections", value, "must be a non-empty mapping")
    for name, spec in value.items():
        if not isinstance(name, str) or not name or not name.isprintable():
            raise ConfigurationError.for_option("collections", name, "names must be printable str")
        if not isinstance(spec, Collection):
            raise ConfigurationError.for_option(
                f"collections[{name!r}]", spec, "must be a Collection"
            )
    return dict(value)


def _as_rules(rules: Iterable[Pairing]) -> tuple[Pairing, ...]:
    return tuple(rules)


def _declared(validator: Validator | None, field: str) -> bool:
    return validator is None or field in validator.fields


@attrs.frozen(kw_only=True)
class PartitionContract:
    """What a complete unit contains: its collections and the pairing rules between them.

    Args:
        collections: Collection name → :class:`Collection`.
        rules: Pairing rules (:func:`paired`) between declared collections.
        name: Names the contract in events and errors.
        on_event: Handlers for this contract's events (:class:`PartitionRejected`,
            :class:`PartitionQuarantined`).

    Examples:
        >>> from resilient_pipeline.validation import Field, Validator
        >>> from resilient_pipeline.validation.rules import ge
        >>> def spent(row): return row["spend"] > 0
        >>> contract = PartitionContract(
        ...     collections={
        ...         "campaigns": Collection(validator=Validator(fields={
        ...             "campaign_id": Field(int), "spend": Field(float, ge(0))})),
        ...         "conversions": Collection(
        ...             validator=Validator(fields={
        ...                 "campaign_id": Field(int), "conversions": Field(int, ge(0))}),
        ...             empty="allowed", required_when=any_row("campaigns", spent)),
        ...     },
        ...     rules=[paired("campaigns", "conversions", on="campaign_id", when=spent)],
        ... )
        >>> campaigns = [{"campaign_id": 1, "spend": 9.5}]
        >>> contract.check({"campaigns": campaigns, "conversions": []}).verdict
        'incomplete'
        >>> zero = [{"campaign_id": 1, "conversions": 0}]  # a genuine zero
        >>> contract.check({"campaigns": campaigns, "conversions": zero}).verdict
        'complete'
    """

    collections: Mapping[str, Collection] = attrs.field(converter=_collections)
    rules: tuple[Pairing, ...] = attrs.field(default=(), converter=_as_rules)
    name: str = "partition"
    on_event: tuple[EventHandler, ...] = attrs.field(default=(), converter=normalize_handlers)

    def __attrs_post_init__(self) -> None:
        name: object = self.name
        if not isinstance(name, str) or not name:
            raise ConfigurationError.for_option("name", name, "must be a non-empty str")
        for rule in self.rules:
            if not isinstance(rule, Pairing):
                raise ConfigurationError.for_option("rules", rule, "must be built with paired()")
            for side in (rule.left, rule.right):
                if side not in self.collections:
                    raise ConfigurationError.for_option(
                        "rules", rule, f"names the undeclared collection {side!r}"
                    )
            if rule.left == rule.right:
                raise ConfigurationError.for_option("rules", rule, "pairs a collection with itself")
            for side in (rule.left, rule.right):
                undeclared = [
                    f for f in rule.on if not _declared(self.collections[side].validator, f)
                ]
                if undeclared:
                    raise ConfigurationError.for_option(
                        "rules", rule, f"{side!r} declares no field {', '.join(undeclared)}"
                    )

    # -- checking -------------------------------------------------------------
    def check(
        self, unit: Mapping[str, Iterable[Any] | None], *, unit_id: str | None = None
    ) -> CheckedUnit:
        """Validate every collection and pairing of ``unit``; report every issue, one verdict.

        ``unit`` maps collection names to their rows. An empty iterable is the
        answer "no rows"; a missing name, or ``None``, is no answer at all.
        The verdict is ``"incomplete"`` when a collection is missing, or empty
        where rows are required (the other issues may follow from it, so they
        are reported but do not turn it into ``"invalid"``); else
        ``"invalid"`` when any row or pairing has an error; else ``"complete"``.

        Emits :class:`PartitionRejected` unless the unit is complete.

        Raises:
            ConfigurationError: ``unit`` is not a mapping, or a collection's value is
                not an iterable of rows (a single mapping, a str).
        """
        if unit_id is not None:
            non_empty_str().check("unit_id", unit_id)
        rows = _materialise(unit)
        issues: list[UnitIssue] = []
        valid: dict[str, list[bool]] = {}
        for name, spec in self.collections.items():
            if name not in rows:
                message = "has no answer (missing from the unit; an empty answer is [])"
                issues.append(UnitIssue(name, None, Issue(None, "missing", message), "incomplete"))
                continue
            found, ok = _validate(name, spec.validator, rows[name])
            issues += found
            valid[name] = ok
            if not rows[name]:
                issues += self._empty_issues(name, spec, rows)
        for name in rows:
            if name not in self.collections:
                message = f"is not a collection of this contract (have: {sorted(self.collections)})"
                issues.append(UnitIssue(name, None, Issue(None, "unknown_collection", message)))
        for rule in self.rules:
            if rule.left in rows and rule.right in rows:
                issues += _pairing_issues(rule, rows, valid, self.collections)
        verdict: Verdict
        if any(i.kind == "incomplete" for i in issues):
            verdict = "incomplete"
        elif any(i.is_error for i in issues):
            verdict = "invalid"
        else:
            verdict = "complete"
        checked = CheckedUnit(
            verdict=verdict,
            collections=rows,
            issues=tuple(issues),
            unit_id=unit_id,
            contract=self.name,
        )
        if verdict != "complete":
            emit(
                PartitionRejected(
                    source=self.name,
                    unit=unit_id or "",
                    verdict=verdict,
                    issues=len(checked.errors),
                    missing=checked.missing,
                    empty=checked.empty,
                ),
                self.on_event,
            )
        return checked

    def require(
        self, unit: Mapping[str, Iterable[Any] | None], *, unit_id: str | None = None
    ) -> CheckedUnit:
        """:meth:`check`, then :meth:`CheckedUnit.raise_for_verdict`: one line in a fetch function.

        Examples:
            >>> contract = PartitionContract(collections={"kpi": Collection()})
            >>> contract.require({"kpi": []}, unit_id="acme/1")
            Traceback (most recent call last):
            ...
            resilient_pipeline.exceptions.IncompletePartitionError: partition 'acme/1' is ...
              - kpi: is empty (the endpoint answered no rows; the contract expects rows) [non_empty]
        """
        return self.check(unit, unit_id=unit_id).raise_for_verdict()

    def _empty_issues(
        self, name: str, spec: Collection, rows: Mapping[str, tuple[Any, ...]]
    ) -> list[UnitIssue]:
        if spec.empty == "forbidden":
            message = "is empty (the endpoint answered no rows; the contract expects rows)"
            return [UnitIssue(name, None, Issue(None, "non_empty", message), "incomplete")]
        if spec.required_when is None:
            return []
        try:
            required = bool(spec.required_when(rows))
        except Exception as exc:
            message = f"required_when {spec.required_when!r} raised {describe_error(exc)}"
            return [UnitIssue(name, None, Issue(None, "required_when", message))]
        if not required:
            return []
        message = f"is empty, but rows are required: {spec.required_when!r} holds"
        return [UnitIssue(name, None, Issue(None, "required_when", message), "incomplete")]


def _materialise(unit: object) -> dict[str, tuple[Any, ...]]:
    if not isinstance(unit, Mapping):
        raise ConfigurationError.for_option(
            "unit", type(unit).__name__, "must be a mapping of collection name to rows"
        )
    rows: dict[str, tuple[Any, ...]] = {}
    for name, value in unit.items():
        if value is None:  # no answer, exactly like a missing name
            continue
        if isinstance(value, Mapping | str | bytes) or not isinstance(value, Iterable):
            raise ConfigurationError.for_option(
                f"unit[{name!r}]", type(value).__name__, "must be an iterable of rows (or None)"
            )
        rows[str(name)] = tuple(value)
    return rows


def _validate(
    name: str, validator: Validator | None, rows: tuple[Any, ...]
) -> tuple[list[UnitIssue], list[bool]]:
    issues: list[UnitIssue] = []
    ok: list[bool] = []
    for index, row in enumerate(rows):
        if validator is not None:
            found = validator.issues(row)
        else:
            found = [] if accessor(row) is not None else not_a_row(row)
        issues += [UnitIssue(name, index, issue) for issue in found]
        ok.append(not has_errors(found))
    if validator is not None:
        batch = validator.validate_batch(rows).issues
        issues += [UnitIssue(name, None, issue) for issue in batch]
    return issues, ok


def _key(row: Any, on: tuple[str, ...]) -> tuple[Any, ...] | None:
    get = accessor(row)
    if get is None:
        return None
    values = tuple(get(column, MISSING) for column in on)
    if any(v is MISSING or v is None for v in values):
        return None
    return values


def _matches(test: Callable[[Any], bool] | None, row: Any) -> bool | str:
    """Whether ``row`` passes ``test``; the error text if the test raised."""
    if test is None:
        return True
    try:
        return bool(test(row))
    except Exception as exc:
        return describe_error(exc)


def _pairing_issues(
    rule: Pairing,
    rows: Mapping[str, tuple[Any, ...]],
    valid: Mapping[str, list[bool]],
    collections: Mapping[str, Collection],
) -> list[UnitIssue]:
    field = ", ".join(rule.on)
    issues: list[UnitIssue] = []
    partners: set[tuple[Any, ...]] = set()
    # An invalid right row may still vouch for its key: its own issue says what is wrong,
    # and failing its partners too would report one problem twice.
    for index, row in enumerate(rows[rule.right]):
        key = _key(row, rule.on)
        matched = _matches(rule.right_when, row)
        if isinstance(matched, str):
            if valid[rule.right][index]:
                message = f"right_when raised {matched}: cannot pair with {rule.left!r}"
                issues.append(UnitIssue(rule.right, index, Issue(None, "paired", message)))
        elif matched and key is not None:
            partners.add(key)
    left_validator = collections[rule.left].validator
    secret = {f for f in rule.on if left_validator is not None and left_validator.fields[f].secret}
    for index, row in enumerate(rows[rule.left]):
        if not valid[rule.left][index]:
            continue
        matched = _matches(rule.when, row)
        if isinstance(matched, str):
            message = f"when raised {matched}: cannot pair with {rule.right!r}"
            issues.append(UnitIssue(rule.left, index, Issue(None, "paired", message)))
            continue
        if not matched:
            continue
        key = _key(row, rule.on)
        if key is None:
            message = f"has no value to pair with {rule.right!r} on"
            issues.append(UnitIssue(rule.left, index, Issue(field, "paired", message)))
        elif key not in partners:
            which = "row" if rule.right_when is None else "matching row"
            message = f"has no {which} in {rule.right!r} with the same {field} (a zero row counts)"
            shown = FieldValues(
                (f, MASK if f in secret else v) for f, v in zip(rule.on, key, strict=True)
            )
            issues.append(UnitIssue(rule.left, index, Issue(field, "paired", message, shown)))
    return issues


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
        >>> from resilient_pipeline.validation import JSONLQuarantine
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
        >>> from resilient_pipeline.validation import JSONLQuarantine
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
