"""Small helpers shared by every primitive: option checks, callables and exception notes."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from resilient_pipeline.exceptions import (
    PermanentError,
    StoreError,
    TransientStoreError,
)

__all__ = [
    "add_note",
    "check_callable",
    "is_async",
    "is_permanent",
    "source_of",
]


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)``, also on Python 3.10."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # pragma: no cover - Python 3.10
        notes = getattr(error, "__notes__", None)
        if notes is None:
            notes = []
            error.__notes__ = notes  # type: ignore[attr-defined]
        notes.append(note)


def source_of(name: str | None, fn: Callable[..., Any]) -> str:
    """The name events use: the policy's ``name``, else the function's qualified name."""
    return name or getattr(fn, "__qualname__", None) or repr(fn)


def check_callable(fn: object, what: str) -> None:
    """Raise ``TypeError`` unless ``fn`` is callable (``what`` names the decorator)."""
    if not callable(fn):
        raise TypeError(f"{what} decorates callables, not {fn!r}")


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` returns a coroutine."""
    return inspect.iscoroutinefunction(fn)


def is_permanent(error: BaseException) -> bool:
    """Whether the same call would fail the same way: retry and fallback both leave it alone.

    A :class:`~resilient_pipeline.exceptions.PermanentError` (bad options, bad
    input, a missing extra, a misused unit of work, or your own subclass), or a
    database error the store did not classify as transient (bad SQL, a missing
    table).
    """
    if isinstance(error, PermanentError):
        return True
    return isinstance(error, StoreError) and not isinstance(error, TransientStoreError)
