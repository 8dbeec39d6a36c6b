"""Run the KPI collector end to end against the local flaky API.

    python -m examples.kpi_collector [--db kpi.sqlite3 | --db postgresql://...] [--days 3]

1. A daily run collects every (client, day) partition. The API throttles,
   errors, hangs up, sends campaigns without conversions, one illogical row,
   and one client's account is down for the whole run.
2. The checks find the missing client and alert (ERROR in the log).
3. The account recovers; the next run finds the gaps in the ledger and
   backfills them. The platform fixes its report; the quarantined row is
   fetched again, passes validation and is written. The checks pass.
   Running the command again collects nothing: every partition already
   succeeded.

Exit code: 0 when the final checks pass, else the check report's exit code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence

import anyio

from examples.kpi_collector.collector import Collector, open_store, token_from_env
from examples.kpi_collector.fake_api import Faults, serve
from resilient_pipeline.storage import Store

CLIENTS = [f"{n:02d}" for n in range(1, 17)]  # the seed's 16 clients


def demo_faults(days: Sequence[dt.date]) -> Faults:
    """What goes wrong in the demo's first run."""
    return Faults(
        throttle_first={"03"},
        error_first={"05", "11"},
        drop_first={"08"},
        empty_conversions_first={"07"},
        always_failing={"12"},
        illogical_rows={("09", days[0].isoformat())},
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.kpi_collector")
    parser.add_argument("--db", default="kpi.sqlite3", help="SQLite file or postgresql:// DSN")
    parser.add_argument("--days", type=int, default=3, help="days to collect, ending yesterday")
    parser.add_argument("--end", type=dt.date.fromisoformat, default=None, help="last day")
    return parser.parse_args(argv)


def run(store: Store, days: Sequence[dt.date]) -> int:
    """Collect, check, recover, backfill, replay, check again; return the exit code."""
    log = logging.getLogger("kpi_collector")
    token = token_from_env()
    faults = demo_faults(days)
    start, end = days[0], days[-1]
    with serve(faults, token=token) as api:
        collector = Collector(store, base_url=api.base_url, token=token)
        log.info("round 1: collecting %d clients x %d days", len(CLIENTS), len(days))
        first = anyio.run(collector.collect, CLIENTS, start, end)
        log.info("round 1: %d collected, %d failed", len(first.collected), len(first.failed))
        report = collector.check(CLIENTS, start, end)
        log.info("checks after round 1: exit code %d", int(report.exit_code))

        faults.always_failing.clear()  # the account comes back
        log.info("round 2: the upstream recovered; backfilling the ledger's gaps")
        second = anyio.run(collector.collect, CLIENTS, start, end)
        log.info("round 2: %d collected, %d failed", len(second.collected), len(second.failed))

        faults.illogical_rows.clear()  # the platform fixed its report
        replayed = collector.replay_quarantine()
        log.info(
            "quarantine replayed: %d row(s) written, %d still invalid",
            len(replayed.replayed),
            len(replayed.still_invalid),
        )
        final = collector.check(CLIENTS, start, end)
    log.info(
        "final checks: exit code %d (%d requests served)",
        int(final.exit_code),
        sum(api.requests.values()),
    )
    return int(final.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, set up logging, run the demo on the chosen database."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(levelname)-8s %(name)-32s %(message)s",
        force=True,
    )
    for noisy in ("httpx", "resilient_pipeline.upsert"):  # one line per request / per table
        logging.getLogger(noisy).setLevel(logging.WARNING)
    end = args.end or dt.date.today() - dt.timedelta(days=1)
    days = [end - dt.timedelta(days=n) for n in reversed(range(args.days))]
    store = open_store(args.db)
    try:
        return run(store, days)
    finally:
        store.close()


if __name__ == "__main__":
    raise SystemExit(main())
