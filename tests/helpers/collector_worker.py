"""The KPI collector as a worker process, for the kill and multi-worker proofs (run as a script).

It runs :func:`examples.kpi_collector.pipeline.run` (what ``collect`` runs) with
the tokens from ``KPI_META_TOKEN`` / ``KPI_GOOGLE_TOKEN`` and test-sized
settings, and writes one JSON line per collected partition and one per fetch to
``--log`` (wall-clock times, this process's id) so a test can tell which
process collected what, and when. With ``--wait-for-go`` it imports
everything first, then waits for a line on stdin: a test starts the next
worker while the current one runs, and arms its kill plan before saying go.
The exit code is the run's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import threading
import time
from typing import IO, Any

from examples.kpi_collector.pipeline import run
from examples.kpi_collector.platforms.base import Fetcher
from examples.kpi_collector.settings import Settings, tokens_from_env
from resilient_pipeline.events import Event, subscribe
from resilient_pipeline.ledger import PartitionCollected
from resilient_pipeline.storage import PostgresStore, SQLiteStore, Store

_writing = threading.Lock()


def settings_from(args: argparse.Namespace) -> Settings:
    """The run's settings: small, no real waiting between retries, a short lease."""
    return Settings(
        db=args.db,
        base_url=args.base_url,
        tokens=tokens_from_env(("meta_ads", "google_ads")),
        clients=tuple(int(c) for c in args.clients.split(",")),
        end=dt.date.fromisoformat(args.end),
        days=args.days,
        lookback=args.lookback,
        concurrency=args.workers,
        retry_delay=0.0,
        fetch_timeout=args.fetch_timeout,
        rate_limit=1000.0,
        adaptive_quota=False,
        breaker_open=0.2,
        lease=args.lease,
        wait_for_others=args.wait_for_others,
        max_attempts=args.max_attempts,
        progress=False,
    )


def open_store(db: str, schema: str | None) -> Store:
    """PostgreSQL (in ``schema``) for a DSN, else a SQLite file."""
    if db.startswith("postgresql://"):
        return PostgresStore(db, schema=schema, max_connections=8)
    return SQLiteStore(db)


def log_collected(out: IO[str]) -> Any:
    """An event handler writing one JSON line per collected partition."""
    pid = os.getpid()

    def handler(event: Event) -> None:
        if not isinstance(event, PartitionCollected):
            return
        line = {
            "pid": pid,
            "partition": event.partition,
            "outcome": event.outcome,
            "t": time.time(),
            "duration": event.duration,
        }
        with _writing:
            out.write(json.dumps(line) + "\n")
            out.flush()

    return handler


def log_fetches(out: IO[str]) -> None:
    """Write one JSON line per ``fetch_unit`` call: its partition, start and end (wall clock)."""
    pid = os.getpid()
    fetch_unit = Fetcher.fetch_unit

    async def logged(self: Fetcher, partition: Any) -> Any:
        start = time.time()
        try:
            return await fetch_unit(self, partition)
        finally:
            line = {"pid": pid, "fetched": str(partition), "start": start, "end": time.time()}
            with _writing:
                out.write(json.dumps(line) + "\n")
                out.flush()

    Fetcher.fetch_unit = logged  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--schema", default=None)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--clients", required=True, help="comma-separated ids")
    parser.add_argument("--end", required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--lookback", type=int, default=1)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--fetch-timeout", type=float, default=0.5)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--wait-for-others", type=float, default=20.0)
    parser.add_argument("--max-attempts", type=int, default=5)
    parser.add_argument("--log", required=True, help="a file for the JSON lines")
    parser.add_argument("--wait-for-go", action="store_true")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    if args.wait_for_go and not sys.stdin.readline():
        return 0  # the test went away without saying go
    with open(args.log, "a", encoding="utf-8") as out, subscribe(log_collected(out)):
        log_fetches(out)
        store = open_store(args.db, args.schema)
        try:
            summary = run(settings, store=store)
        finally:
            store.close()
        with _writing:
            failed = [] if summary.checks is None else summary.checks.failed
            end = {
                "pid": os.getpid(),
                "exit": summary.exit_code,
                "failed_checks": [f"{r.name}: {r.message}" for r in failed],
                "alerts": [f"{a.severity}: {a.title}" for a in summary.alerts],
            }
            out.write(json.dumps(end) + "\n")
    return summary.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
