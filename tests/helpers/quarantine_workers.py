"""Quarantine worker processes for the multi-process tests (run as a script).

``append PATH PREFIX N``      put N records, one write each, ids ``PREFIX-0`` ...
``compact PATH STOP``         print ``ready`` after the first compaction, then
                              compact again and again until the file STOP exists
``replay DSN SCHEMA``         replay the SQL quarantine on PostgreSQL, writing each
                              row to the ``replayed`` table (no unique key, so a
                              row replayed twice shows); after claiming, print
                              ``claimed N`` and wait for a line on stdin; finally
                              print ``replayed N``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from resilient_pipeline import (
    Field,
    JSONLQuarantine,
    PostgresStore,
    SQLQuarantine,
    Validator,
    replay,
    unit_of_work,
)
from resilient_pipeline.validation import Issue, QuarantineRecord

VALIDATOR = Validator(fields={"n": Field(int)})


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start this script as a worker process, talking over its stdin and stdout (for tests)."""
    return subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def record(record_id: str, n: int, source: str = "api") -> QuarantineRecord:
    """A quarantined row ``{"n": n}`` with one issue."""
    return QuarantineRecord(
        record_id, source, {"n": n}, (Issue("n", "ge", "must be >= 0", n),), 1.0
    )


def append(path: Path, prefix: str, count: int) -> None:
    """Put ``count`` records, one write each, so the compactor can land between any two."""
    sink = JSONLQuarantine(path)
    for i in range(count):
        sink.put([record(f"{prefix}-{i}", i)])


def compact(path: Path, stop: Path) -> None:
    """Compact until told to stop."""
    sink = JSONLQuarantine(path)
    sink.compact()
    print("ready", flush=True)
    while not stop.exists():
        sink.compact()


def replayed_table(store: PostgresStore) -> None:
    """The target table: deliberately without a unique key."""
    with unit_of_work(store) as tx:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {tx.table('replayed')} (n integer, pid integer)")


def replay_once(dsn: str, schema: str) -> None:
    """Replay every quarantined row; pause (inside the transaction) after claiming."""
    store = PostgresStore(dsn, schema=schema)
    sink = SQLQuarantine(store)

    def write(rows: list[dict[str, Any]]) -> None:
        print(f"claimed {len(rows)}", flush=True)
        sys.stdin.readline()  # the test lets us go on
        with unit_of_work(store) as tx:
            tx.executemany(
                f"INSERT INTO {tx.table('replayed')} VALUES ({tx.placeholder}, {tx.placeholder})",
                [(row["n"], os.getpid()) for row in rows],
            )

    result = replay(sink, VALIDATOR, write)
    if not result.replayed:
        print("claimed 0", flush=True)
    print(f"replayed {len(result.replayed)}", flush=True)
    store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["append", "compact", "replay"])
    parser.add_argument("args", nargs="*")
    options = parser.parse_args()
    if options.command == "append":
        append(Path(options.args[0]), options.args[1], int(options.args[2]))
    elif options.command == "compact":
        compact(Path(options.args[0]), Path(options.args[1]))
    else:
        replay_once(options.args[0], options.args[1])
