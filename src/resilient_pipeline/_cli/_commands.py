"""The commands: gaps, retry and reset, check."""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from resilient_pipeline._core import describe_error, redact, redact_data
from resilient_pipeline.checks import CheckExitCode, CheckReport, CheckSuite
from resilient_pipeline.exceptions import ConfigurationError

if TYPE_CHECKING:
    from resilient_pipeline.ledger import PartitionRecord

from ._common import _CannotRunError, _keys, _params, _UsageError, load_target
from ._database import _open_store, _opened_ledger, _planned_keys
from ._format import _as_dict, _command, _counts, _print_record

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
