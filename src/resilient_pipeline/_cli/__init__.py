"""``python -m resilient_pipeline``: check, gaps, retry and reset, for operators.

Read commands (``gaps``, ``check``) open the database read-only: a mistyped
SQLite path is reported, never created, and no table is ever made or altered.
Write commands (``retry``, ``reset``) need an explicit ``--source`` and accept
``--dry-run``. Exit codes (:class:`~resilient_pipeline.checks.CheckExitCode`)
are distinct so a scheduler can act: 0 ok, 1 warnings only (or nothing to
change), 2 errors or gaps found, 3 could not run (no ledger, database
unreachable, a suite that raised), 64 the command line was wrong.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import TextIO

from resilient_pipeline._core import Clock, describe_error, resolve_clock

from ._commands import _run_check, _run_gaps, _run_reset
from ._common import (
    NOT_RUN,
    USAGE,
    _CannotRunError,
    _date,
    _error,
    _Parser,
    _UsageError,
    load_target,
)

__all__ = ["build_parser", "load_target", "main"]

_DESCRIPTION = """\
Operate a resilient-pipeline deployment from the shell.

  gaps    list the partitions of a source that did not succeed (read-only)
  retry   put failed and exhausted partitions back to pending
  reset   put partitions of chosen statuses back to pending
  check   run a CheckSuite and exit with its outcome (read-only)
"""

_EPILOG = """\
exit codes:
  0   ok: no gaps, every check passed, partitions changed
  1   warnings only: a warning/info check failed, or nothing matched to change
  2   errors: gaps found, or an error/critical check failed
  3   could not run: no ledger or no database there, database unreachable,
      a suite that could not be loaded or raised
  64  the command line was wrong: bad date, --start after --end, empty --keys,
      unknown source

--db is a SQLite file path or a postgresql:// DSN; passwords are never printed.
"""

# -------------------------------------------------------------------- parser


def _add_db(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--db",
        required=required,
        help="a SQLite file path or a postgresql:// DSN (the password is never printed)",
    )
    parser.add_argument(
        "--schema", help="the PostgreSQL schema of the tables (default: search_path)"
    )


def _add_ledger(parser: argparse.ArgumentParser, *, dates_required: bool) -> None:
    _add_db(parser)
    parser.add_argument(
        "--table", default="rp_partitions", help="the ledger table (default: %(default)s)"
    )
    parser.add_argument("--source", required=True, help="the source, e.g. meta_ads")
    parser.add_argument(
        "--keys",
        help="comma-separated keys, e.g. 01,07,12 (default: every key the ledger planned)",
    )
    parser.add_argument(
        "--start", required=dates_required, type=_date, metavar="DAY", help="first day, YYYY-MM-DD"
    )
    parser.add_argument(
        "--end", required=dates_required, type=_date, metavar="DAY", help="last day, YYYY-MM-DD"
    )
    _add_format(parser)


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=78)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m resilient_pipeline`` argument parser.

    Examples:
        >>> build_parser().parse_args(["gaps", "--db", "kpi.sqlite3", "--source", "meta_ads",
        ...     "--start", "2026-11-28", "--end", "2026-11-28"]).end
        datetime.date(2026, 11, 28)
    """
    parser = _Parser(
        prog="python -m resilient_pipeline",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND"
    )

    gaps = commands.add_parser(
        "gaps",
        help="list the partitions of a source that did not succeed (read-only)",
        description=_wrap(
            "List every expected partition of SOURCE from START to END that did not "
            "succeed: its status, attempts, lease (a live worker or a dead one) and the root cause "
            "of its last failure. Opens the database read-only; exits 2 while gaps remain."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_ledger(gaps, dates_required=True)
    gaps.set_defaults(handler=_run_gaps)

    for name, summary in (
        ("retry", "put failed and exhausted partitions back to pending"),
        ("reset", "put partitions of chosen statuses back to pending"),
    ):
        command = commands.add_parser(
            name,
            help=summary,
            description=_wrap(
                f"{summary[0].upper()}{summary[1:]} with 0 attempts, so the next "
                "collector run or backfill collects them. The last error is kept for history; "
                "running partitions are left alone. Without --start/--end every period matches; "
                "without --keys every key. Use --dry-run first to see what would change."
            ),
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_ledger(command, dates_required=False)
        command.add_argument(
            "--dry-run", action="store_true", help="print what would change, change nothing"
        )
        if name == "reset":
            command.add_argument(
                "--status",
                action="append",
                choices=("exhausted", "failed", "succeeded", "pending"),
                default=None,
                help="a status to reset (repeatable; default: exhausted); "
                "succeeded collects partitions again",
            )
        command.set_defaults(handler=_run_reset, status=None)

    check = commands.add_parser(
        "check",
        help="run a CheckSuite and exit with its outcome (read-only)",
        description=_wrap(
            "Run a CheckSuite and exit with its outcome. SUITE is module:attribute or "
            "path/to/file.py:attribute naming a CheckSuite or a function returning one; a function "
            "with a 'store' parameter is given the --db store. SQL checks run on --db, opened "
            "read-only."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("target", nargs="?", metavar="SUITE", help="the suite (or use --suite)")
    check.add_argument("--suite", metavar="SUITE", help="module:attribute or file.py:attribute")
    _add_db(check, required=False)
    check.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter for the checks, e.g. day=2026-11-28 (repeatable)",
    )
    _add_format(check)
    check.set_defaults(handler=_run_check)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    clock: Clock | None = None,
) -> int:
    """Run the command line; return the exit code.

    Examples:
        >>> main(["check", "nope:suite"], out=sys.stdout, err=sys.stdout)
        error: could not run nope:suite: ModuleNotFoundError: No module named 'nope'
        3
    """
    args = build_parser().parse_args(argv)
    if args.command == "reset" and args.status is None:
        args.status = ["exhausted"]
    handler: Callable[[argparse.Namespace, TextIO, float], int] = args.handler
    err = err or sys.stderr
    try:
        return handler(args, out or sys.stdout, resolve_clock(clock).time())
    except _UsageError as exc:
        _error(err, str(exc))
        return USAGE
    except _CannotRunError as exc:
        _error(err, str(exc))
        return NOT_RUN
    except Exception as exc:
        _error(err, f"could not run {args.command}: {describe_error(exc)}")
        return NOT_RUN
