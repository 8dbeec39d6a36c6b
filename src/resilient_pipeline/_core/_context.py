"""Fields bound once to a unit of work, carried by a context variable.

A context variable follows the work wherever it goes: into the retry loop
(same thread or task), into worker threads started with
``anyio.to_thread.run_sync`` (anyio copies the context), and into tasks a
task group starts (each task starts with a copy of its parent's context).
Every event captures the fields bound where it is created, and the logging
integration adds them to every log record.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping

from resilient_pipeline.exceptions import ConfigurationError

from ._redact import redact_data

__all__ = ["EMPTY_CONTEXT", "bind_context", "bound_context", "current_context"]

# Shared by every event created outside any binding: never mutate it.
EMPTY_CONTEXT: Mapping[str, object] = {}

# The value is a dict that is never mutated once set: bind() builds a new one.
_BOUND: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar(
    "resilient_pipeline.context"
)


def bound_context() -> dict[str, object]:
    """The fields bound in the current context (a new dict; empty outside any ``bind_context``).

    Examples:
        >>> with bind_context(run_id="r1"):
        ...     bound_context()
        {'run_id': 'r1'}
        >>> bound_context()
        {}
    """
    return dict(_BOUND.get(EMPTY_CONTEXT))


@contextlib.contextmanager
def bind_context(**fields: object) -> Iterator[dict[str, object]]:
    """Add ``fields`` to the context of everything run inside the ``with`` block.

    Nested blocks add to (and may override) the outer fields; leaving a block
    restores them. Values are kept as given, except that a field whose name
    says it holds a secret (``token``, ``api_key``...) is masked and strings
    have secrets scrubbed out (see ``redact_data``), so a bound value can
    never leak one into a log line.

    Examples:
        >>> with bind_context(run_id="r1", source="meta_ads"):
        ...     with bind_context(partition_key="act_1") as fields:
        ...         sorted(fields)
        ['partition_key', 'run_id', 'source']
    """
    for name in fields:
        if not name.isidentifier():
            raise ConfigurationError.for_option("bind", name, "field names must be identifiers")
    current = _BOUND.get(EMPTY_CONTEXT)
    merged = {**current, **{name: redact_data(value, name) for name, value in fields.items()}}
    token = _BOUND.set(merged)
    try:
        yield dict(merged)
    finally:
        _BOUND.reset(token)


def current_context() -> Mapping[str, object]:
    """The bound fields without a copy (read-only by convention): the hot path's getter."""
    return _BOUND.get(EMPTY_CONTEXT)
