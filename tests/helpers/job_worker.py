"""One worker of a fleet in its own process: ``run_job`` on a job reference and JSON params.

    python tests/helpers/job_worker.py REF PARAMS_JSON [--limit N] [--wait-for-go]

It imports and builds everything first, prints ``ready``, and with
``--wait-for-go`` waits for a line on stdin (a test starts every worker, then
lets them all go at once). Then it runs the job and prints one JSON line: the
:class:`~resilient_pipeline.engines.WorkResult` and the breaker events this
process saw (``opened``: circuits it opened; ``rejected``: calls refused).
"""

from __future__ import annotations

import argparse
import json
import sys

from resilient_pipeline.breaker import CallRejected, CircuitOpened
from resilient_pipeline.engines import load_job, run_job
from resilient_pipeline.events import Event, subscribe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("ref")
    parser.add_argument("params")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--wait-for-go", action="store_true")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    load_job(args.ref, params)  # imports, tables, clients: ready before the go
    print("ready", flush=True)
    if args.wait_for_go and not sys.stdin.readline():
        return 0  # the test went away without saying go
    seen = {"opened": 0, "rejected": 0}

    def count(event: Event) -> None:
        if isinstance(event, CircuitOpened):
            seen["opened"] += 1
        elif isinstance(event, CallRejected):
            seen["rejected"] += 1

    with subscribe(count):
        result = run_job(args.ref, params=params, limit=args.limit)
    print(json.dumps({"result": result.to_dict(), **seen}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
