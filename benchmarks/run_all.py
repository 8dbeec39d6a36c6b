"""Run every benchmark and print one table: capability, goal, measured ratio, met or not.

Run:  .venv/bin/python benchmarks/run_all.py [--quick] [--only bench_limits,bench_breaker]
                                            [--write-docs]

Each ``benchmarks/bench_*.py`` module runs in its own child interpreter (one
process tree; a module's peers, logging settings and garbage never leak into
the next one's timings). A module takes part by defining ``goals(quick: bool)
-> list[_harness.Goal]``; one that does not is listed as "no goals() yet".
Every figure is a ratio of ours to a peer measured in the same rounds: the
median over interleaved rounds, with the smallest and largest round printed
as the spread. The machine is shared and noisy, so absolute numbers are never
the goal.

``--write-docs`` rewrites the part of ``docs/benchmarks.md`` between
``<!-- run_all:begin -->`` and ``<!-- run_all:end -->`` with the table, the
machine, the versions and the date. With ``--only``, only those modules' rows
are replaced: the others are kept from the docs, and the region says which
earlier run they come from.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- run_all:begin -->", "<!-- run_all:end -->"
MARKER = "@@run_all-goals@@"
KEPT, EARLIER = "- rows of ", ": from the earlier run of "
CHILD_TIMEOUT = 1_800  # seconds for one module
PACKAGES = (
    "resilient-pipeline",
    "tenacity",
    "stamina",
    "backoff",
    "pybreaker",
    "circuitbreaker",
    "purgatory",
    "aiobreaker",
    "aiolimiter",
    "pyrate-limiter",
    "limits",
    "pydantic",
    "attrs",
    "anyio",
    "psycopg",
    "redis",
)


def modules() -> list[str]:
    """Every benchmark module, in name order."""
    return sorted(path.stem for path in HERE.glob("bench_*.py"))


# ---------------------------------------------------------------------- child
def child(name: str, quick: bool) -> None:
    """Import one module, measure its goals, print them as JSON after a marker line."""
    sys.path.insert(0, str(HERE))
    module = importlib.import_module(name)
    measure = getattr(module, "goals", None)
    if measure is None:
        payload: dict[str, Any] = {"status": "no goals() yet", "goals": []}
    else:
        payload = {"status": "ok", "goals": [goal.to_dict() for goal in measure(quick)]}
    print(MARKER)
    print(json.dumps(payload))


def run_child(name: str, quick: bool) -> dict[str, Any]:
    """One module's goals, measured in a child interpreter; errors reported, never raised."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    if quick:
        command.append("--quick")
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return {"status": f"error: no answer within {CHILD_TIMEOUT} s", "goals": []}
    seconds = time.monotonic() - started
    if done.returncode != 0 or MARKER not in done.stdout:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"status": f"error: {last}", "goals": [], "seconds": seconds}
    payload: dict[str, Any] = json.loads(done.stdout.split(MARKER, 1)[1])
    payload["seconds"] = seconds
    return payload


# --------------------------------------------------------------------- report
def _met(goal: dict[str, Any]) -> str:
    ratio = goal["ratio"]
    if ratio is None:
        return "not measured"
    ok = ratio >= goal["limit"] if goal["higher_is_better"] else ratio <= goal["limit"]
    return "**met**" if ok else "**not met**"


def _ratio(goal: dict[str, Any]) -> str:
    if goal["ratio"] is None:
        return "-"
    return f"{goal['ratio']:.2f}x ({goal['low']:.2f}-{goal['high']:.2f}, {goal['rounds']} rounds)"


def _rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """``(module, table line)`` for every goal measured in this run."""
    rows = []
    for name, result in results.items():
        for goal in result["goals"]:
            note = f" ({goal['note']})" if goal.get("note") else ""
            rows.append(
                (
                    name,
                    f"| `{name}` | {goal['capability']} | {goal['goal']} "
                    f"| {_ratio(goal)}{note} | {_met(goal)} |",
                )
            )
    return rows


def render(results: dict[str, dict[str, Any]], kept: Sequence[tuple[str, str]] = ()) -> str:
    """The one Markdown table of every goal, then the modules without goals or with errors.

    ``kept`` holds rows of modules not run this time (``--only``), taken from
    the docs as they were; they are merged in module order.
    """
    rows = sorted([*_rows(results), *kept], key=lambda row: row[0])
    lines = [
        "| benchmark | capability | goal | measured ratio (spread) | met |",
        "| --- | --- | --- | --- | --- |",
        *(line for _, line in rows),
    ]
    met = sum(1 for _, line in rows if line.endswith("| **met** |"))
    lines += ["", f"{met} of {len(rows)} goals met."]
    others = [
        f"- `{name}`: {result['status']}"
        for name, result in results.items()
        if result["status"] != "ok"
    ]
    if others:
        lines += ["", *others]
    return "\n".join(lines)


def kept_rows(ran: set[str]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The docs' table rows of modules not in ``ran``, and the run each module's rows are from."""
    text = DOCS.read_text()
    if BEGIN not in text or END not in text:
        return [], {}
    region = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows: list[tuple[str, str]] = []
    origin: dict[str, str] = {}  # module -> the date line of the run that measured it
    date = ""
    for line in region.splitlines():
        if line.startswith("- date: ") and not date:
            date = line.removeprefix("- date: ")
        elif line.startswith(KEPT):  # rows an earlier --only run kept: their own run
            listed, _, when = line.removeprefix(KEPT).partition(EARLIER)
            origin.update(dict.fromkeys(listed.replace("`", "").split(", "), when))
        elif line.startswith("| `bench_"):
            name = line.split("`", 2)[1]
            if name not in ran:
                rows.append((name, line))
    return rows, {name: origin.get(name, date) for name, _ in rows}


def provenance(origin: dict[str, str]) -> list[str]:
    """One line per earlier run, naming the modules whose rows it measured."""
    runs: dict[str, list[str]] = {}
    for name, when in sorted(origin.items()):
        runs.setdefault(when, []).append(f"`{name}`")
    return [f"{KEPT}{', '.join(names)}{EARLIER}{when}" for when, names in runs.items()]


def _cpu() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _commit() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return "unknown"


def _servers() -> str:
    """SQLite's version, and PostgreSQL's and Redis's where the test servers answer."""
    import sqlite3

    found = [f"SQLite {sqlite3.sqlite_version}"]
    with contextlib.suppress(Exception):  # no driver, no server: left out
        import psycopg

        dsn = "postgresql://postgres@127.0.0.1:5432/test"
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            found.append(f"PostgreSQL {row[0].split()[0] if row else '?'}")
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
        try:
            found.append(f"Redis {client.info('server')['redis_version']}")
        finally:
            client.close()
    return ", ".join(found)


def environment(load_before: tuple[float, ...], quick: bool) -> str:
    """The machine, the versions and the date, for the docs."""
    versions = []
    for package in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{package} {importlib.metadata.version(package)}")
    load_after = os.getloadavg()
    return "\n".join(
        [
            f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
            f"commit {_commit()}{', --quick' if quick else ''}",
            f"- machine: {platform.platform()}, {os.cpu_count()} CPUs ({_cpu()}), "
            f"load average {load_before[0]:.1f} before and {load_after[0]:.1f} after",
            f"- Python {platform.python_version()} ({platform.python_implementation()})",
            f"- versions: {', '.join(versions)}",
            f"- servers: {_servers()}",
        ]
    )


def write_docs(section: str) -> None:
    text = DOCS.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOCS} has no {BEGIN} ... {END} region to rewrite")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS.write_text(f"{head}{BEGIN}\n{section}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds")
    parser.add_argument("--only", help="comma-separated module names (bench_limits,...)")
    parser.add_argument("--write-docs", action="store_true", help="rewrite docs/benchmarks.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.quick)
        return
    names = modules()
    if args.only:
        wanted = [name.strip() for name in args.only.split(",")]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"no such benchmark module: {', '.join(unknown)}")
        names = [name for name in names if name in wanted]
    load_before = os.getloadavg()
    results = {}
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run_child(name, args.quick)
        print(f"  {results[name]['status']}", file=sys.stderr, flush=True)
    kept: list[tuple[str, str]] = []
    origin: dict[str, str] = {}
    if args.only and args.write_docs:  # the other modules' rows stay as they were
        kept, origin = kept_rows(set(names))
    table = render(results, kept)
    print(table)
    if args.write_docs:
        lines = [environment(load_before, args.quick), *provenance(origin)]
        write_docs("\n".join(lines) + f"\n\n{table}")
        print(f"\nrewrote the run_all region of {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    main()
