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

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from resilient_pipeline._core import (
    MASK,
    EventHandler,
    describe_error,
    emit,
    non_empty_str,
    normalize_handlers,
)
from resilient_pipeline.exceptions import (
    ConfigurationError,
)

from ._issues import MISSING, FieldValues, Issue, accessor, has_errors, not_a_row
from ._unit import (
    CheckedUnit,
    Collection,
    Pairing,
    PartitionRejected,
    UnitIssue,
    Verdict,
)
from ._validator import Validator

__all__ = [
    "PartitionContract",
]


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
        >>> from resilient_pipeline.validation import Collection, Field, Validator
        >>> from resilient_pipeline.validation import any_row, paired
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
