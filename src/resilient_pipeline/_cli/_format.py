"""How records, spans and counts are printed."""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from resilient_pipeline._core import redact

if TYPE_CHECKING:
    from resilient_pipeline.ledger import PartitionRecord

from ._common import _ERROR_WIDTH

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
