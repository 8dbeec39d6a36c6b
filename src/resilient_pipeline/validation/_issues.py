"""Issues, reports and partitions: what validation found, and the helpers that build issues.

Both evaluators (the compiled fast path and the reference interpreter) build
every issue through the helpers here, so they cannot disagree on wording,
masking or severity.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from datetime import date, time
from decimal import Decimal
from numbers import Number
from typing import Any, Generic, TypeVar
from uuid import UUID

import attrs

from resilient_pipeline._core import MASK, Event, describe_error

from ._combinators import severity_of, unwrap
from ._rules import Rule, Severity, rule_name

__all__ = ["Issue", "PartitionResult", "Quarantined", "RowsQuarantined", "ValidationReport"]

R = TypeVar("R")
MISSING: Any = enum.Enum("Missing", "MISSING").MISSING  # type: ignore[attr-defined]


class FieldValues(dict[str, Any]):
    """The values of the fields a cross-field issue is about."""

    __slots__ = ()


@attrs.frozen
class Issue:
    """One problem found in a row (or in a whole batch).

    Attributes:
        field: The field it is about; several joined by ``", "`` for a
            cross-field rule; ``None`` for the row as a whole, ``"batch"`` for
            a batch rule about no field in particular.
        rule: The rule that reported it (``"type"``, ``"ge"``, ``"compare"``, ...).
        message: What is wrong, without the value.
        value: The offending value (``"***"`` for secret fields); a dict of
            field → value for cross-field rules.
        severity: ``"error"`` quarantines the row; ``"warning"`` only reports.

    Examples:
        >>> print(Issue("spend", "ge", "must be >= 0", -3))
        spend=-3: must be >= 0 [ge]
    """

    field: str | None
    rule: str
    message: str
    value: Any = None
    severity: Severity = "error"

    def __str__(self) -> str:
        if isinstance(self.value, FieldValues):
            where = ", ".join(f"{k}={v!r}" for k, v in self.value.items())
        elif self.value is None:  # missing, undeclared, or about the row or batch as a whole
            where = self.field or "row"
        else:
            where = f"{self.field or 'row'}={self.value!r}"
        label = "" if self.severity == "error" else " (warning)"
        return f"{where}: {self.message} [{self.rule}]{label}"


def has_errors(issues: Sequence[Issue]) -> bool:
    """Whether any issue is an error (warnings let a row through)."""
    return any(issue.severity == "error" for issue in issues)


@attrs.frozen
class ValidationReport:
    """Every issue found in one row or batch, errors and warnings alike.

    Examples:
        >>> report = ValidationReport((Issue("clicks", "ge", "must be >= 0", -1),))
        >>> report.valid, len(report.errors), report.warnings
        (False, 1, ())
    """

    issues: tuple[Issue, ...] = ()

    @property
    def valid(self) -> bool:
        """True when no issue is an error."""
        return not self.issues or not has_errors(self.issues)

    @property
    def errors(self) -> tuple[Issue, ...]:
        """The issues that make the row invalid."""
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        """The issues reported as warnings."""
        return tuple(i for i in self.issues if i.severity == "warning")


@attrs.frozen
class Quarantined(Generic[R]):
    """A row set aside with the issues that stopped it.

    Attributes:
        row: The row exactly as given.
        issues: Every issue found in it.
        index: Its position in the batch.
    """

    row: R
    issues: tuple[Issue, ...]
    index: int


@attrs.frozen
class PartitionResult(Generic[R]):
    """The outcome of :meth:`Validator.partition`: nothing is ever dropped.

    ``len(valid) + len(quarantined)`` is always the number of input rows.

    Attributes:
        valid: Rows with no errors, in input order.
        quarantined: Rows with errors, with their issues.
        warnings: Valid rows that had warnings (also in ``valid``).
        batch_issues: Issues of the batch as a whole (completeness rules). An
            error here quarantines every row: an incomplete batch is never saved.

    Unpacks as ``valid, quarantined = validator.partition(rows)``.

    Examples:
        >>> PartitionResult(valid=(1,), quarantined=(), warnings=(), batch_issues=()).ok
        True
        >>> valid, quarantined = PartitionResult((1,), (), (), ())
        >>> valid
        (1,)
    """

    valid: tuple[R, ...]
    quarantined: tuple[Quarantined[R], ...]
    warnings: tuple[Quarantined[R], ...]
    batch_issues: tuple[Issue, ...]

    @property
    def ok(self) -> bool:
        """True when no row was quarantined."""
        return not self.quarantined

    def __iter__(self) -> Iterator[Any]:
        return iter((self.valid, self.quarantined))


@attrs.frozen(kw_only=True)
class RowsQuarantined(Event):
    """A batch was partitioned and some rows were quarantined.

    Attributes:
        rows: Rows in the batch.
        quarantined: Rows set aside.
        issues: Issues found, errors and warnings.
        batch_issues: How many of them concern the batch as a whole.
    """

    logger_name = "resilient_pipeline.validation"
    level = logging.WARNING
    template = "{source}: quarantined {quarantined} of {rows} row(s) ({issues} issue(s))"

    rows: int
    quarantined: int
    issues: int
    batch_issues: int


# ----------------------------------------------------------------- row access
_SCALARS = (str, bytes, bytearray, memoryview, Number, Decimal, date, time, UUID, enum.Enum, Set)


def accessor(row: object) -> Callable[[str, Any], Any] | None:
    """``get(name, default)`` for a mapping or an object row; ``None`` for anything else."""
    if isinstance(row, Mapping):
        return row.get
    if row is None or isinstance(row, _SCALARS):
        return None
    if isinstance(row, Sequence) and not hasattr(row, "_fields"):  # namedtuples are rows
        return None
    if hasattr(row, "__dict__") or hasattr(type(row), "__slots__"):
        return lambda name, default: getattr(row, name, default)
    return None


class ObjectView(Mapping[str, Any]):
    """A read-only mapping over an object's attributes, for row and batch rules."""

    __slots__ = ("_names", "_row")

    def __init__(self, row: object, names: Sequence[str]) -> None:
        self._row = row
        self._names = names

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self._row, name)
        except AttributeError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return (n for n in self._names if hasattr(self._row, n))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def view(row: Any, names: Sequence[str]) -> Mapping[str, Any]:
    """The row as a mapping (itself when it is one)."""
    return row if isinstance(row, Mapping) else ObjectView(row, names)


def not_a_row(row: object) -> list[Issue]:
    """The one issue of something that is neither a mapping nor an object."""
    message = f"expected a mapping or an object with fields, got {type(row).__name__}"
    return [Issue(None, "row", message, None, "error")]


# ------------------------------------------------------------- issue builders
def missing_issue(name: str, severity: Severity, value: object) -> Issue:
    """A required field is absent or ``None``."""
    message = "is required (got None)" if value is None else "is required"
    return Issue(name, "required", message, None, severity)


def unknown_field_issues(row: object, known: frozenset[str], severity: Severity) -> list[Issue]:
    """Keys of a mapping row that no field declares (schema drift); objects have none.

    The value is not kept: an undeclared field cannot have been marked secret.
    """
    if not isinstance(row, Mapping) or known.issuperset(row):
        return []
    message = "is not a declared field"
    return [Issue(str(k), "unknown_field", message, None, severity) for k in row if k not in known]


def value_issue(
    name: str, rule: Rule, severity: Severity, secret: bool, value: object, message: str | None
) -> Issue:
    """A value rule failed; the message comes from the rule itself."""
    if message is None:
        message = rule(value) or f"failed {rule_name(rule)}"
    return Issue(name, rule_name(rule), message, MASK if secret else value, severity)


def row_rule_issues(
    rule: Rule, row: Mapping[str, Any], secrets: frozenset[str], batch: bool = False
) -> list[Issue]:
    """Run a row (or batch) rule and turn what it returns into issues.

    Custom rules may return ``None``, a problem, an :class:`Issue` or an
    iterable of them; an exception they raise becomes an issue too, so one
    odd row cannot crash a whole batch.
    """
    severity = severity_of(rule)
    inner = unwrap(rule)
    name = rule_name(inner)
    fields: tuple[str, ...] = tuple(getattr(inner, "fields", ()))
    try:
        found: object = rule(row)
        if found is None:
            return []
        problems = [found] if isinstance(found, str | Issue) else list(found)  # type: ignore[call-overload]
    except Exception as exc:
        problems = [f"raised {describe_error(exc)}"]
    if batch:
        field, value = (", ".join(fields) or "batch"), None
    elif not fields:
        field, value = None, None
    else:
        field = ", ".join(fields)
        value = FieldValues(
            (f, MASK if f in secrets else row.get(f, None)) for f in fields if f in row
        )
    return [
        p if isinstance(p, Issue) else Issue(field, name, str(p), value, severity) for p in problems
    ]
