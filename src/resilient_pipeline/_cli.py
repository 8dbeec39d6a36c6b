"""The command-line runner: ``python -m resilient_pipeline check module:suite``.

Exit codes (:class:`CheckExitCode`) are distinct so a scheduler can act:
0 every check passed, 1 only info/warning checks failed, 2 an error or
critical check failed, 3 a check (or the suite itself) could not run, 64 the
command line was wrong. A failed check never exits 0.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ._checks import CheckSuite
from ._redact import describe_error
from ._report import CheckExitCode, CheckReport

__all__ = ["load_target", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(CheckExitCode.USAGE), f"{self.prog}: error: {message}\n")


def load_target(spec: str) -> object:
    """Import ``module:attribute`` or ``path/to/file.py:attribute``.

    Example:
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
            raise ValueError(f"--param {pair!r} is not NAME=VALUE")
        params[name] = value
    return params


def _run_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        params = _params(args.param)
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return int(CheckExitCode.USAGE)
    try:
        target = load_target(args.target)
        if not isinstance(target, CheckSuite) and callable(target):
            target = target()
        if not isinstance(target, CheckSuite):
            raise TypeError(f"{args.target} is not a CheckSuite (nor a function returning one)")
        report: CheckReport = target.run(params)
    except Exception as exc:
        # Nothing ran: the outcome of every check is unknown.
        print(f"error: could not run {args.target}: {describe_error(exc)}", file=err)
        return int(CheckExitCode.NOT_RUN)
    print(report.to_json() if args.format == "json" else report.summary(), file=out)
    return int(report.exit_code)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m resilient_pipeline`` argument parser."""
    parser = _Parser(prog="python -m resilient_pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = commands.add_parser("check", help="run a CheckSuite and exit with its outcome")
    check.add_argument("target", help="module:suite or file.py:suite (or a function returning one)")
    check.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter for the checks, e.g. day=2026-11-28 (repeatable)",
    )
    check.add_argument("--format", choices=("text", "json"), default="text")
    check.set_defaults(handler=_run_check)
    for register in _EXTRA_COMMANDS:
        register(commands)
    return parser


_EXTRA_COMMANDS: list[Callable[[Any], None]] = []


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code.

    Example:
        >>> main(["check", "no_such_module:suite"], out=sys.stdout)
        3
    """
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, TextIO, TextIO], int] = args.handler
    return handler(args, out or sys.stdout, sys.stderr)
