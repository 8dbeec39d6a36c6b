"""The exception tree: one root, builtin bases, context that survives pickling."""

from __future__ import annotations

import inspect
import pickle

import pytest

from resilient_pipeline import exceptions
from resilient_pipeline._core._util import add_note
from resilient_pipeline.exceptions import (
    BadResultError,
    ConfigurationError,
    DeadlineExceededError,
    MissingDependencyError,
    RejectedError,
    ResilientPipelineError,
)

ERRORS = [
    ConfigurationError.for_option("max_attempts", 0, "must be >= 1"),
    MissingDependencyError(package="redis", extra="redis", feature="Redis state"),
    BadResultError("still empty", result=[], attempts=3),
    DeadlineExceededError("too slow", timeout=2.5),
    RejectedError("open", retry_after=4.0),
]


def public_error_classes() -> list[type[BaseException]]:
    return [
        obj
        for name in exceptions.__all__
        if isinstance(obj := getattr(exceptions, name), type) and issubclass(obj, BaseException)
    ]


def test_every_error_has_the_one_root() -> None:
    """Every public exception class derives from ResilientPipelineError."""
    classes = public_error_classes()
    assert len(classes) >= 6
    assert all(issubclass(cls, ResilientPipelineError) for cls in classes)


def test_every_error_is_drawn_in_the_module_docstring() -> None:
    """The tree in the module docstring names every public exception."""
    doc = inspect.getdoc(exceptions) or ""
    missing = [cls.__name__ for cls in public_error_classes() if cls.__name__ not in doc]
    assert [] == missing


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_survive_pickle_with_context(error: ResilientPipelineError) -> None:
    """Errors cross process boundaries with message and attributes intact."""
    add_note(error, "a note")
    clone = pickle.loads(pickle.dumps(error))
    assert type(error) is type(clone)
    assert str(error) == str(clone)
    assert vars(error) == vars(clone)


def test_builtin_bases() -> None:
    """Errors about bad input or time also subclass the builtin users already catch."""
    assert isinstance(ERRORS[0], ValueError)
    assert isinstance(ERRORS[1], ImportError)
    assert isinstance(ERRORS[3], TimeoutError)


def test_configuration_error_message_names_option_and_value() -> None:
    """The message says which option had which value and why it is wrong."""
    assert "max_attempts=0 is invalid: must be >= 1" == str(ERRORS[0])
    assert ("max_attempts", 0) == (ERRORS[0].option, ERRORS[0].value)  # type: ignore[attr-defined]
