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
import datetime as dt
import importlib
import importlib.util
import inspect
import json
import os
import shlex
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import attrs

from resilient_pipeline._core import Clock, describe_error, redact, redact_data, resolve_clock
from resilient_pipeline.checks import CheckExitCode, CheckReport, CheckSuite
from resilient_pipeline.exceptions import ConfigurationError

if TYPE_CHECKING:
    from resilient_pipeline.ledger import PartitionLedger, PartitionRecord
    from resilient_pipeline.storage import Dialect, Store, StoreSession, Transaction

__all__ = ["build_parser", "load_target", "main"]

USAGE, NOT_RUN = int(CheckExitCode.USAGE), int(CheckExitCode.NOT_RUN)

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


# ------------------------------------------------------------------ the database


def _is_postgres(db: str) -> bool:
    """A URI, or a ``host=... dbname=...`` DSN that is not a file's name."""
    if db.startswith(("postgresql://", "postgres://")):
        return True
    return not os.path.exists(db) and any(f"{k}=" in db for k in ("host", "dbname", "user"))


@attrs.define(eq=False)
class _ReadOnlyStore:
    """A PostgreSQL store whose every transaction is READ ONLY: DDL and writes fail."""

    inner: Store
    once_table: str = attrs.field(init=False)
    cache: dict[str, Any] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.once_table, self.cache = self.inner.once_table, self.inner.cache

    @property
    def dialect(self) -> Dialect:
        return self.inner.dialect

    @property
    def schema(self) -> str | None:
        return self.inner.schema

    def connect(self) -> StoreSession:
        session = self.inner.connect()
        try:
            session.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        except BaseException:
            session.release()
            raise
        return session

    def close(self) -> None:
        self.inner.close()


def _open_store(args: argparse.Namespace, *, write: bool) -> Store:
    """The ``--db`` store; read-only unless ``write``. Never creates a SQLite file."""
    from resilient_pipeline.storage import PostgresStore, SQLiteStore

    db: str = args.db
    if not db.strip():
        raise _UsageError("--db is empty (an unset shell variable?)")
    if _is_postgres(db):
        store = PostgresStore(db, schema=args.schema)
        return store if write else _ReadOnlyStore(store)
    if args.schema is not None:
        raise _UsageError("--schema applies to PostgreSQL only; --db is a SQLite file")
    path = Path(db)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise _CannotRunError(
            f"no ledger here: {path} {what} (looked in {Path.cwd()}); nothing was created"
        )
    # Read-only even for writes at first: the ledger is checked before anything changes.
    return SQLiteStore(path) if write else SQLiteStore(path, read_only=True)


def _tables(tx: Transaction) -> list[str]:
    if tx.dialect == "postgres":
        rows = tx.fetchall(
            "SELECT table_name FROM information_schema.tables "  # noqa: S608 - placeholder only
            f"WHERE table_schema = coalesce({tx.placeholder}, current_schema()) ORDER BY 1",
            (tx.store.schema,),
        )
    else:
        rows = tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
    return [str(r[0]) for r in rows]


def _columns(tx: Transaction, table: str) -> set[str]:
    if tx.dialect == "postgres":
        p = tx.placeholder
        rows = tx.fetchall(
            "SELECT column_name FROM information_schema.columns "  # noqa: S608 - placeholder only
            f"WHERE table_schema = coalesce({p}, current_schema()) AND table_name = {p}",
            (tx.store.schema, table),
        )
    else:
        rows = tx.fetchall("SELECT name FROM pragma_table_info(?)", (table,))
    return {str(r[0]) for r in rows}


def _ledger_columns() -> set[str]:
    from resilient_pipeline.ledger import PartitionRecord

    fields = {f.name for f in attrs.fields(PartitionRecord)} - {"partition"}
    return fields | {"source", "key", "period"}


def _check_ledger(store: Store, table: str, where: str) -> list[str]:
    """The sources in the ledger ``table``; :class:`_CannotRunError` if it is not there whole.

    Only queries: nothing is created, even on a database without a ledger.
    """
    from resilient_pipeline.storage import unit_of_work, validate_identifier

    try:
        validate_identifier(table, option="--table")
        validate_identifier(f"{table}_restatements", option="--table")
    except ConfigurationError as exc:
        raise _UsageError(str(exc)) from None
    with unit_of_work(store, name="cli.check_ledger") as tx:
        present = _tables(tx)
        if table not in present:
            shown = ", ".join(present[:12]) or "none"
            raise _CannotRunError(
                f"no ledger here: {where} has no table {table!r} (tables: {shown}); "
                "check --db, --schema and --table; nothing was created"
            )
        missing = sorted(_ledger_columns() - _columns(tx, table))
        if missing or f"{table}_restatements" not in present:
            lacking = ", ".join(missing) or f"the table {table}_restatements"
            raise _CannotRunError(
                f"the ledger {table!r} in {where} was made by an older version "
                f"(it lacks {lacking}); a read command never changes the database: "
                "run the collector (or retry/reset) once with this version to upgrade it"
            )
        rows = tx.fetchall(f"SELECT DISTINCT source FROM {tx.table(table)} ORDER BY 1")  # noqa: S608
    # Checked whole above: the ledger need not run its own CREATE ... IF NOT EXISTS.
    store.cache.setdefault("ledger_tables", set()).add(table)
    return [str(r[0]) for r in rows]


def _planned_keys(store: Store, table: str, source: str) -> list[str]:
    from resilient_pipeline.storage import unit_of_work

    with unit_of_work(store, name="cli.planned_keys") as tx:
        rows = tx.fetchall(
            f"SELECT DISTINCT key FROM {tx.table(table)} WHERE source = {tx.placeholder}",  # noqa: S608
            (source,),
        )
    return sorted(str(r[0]) for r in rows)


@contextmanager
def _opened_ledger(args: argparse.Namespace, *, write: bool) -> Iterator[PartitionLedger]:
    """The ledger of ``--db``/``--table`` for ``--source`` (checked to exist and to know it)."""
    from resilient_pipeline.ledger import PartitionLedger

    try:
        store = _open_store(args, write=write)
    except ConfigurationError as exc:  # a DSN libpq cannot parse, a bad --schema
        raise _UsageError(str(exc)) from None
    try:
        sources = _check_ledger(store, args.table, redact(args.db))
        if args.source not in sources:
            known = ", ".join(sources) or "none: the ledger is empty"
            raise _UsageError(
                f"unknown source {args.source!r}: no partition of it in the ledger "
                f"{args.table!r} (sources: {known})"
            )
        yield PartitionLedger(store, table=args.table)
    finally:
        store.close()


# ---------------------------------------------------------------- formatting


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _relative(at: float, now: float) -> str:
    """``"in 20 s"`` or ``"3 min ago"``."""
    return f"in {_span(at - now)}" if at >= now else f"{_span(now - at)} ago"


def _utc(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _lease(record: PartitionRecord, now: float) -> str | None:
    if record.lease_owner is None or record.lease_expires is None:
        return None
    if record.lease_expires >= now:
        return f"held by {record.lease_owner}, expires {_relative(record.lease_expires, now)}"
    return (
        f"held by {record.lease_owner}, expired {_relative(record.lease_expires, now)} "
        "(worker gone: claimable again)"
    )


def _as_dict(record: PartitionRecord, now: float) -> dict[str, Any]:
    expires = record.lease_expires
    return {
        "source": record.source,
        "key": record.key,
        "period": record.period,
        "status": record.status,
        "attempts": record.attempts,
        # Masked again: a ledger written by older code or by hand may hold any text.
        "last_error": redact(record.last_error) if record.last_error else None,
        "error_class": record.error_class,
        "error_at": _utc(record.error_at) if record.error_at is not None else None,
        "lease_owner": record.lease_owner,
        "lease_expires": _utc(expires) if expires is not None else None,
        "lease_expires_in": round(expires - now, 3) if expires is not None else None,
    }


def _print_record(record: PartitionRecord, now: float, out: TextIO) -> None:
    print(
        f"  {record.period}  {record.key:<10} {record.status:<10} attempts={record.attempts}",
        file=out,
    )
    lease = _lease(record, now)
    if lease:
        print(f"      lease: {lease}", file=out)
    if record.last_error:
        text = " ".join(redact(record.last_error).split())
        if len(text) > _ERROR_WIDTH:
            text = text[: _ERROR_WIDTH - 3] + "..."
        when = ""
        if record.error_at is not None:
            when = f" at {_utc(record.error_at)} ({_relative(record.error_at, now)})"
        kind = f" [{record.error_class}]" if record.error_class else ""
        print(f"      last error{kind}{when}: {text}", file=out)


def _command(args: argparse.Namespace, name: str, **options: object) -> str:
    """A pasteable command line for the same database (password masked)."""
    words = ["python", "-m", "resilient_pipeline", name, "--db", redact(args.db)]
    if args.schema:
        words += ["--schema", args.schema]
    if args.table != "rp_partitions":
        words += ["--table", args.table]
    words += ["--source", args.source]
    for option, value in options.items():
        if value is not None:
            words += [f"--{option}", str(value)]
    return shlex.join(words)


def _counts(records: Sequence[PartitionRecord]) -> str:
    by_status = Counter(r.status for r in records)
    return ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))


# ------------------------------------------------------------------ commands


def _run_gaps(args: argparse.Namespace, out: TextIO, now: float) -> int:
    if args.start > args.end:
        raise _UsageError(f"--start {args.start} is after --end {args.end}")
    keys = _keys(args.keys)
    with _opened_ledger(args, write=False) as ledger:
        if keys is None:
            keys = _planned_keys(ledger.store, args.table, args.source)
        found = ledger.gaps(args.source, keys, args.start, args.end)
    if args.format == "json":
        print(json.dumps([_as_dict(r, now) for r in found], indent=2), file=out)
        return int(CheckExitCode.ERRORS if found else CheckExitCode.PASSED)
    total = len(keys) * ((args.end - args.start).days + 1)
    span = f"{args.start}..{args.end}"
    if not found:
        print(f"{args.source}: all {total} partition(s) succeeded in {span}", file=out)
        return int(CheckExitCode.PASSED)
    print(
        f"{args.source}: {len(found)} of {total} partition(s) not succeeded in {span} "
        f"({_counts(found)})",
        file=out,
    )
    for record in found:
        _print_record(record, now, out)
    _next_steps(args, found, now, out)
    return int(CheckExitCode.ERRORS)


def _next_steps(
    args: argparse.Namespace, found: Sequence[PartitionRecord], now: float, out: TextIO
) -> None:
    statuses = {r.status for r in found}
    print("next:", file=out)
    if "exhausted" in statuses:
        exhausted = [r for r in found if r.status == "exhausted"]
        keys = ",".join(sorted({r.key for r in exhausted}))
        first, last = min(r.period for r in exhausted), max(r.period for r in exhausted)
        print(
            "  exhausted: out of attempts, no run retries them on its own; read the last "
            "error, fix the cause, then:\n    "
            + _command(args, "retry", keys=keys, start=first, end=last),
            file=out,
        )
    if statuses & {"missing", "pending", "failed"}:
        print(
            "  missing/pending/failed: the next collector run (or backfill) over "
            f"{args.start}..{args.end} collects them",
            file=out,
        )
    running = [r for r in found if r.status == "running"]
    if any(r.lease_expires is not None and r.lease_expires < now for r in running):
        print(
            "  running with an expired lease: its worker died; the next run takes it over", file=out
        )
    if any(r.lease_expires is None or r.lease_expires >= now for r in running):
        print("  running with a live lease: a worker is on it now; wait for it", file=out)


_RETRY_STATUSES = ("exhausted", "failed")


def _run_reset(args: argparse.Namespace, out: TextIO, now: float) -> int:
    statuses: tuple[str, ...] = _RETRY_STATUSES if args.command == "retry" else tuple(args.status)
    if args.start is not None and args.end is not None and args.start > args.end:
        raise _UsageError(f"--start {args.start} is after --end {args.end}")
    keys = _keys(args.keys)
    with _opened_ledger(args, write=True) as ledger:
        changed = ledger.reset(
            args.source,
            keys=keys,
            start=args.start,
            end=args.end,
            statuses=statuses,
            dry_run=args.dry_run,
        )
        running = [
            r
            for r in ledger.records(args.source, args.start, args.end)
            if r.status == "running" and (keys is None or r.key in keys)
        ]
    span = "every period"
    if args.start is not None or args.end is not None:
        span = f"{args.start or 'the first period'}..{args.end or 'the last period'}"
    verb = "would set" if args.dry_run else "set"
    if args.format == "json":
        print(
            json.dumps(
                {
                    "source": args.source,
                    "dry_run": args.dry_run,
                    "statuses": list(statuses),
                    "changed": [_as_dict(r, now) for r in changed],
                    "running_left_alone": [_as_dict(r, now) for r in running],
                },
                indent=2,
            ),
            file=out,
        )
    elif not changed:
        print(
            f"{args.source}: nothing to {args.command}: no {' or '.join(statuses)} partition "
            f"of {span}" + (f" for keys {','.join(keys)}" if keys else ""),
            file=out,
        )
    else:
        print(
            f"{args.source}: {verb} {len(changed)} partition(s) back to pending "
            f"(were {_counts(changed)}){' - dry run, nothing changed' if args.dry_run else ''}:",
            file=out,
        )
        for record in changed:
            _print_record(record, now, out)
    if args.format != "json" and running:
        print(
            f"  {len(running)} running partition(s) left alone: leased, claimable once "
            "the lease expires",
            file=out,
        )
    if args.format != "json" and changed:
        periods = sorted({r.period for r in changed})
        if args.dry_run:
            options: dict[str, object] = {
                "keys": ",".join(keys) if keys else None,
                "start": args.start,
                "end": args.end,
            }
            command = _command(args, args.command, **options)
            for status in statuses if args.command == "reset" else ():
                command += f" --status {status}"
            print(f"to do it:\n    {command}", file=out)
        else:
            print(
                f"next: the next collector run (or backfill) over {periods[0]}..{periods[-1]} "
                "collects them; then confirm with:\n    "
                + _command(args, "gaps", start=periods[0], end=periods[-1]),
                file=out,
            )
    return int(CheckExitCode.PASSED if changed else CheckExitCode.WARNINGS)


def _wants_store(target: Callable[..., object]) -> bool:
    try:
        return "store" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def _run_check(args: argparse.Namespace, out: TextIO, now: float) -> int:
    del now
    if args.target is not None and args.suite is not None and args.target != args.suite:
        raise _UsageError("give the suite once: either positionally or with --suite")
    spec = args.suite or args.target
    if spec is None:
        raise _UsageError("name the suite to run: --suite module:attribute (or file.py:attribute)")
    params = _params(args.param)
    store = None
    if args.db is not None:
        try:
            store = _open_store(args, write=False)
        except ConfigurationError as exc:
            raise _UsageError(str(exc)) from None
    try:
        try:
            target = load_target(spec)
            if not isinstance(target, CheckSuite) and callable(target):
                target = target(store=store) if _wants_store(target) else target()
            if not isinstance(target, CheckSuite):
                raise TypeError(f"{spec} is not a CheckSuite (nor a function returning one)")
            report: CheckReport = target.run(params, connection=store)
        except Exception as exc:
            # Nothing ran: the outcome of every check is unknown.
            raise _CannotRunError(f"could not run {spec}: {describe_error(exc)}") from None
    finally:
        if store is not None:
            store.close()
    # Offending rows are data, and data has access_token columns too.
    if args.format == "json":
        print(json.dumps(redact_data(report.to_dict()), default=str, indent=2), file=out)
    else:
        print(redact(report.summary()), file=out)
    return int(report.exit_code)


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
