"""The collector's command line: demo, collect, backfill, aggregate, check, report.

    python -m examples.kpi_collector demo
    KPI_META_TOKEN=... KPI_GOOGLE_TOKEN=... python -m examples.kpi_collector collect \\
        --base-url https://ads-proxy.internal --clients-file clients.txt --db "$KPI_DB"

``--workers N --engine local|celery|dask`` runs each backfill pass in N
workers sharing the ledger (see :mod:`examples.kpi_collector.fleet`), and
``--redis-url`` (or ``KPI_REDIS_URL``) makes them share the breakers and quotas.
``--serve-metrics PORT`` serves ``/healthz``, ``/readyz`` and ``/metrics``
while the run goes on (``0``: a free port; the URL is printed on stderr);
feature flags come from ``RP_FLAG_*`` variables and ``--flags-file``.

Exit codes are the library's check exit codes (``CheckExitCode``): 0 every
partition complete and every check passed, 1 warnings only, 2 data missing or
wrong, 3 something could not run (the API or the database unreachable), 64 a
wrong command line. A problem is one line on stderr, never a traceback, and
never shows a secret.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import attrs

from resilient_pipeline.checks import CheckExitCode
from resilient_pipeline.exceptions import ConfigurationError, ResilientPipelineError
from resilient_pipeline.observability import redact

from . import console
from .settings import (
    DEMO_END,
    DEMO_TUNING,
    ENGINES,
    KNOWN_PLATFORMS,
    REDIS_ENV,
    Settings,
    parse_clients,
    read_clients_file,
    tokens_from_env,
)

if TYPE_CHECKING:
    from .monitoring import RunMonitor

__all__ = ["main", "parse_args"]

PROG = "python -m examples.kpi_collector"
COMMANDS = ("demo", "collect", "backfill", "aggregate", "check", "report")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 64 (``EX_USAGE``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(int(CheckExitCode.USAGE), f"{self.prog}: error: {redact(message)}\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, not {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, not {value}")
    return value


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def _platforms(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [p for p in names if p not in KNOWN_PLATFORMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown platform {', '.join(unknown) or text!r}: choose from "
            f"{', '.join(KNOWN_PLATFORMS)}"
        )
    return names


def _clients(text: str) -> tuple[int, ...]:
    try:
        return parse_clients(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _yesterday() -> dt.date:
    return dt.date.today() - dt.timedelta(days=1)


def _common(p: argparse.ArgumentParser, *, db: str, collecting: bool) -> None:
    p.add_argument("--db", default=db, help=f"SQLite file or postgresql:// DSN (default: {db})")
    p.add_argument(
        "--platform",
        dest="platforms",
        type=_platforms,
        default=KNOWN_PLATFORMS,
        help=f"comma-separated platforms (default: {','.join(KNOWN_PLATFORMS)})",
    )
    p.add_argument("--days", type=_positive, default=30, help="days ending --end (default 30)")
    p.add_argument("--log-level", choices=console.LEVELS, type=str.upper, help="default: LOG_LEVEL")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    if not collecting:
        return
    p.add_argument(
        "--concurrency",
        type=_positive,
        default=8,
        help="partitions in flight per platform in each worker (default 8)",
    )
    p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="workers sharing each pass: processes (--engine local), Celery or Dask tasks "
        "(default 1: this process)",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="where the workers run (default local: this machine)",
    )
    p.add_argument(
        "--lookback", type=_non_negative, default=3, help="days re-checked for restatements"
    )
    p.add_argument("--out", type=Path, default=None, help="write the HTML report here")
    p.add_argument(
        "--slack-webhook",
        default=os.environ.get("KPI_SLACK_WEBHOOK"),
        help="Slack incoming-webhook URL for alerts (default: $KPI_SLACK_WEBHOOK)",
    )
    p.add_argument(
        "--webhook",
        default=os.environ.get("KPI_WEBHOOK"),
        help="JSON webhook URL for alerts (default: $KPI_WEBHOOK)",
    )
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None)
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument(
        "--serve-metrics",
        type=_port,
        default=None,
        metavar="PORT",
        help="serve /healthz, /readyz and /metrics on PORT while running (0: any free port)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address for --serve-metrics (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get(REDIS_ENV),
        help="share the breakers and quotas of every worker through this Redis "
        f"(default: ${REDIS_ENV}, the place for a URL with a password)",
    )
    p.add_argument(
        "--flags-file",
        type=Path,
        default=None,
        help="TOML/JSON feature flags, re-read when it changes (RP_FLAG_* variables win)",
    )


def _clients_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--clients", type=_clients, help="client ids: 1-16 or 3,5,9")
    group.add_argument("--clients-file", type=Path, help="a file with one client id per line")


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = _Parser(
        prog=PROG,
        description="The reference daily ad-KPI collector (see docs/tutorial.md).",
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    demo = sub.add_parser("demo", help="collect from a local flaky API, check, report (default)")
    _common(demo, db="kpi-demo.sqlite3", collecting=True)
    demo.add_argument("--clients", type=_positive, default=16, help="how many clients (16)")
    demo.add_argument("--end", type=_day, default=DEMO_END, help=f"last day ({DEMO_END})")
    demo.add_argument("--seed", type=int, default=13, help="the fake API's seed")
    demo.add_argument("--fault-rate", type=_rate, default=0.2, help="share of faulty answers")
    demo.set_defaults(out=Path("kpi-report.html"))

    for name, text in (
        ("collect", "the daily run: the last --days days with look-back, checks, alerts"),
        ("backfill", "collect the gaps of a range (no look-back unless asked)"),
    ):
        p = sub.add_parser(name, help=text)
        _common(p, db="kpi.sqlite3", collecting=True)
        _clients_options(p)
        p.add_argument("--base-url", required=True, help="the ads API's root URL")
        p.add_argument("--end", type=_day, default=None, help="last day (default: yesterday)")
        if name == "backfill":
            p.add_argument("--start", type=_day, default=None, help="first day (or --days)")
            p.set_defaults(lookback=0)

    agg = sub.add_parser("aggregate", help="recompute the monthly summaries that changed")
    _common(agg, db="kpi.sqlite3", collecting=False)

    check = sub.add_parser("check", help="run the checks over a range; exit with their code")
    _common(check, db="kpi.sqlite3", collecting=False)
    _clients_options(check)
    check.add_argument("--end", type=_day, default=None, help="last day (default: yesterday)")

    report = sub.add_parser("report", help="write the HTML report from the database")
    _common(report, db="kpi.sqlite3", collecting=False)
    report.add_argument("--out", type=Path, default=Path("kpi-report.html"))
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; with no arguments at all the command is ``demo``."""
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args:
        args = ["demo"]
    elif args[0] not in COMMANDS and args[0] not in ("-h", "--help"):
        # Options alone never mean the demo: it would write fake data into --db.
        parser.error(f"give a command first: {' | '.join(COMMANDS)}")
    return parser.parse_args(args)


# ---------------------------------------------------------------- commands
def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    end = args.end or _yesterday()
    days = args.days
    if getattr(args, "start", None) is not None:
        if args.start > end:
            raise ConfigurationError.for_option("start", args.start.isoformat(), "is after --end")
        days = (end - args.start).days + 1
    clients = extra.pop("clients", None)
    if clients is None:
        clients = args.clients if args.clients else read_clients_file(args.clients_file)
    return Settings(
        db=args.db,
        platforms=args.platforms,
        clients=clients,
        end=end,
        days=days,
        lookback=min(getattr(args, "lookback", 0), days),
        concurrency=getattr(args, "concurrency", 8),
        slots=getattr(args, "workers", 1),
        engine=getattr(args, "engine", "local"),
        report=_absolute(getattr(args, "out", None)),
        slack_webhook=getattr(args, "slack_webhook", None) or None,
        webhook=getattr(args, "webhook", None) or None,
        progress=getattr(args, "progress", None),
        flags_file=_absolute(getattr(args, "flags_file", None)),
        redis_url=getattr(args, "redis_url", None) or None,
        **extra,
    )


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else path.expanduser().resolve()


@attrs.frozen
class _Hooks:
    err: IO[str]
    # Called with the --serve-metrics URL at the end of a run, before the server stops (tests).
    at_run_end: Callable[[str | None], None] | None = None


@contextlib.contextmanager
def _monitor(args: argparse.Namespace, hooks: _Hooks) -> Iterator[RunMonitor | None]:
    """A serving :class:`RunMonitor` for ``--serve-metrics``, stopped after the run."""
    if args.serve_metrics is None:
        yield None
        return
    from .monitoring import RunMonitor

    with RunMonitor() as monitor:
        url = monitor.serve(args.metrics_host, args.serve_metrics)
        print(f"serving {url}/metrics, {url}/healthz and {url}/readyz", file=hooks.err, flush=True)
        if hooks.at_run_end is not None:
            monitor.at_end.append(hooks.at_run_end)
        yield monitor


def _cmd_demo(args: argparse.Namespace, out: IO[str], hooks: _Hooks) -> int:
    from .demo import run_demo

    settings = _settings(
        args,
        clients=tuple(range(1, args.clients + 1)),
        seed=args.seed,
        fault_rate=args.fault_rate,
        **DEMO_TUNING,
    )
    with _monitor(args, hooks) as monitor:
        summary = run_demo(settings, on_pass=console.print_pass, monitor=monitor)
    console.print_summary(summary, out=out)
    return summary.exit_code


def _cmd_collect(args: argparse.Namespace, out: IO[str], hooks: _Hooks) -> int:
    from .pipeline import run

    base = _settings(args)
    # A Celery or Dask fleet's workers hold the tokens; this process only coordinates.
    tokens = {} if base.engine != "local" else tokens_from_env(base.platforms)
    settings = attrs.evolve(base, base_url=args.base_url, tokens=tokens)
    with _monitor(args, hooks) as monitor:
        summary = run(settings, on_pass=console.print_pass, monitor=monitor)
    console.print_summary(summary, out=out)
    return summary.exit_code


def _cmd_aggregate(args: argparse.Namespace, out: IO[str], _hooks: _Hooks) -> int:
    from . import repository
    from .suite import open_store

    store = open_store(args.db)
    try:
        repository.ensure_schema(store)
        result = repository.aggregate_months(store)
    finally:
        store.close()
    months = ", ".join(f"{p} {m}" for p, m in result.months) or "none"
    print(
        f"aggregated months: {months}; {result.inserted} inserted, {result.updated} updated, "
        f"{result.deleted} deleted, {result.unchanged} unchanged",
        file=out,
    )
    return 0


def _cmd_check(args: argparse.Namespace, out: IO[str], _hooks: _Hooks) -> int:
    from .pipeline import run_checks

    report = run_checks(_settings(args))
    print(report.summary(), file=out)
    return int(report.exit_code)


def _cmd_report(args: argparse.Namespace, out: IO[str], _hooks: _Hooks) -> int:
    from .report import render_report
    from .suite import open_store

    store = open_store(args.db)
    try:
        path = render_report(store, Path(args.out).expanduser().resolve())
    finally:
        store.close()
    print(f"report: {path}", file=out)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, IO[str], _Hooks], int]] = {
    "demo": _cmd_demo,
    "collect": _cmd_collect,
    "backfill": _cmd_collect,
    "aggregate": _cmd_aggregate,
    "check": _cmd_check,
    "report": _cmd_report,
}


def main(
    argv: Sequence[str] | None = None,
    *,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    at_run_end: Callable[[str | None], None] | None = None,
) -> int:
    """Run one command; returns the exit code (problems are one line on ``err``).

    ``at_run_end`` is called with the ``--serve-metrics`` URL at the end of a
    run, while the server still answers (tests scrape it there).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else int(CheckExitCode.USAGE)
    try:
        console.setup_logging(args.log_level, args.log_format, stream=err)
        return _COMMANDS[args.command](args, out, _Hooks(err, at_run_end))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=err)
        return 130
    except (ConfigurationError, ValueError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=err)
        return int(CheckExitCode.USAGE)
    except (ResilientPipelineError, OSError, ImportError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=err)
        return int(CheckExitCode.NOT_RUN)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)
