"""Small helpers shared by every primitive: option checks and exception notes."""

from __future__ import annotations

import math

from .exceptions import ConfigurationError

__all__ = ["add_note", "check_number"]


def check_number(option: str, value: object, *, minimum: float, strict: bool = False) -> None:
    """Raise ``ConfigurationError`` naming ``option`` unless ``value`` is a number in range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigurationError.for_option(option, value, "must be a number")
    if value < minimum or (strict and value == minimum):
        raise ConfigurationError.for_option(
            option, value, f"must be {'>' if strict else '>='} {minimum}"
        )


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
