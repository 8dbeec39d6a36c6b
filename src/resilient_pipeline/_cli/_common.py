"""The command line's shared pieces: its errors, argument types and the target loader."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from resilient_pipeline._core import redact
from resilient_pipeline.checks import CheckExitCode

USAGE, NOT_RUN = int(CheckExitCode.USAGE), int(CheckExitCode.NOT_RUN)


_ERROR_WIDTH = 160
"""Characters of a last error shown in text output (``--json`` has it whole)."""


class _UsageError(Exception):
    """The command line was wrong: exit 64."""


class _CannotRunError(Exception):
    """No database or no ledger there, or it cannot be read: exit 3."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {redact(message)}\n")


def load_target(spec: str) -> object:
    """Import ``module:attribute`` or ``path/to/file.py:attribute``.

    Examples:
        >>> load_target("resilient_pipeline.checks:completeness").__name__
        'completeness'
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{spec!r} is not 'module:attribute' or 'file.py:attribute'")
    if module_name.endswith(".py"):
        path = Path(module_name)
        loader_spec = importlib.util.spec_from_file_location(path.stem, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    target: object = module
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def _params(pairs: Sequence[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _UsageError(f"--param {pair!r} is not NAME=VALUE")
        params[name] = value
    return params


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _keys(text: str | None) -> list[str] | None:
    if text is None:
        return None
    keys = list(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    if not keys:
        raise _UsageError(
            f"--keys {text!r} names no key (an unset shell variable?); "
            "leave --keys out to use every key the ledger planned"
        )
    return keys


def _error(err: TextIO, message: str) -> None:
    """Print ``error: message`` with secrets masked: arguments and errors may hold a DSN."""
    print(f"error: {redact(message)}", file=err)
