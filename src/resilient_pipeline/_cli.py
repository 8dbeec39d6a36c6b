"""The command-line runner: ``python -m resilient_pipeline check module:suite`` and ``gaps``.

Exit codes (:class:`CheckExitCode`) are distinct so a scheduler can act:
0 every check passed, 1 only info/warning checks failed, 2 an error or
critical check failed, 3 a check (or the suite itself) could not run, 64 the
command line was wrong. A failed check never exits 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from resilient_pipeline._core import describe_error, redact, redact_data
from resilient_pipeline.checks import CheckExitCode, CheckReport, CheckSuite

__all__ = ["load_target", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(CheckExitCode.USAGE), f"{self.prog}: error: {message}\n")


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
            raise ValueError(f"--param {pair!r} is not NAME=VALUE")
        params[name] = value
    return params


def _error(err: TextIO, message: str) -> None:
    """Print ``error: message`` with secrets masked: arguments and errors may hold a DSN."""
    print(f"error: {redact(message)}", file=err)


def _run_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        params = _params(args.param)
    except ValueError as exc:
        _error(err, str(exc))
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
        _error(err, f"could not run {args.target}: {describe_error(exc)}")
        return int(CheckExitCode.NOT_RUN)
    # Offending rows are data, and data has access_token columns too.
    if args.format == "json":
        print(json.dumps(redact_data(report.to_dict()), default=str, indent=2), file=out)
    else:
        print(redact(report.summary()), file=out)
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
    gaps = commands.add_parser("gaps", help="list a source's missing partitions in a range")
    gaps.add_argument("--db", required=True, help="a SQLite file path or a postgresql:// DSN")
    gaps.add_argument("--schema", help="the PostgreSQL schema of the ledger")
    gaps.add_argument("--table", default="rp_partitions", help="the ledger table")
    gaps.add_argument("--source", required=True)
    gaps.add_argument("--keys", required=True, help="comma-separated expected keys")
    gaps.add_argument("--start", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    gaps.add_argument("--end", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    gaps.add_argument("--format", choices=("text", "json"), default="text")
    gaps.set_defaults(handler=_run_gaps)
    return parser


def _run_gaps(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from resilient_pipeline.ledger import PartitionLedger
    from resilient_pipeline.storage import PostgresStore, SQLiteStore

    keys = [k.strip() for k in args.keys.split(",") if k.strip()]
    try:
        store: Any = (
            PostgresStore(args.db, schema=args.schema)
            if args.db.startswith(("postgresql://", "postgres://"))
            else SQLiteStore(args.db)
        )
        try:
            ledger = PartitionLedger(store, table=args.table)
            found = ledger.gaps(args.source, keys, args.start, args.end)
        finally:
            store.close()
    except Exception as exc:
        _error(err, f"could not read the ledger: {describe_error(exc)}")
        return int(CheckExitCode.NOT_RUN)
    # gaps() gives each gap's record (status "missing" if never planned). The
    # error is masked again: a ledger written by older code or by hand may hold any text.
    rows = [
        {
            "key": gap.key,
            "period": gap.period,
            "status": gap.status,
            "attempts": gap.attempts,
            "last_error": redact(gap.last_error) if gap.last_error else None,
        }
        for gap in found
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2), file=out)
    else:
        total = len(keys) * ((args.end - args.start).days + 1)
        print(f"{args.source}: {len(found)} of {total} partition(s) not succeeded", file=out)
        for row in rows:
            error = f"  {row['last_error']}" if row["last_error"] else ""
            print(
                f"  {row['period']}  {row['key']:<12} {row['status']:<12} "
                f"attempts={row['attempts']}{error}",
                file=out,
            )
    return int(CheckExitCode.ERRORS if found else CheckExitCode.PASSED)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code.

    Examples:
        >>> main(["check", "no_such_module:suite"], out=sys.stdout)
        3
    """
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace, TextIO, TextIO], int] = args.handler
    return handler(args, out or sys.stdout, sys.stderr)
