"""Rule factories for :class:`~resilient_pipeline.Validator`, in the style of ``attrs.validators``.

Value rules (for :class:`~resilient_pipeline.Field`): ``ge``, ``gt``, ``le``,
``lt``, ``between``, ``non_negative``, ``positive``, ``length``, ``matches``,
``one_of``, ``predicate``; combinators ``all_of``, ``any_of``, ``optional``,
``when`` and ``warning``. Row rules (``Validator(rules=...)``): ``compare``,
``where``, ``implies``, ``required_if`` or any callable ``row -> problem | None``.
Batch rules (``Validator(batch_rules=...)``): ``expect_keys``, ``expect_non_empty``.

Examples:
    >>> from resilient_pipeline.validation.rules import all_of, ge, le
    >>> percent = all_of(ge(0), le(100))
    >>> percent(120), percent
    ('must be <= 100', all_of(ge(0), le(100)))
"""

from ._combinators import all_of, any_of, optional, warning, when
from ._row_rules import compare, expect_keys, expect_non_empty, implies, required_if, where
from ._rules import (
    Rule,
    between,
    ge,
    gt,
    le,
    length,
    lt,
    matches,
    non_negative,
    one_of,
    positive,
    predicate,
)

__all__ = [
    "Rule",
    "all_of",
    "any_of",
    "between",
    "compare",
    "expect_keys",
    "expect_non_empty",
    "ge",
    "gt",
    "implies",
    "le",
    "length",
    "lt",
    "matches",
    "non_negative",
    "one_of",
    "optional",
    "positive",
    "predicate",
    "required_if",
    "warning",
    "when",
    "where",
]
