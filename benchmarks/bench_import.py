"""Import time of resilient_pipeline beside tenacity and stamina, each in fresh interpreters.

Run:  .venv/bin/python benchmarks/bench_import.py [--why]

Every statement runs in a new ``python -c`` child (same interpreter and
environment as this script) that times only the statement
(``time.perf_counter`` around it, so interpreter start-up is not counted and a
lazy ``from resilient_pipeline import name`` includes the import it triggers).
Rounds interleave ours and the peers', in a rotating order; the best of
``ROUNDS`` is reported, after one uncounted round that warms the bytecode caches.
The goal: ``import resilient_pipeline`` and ``from resilient_pipeline import
retry_with_backoff`` each cost no more than ``import tenacity``; ``goals()``
(collected by ``run_all.py``) reports the median of the per-round ratios.

``--why`` adds, for each of our statements, where the time goes according to
``python -X importtime`` (best of ``WHY_ROUNDS`` runs): our own modules per
package, and every third-party or stdlib import with the module of ours that
pulled it in.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Goal, ratio_goal

ROUNDS = 15
WHY_ROUNDS = 7
BASELINE = "import tenacity"
GOAL = ("import resilient_pipeline", "from resilient_pipeline import retry_with_backoff")
STATEMENTS = (
    *GOAL,
    BASELINE,
    "import stamina",
    "from resilient_pipeline import CircuitBreaker",
    "import resilient_pipeline.storage",
)

# Runs in the child: time the statement alone, then report what it loaded.
CHILD = """\
import sys, time
before = set(sys.modules)
start = time.perf_counter()
exec(sys.argv[1])
elapsed = time.perf_counter() - start
new = set(sys.modules) - before
ours = [m for m in new if m == "resilient_pipeline" or m.startswith("resilient_pipeline.")]
print(elapsed, len(ours), len(new))
"""


# An installed package has its bytecode cached; a child told not to write .pyc
# files (PYTHONDONTWRITEBYTECODE, set in some CI and sandbox shells) would
# compile our sources on every run while the peers' site-packages come cached.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(statement: str) -> tuple[float, int, int]:
    """Seconds the statement took in a fresh interpreter, our modules and all modules it loaded."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, statement],
        check=True,
        capture_output=True,
        text=True,
        env=CHILD_ENV,
    ).stdout.split()
    return float(out[0]), int(out[1]), int(out[2])


def rounds_of(
    rounds: int, statements: tuple[str, ...] = STATEMENTS
) -> tuple[dict[str, list[float]], dict[str, tuple[int, int]]]:
    """Every round's seconds per statement (order rotating), and the modules each loaded."""
    times: dict[str, list[float]] = {statement: [] for statement in statements}
    loaded: dict[str, tuple[int, int]] = {}
    for statement in statements:  # warm-up: writes any missing .pyc files
        measure(statement)
    for round_ in range(rounds):
        shift = round_ % len(statements)
        for statement in statements[shift:] + statements[:shift]:
            seconds, ours, modules = measure(statement)
            times[statement].append(seconds)
            loaded[statement] = (ours, modules)
    return times, loaded


def best_of(rounds: int) -> dict[str, tuple[float, int, int]]:
    """Best time per statement over interleaved rounds, each round in a rotated order."""
    times, loaded = rounds_of(rounds)
    return {s: (min(t), *loaded[s]) for s, t in times.items()}


def goals(quick: bool) -> list[Goal]:
    """Each GOAL statement against ``import tenacity``: median of per-round ratios."""
    times, _ = rounds_of(5 if quick else ROUNDS, (*GOAL, BASELINE))
    return [
        ratio_goal(
            "import time",
            f"`{statement}` <= `{BASELINE}`",
            times,
            ours=statement,
            peer=BASELINE,
            limit=1.0,
        )
        for statement in GOAL
    ]


def table(rows: dict[str, tuple[float, int, int]]) -> str:
    """A Markdown table: best ms, ratio to the baseline, modules loaded."""
    base = rows[BASELINE][0]
    width = max(len(s) for s in rows) + 2
    lines = [
        f"### Import time, best of {ROUNDS} fresh interpreters",
        "",
        f"| {'statement'.ljust(width)} |    ms | x {BASELINE} | our modules | all modules |",
        f"| {'-' * width} | ----: | {'-' * (len(BASELINE) + 2)}: | ----------: | ----------: |",
    ]
    for statement, (seconds, ours, modules) in rows.items():
        ratio = f"{seconds / base:.2f}".rjust(len(BASELINE) + 2)
        lines.append(
            f"| {f'`{statement}`'.ljust(width)} | {seconds * 1e3:5.1f} | {ratio} "
            f"| {ours:11d} | {modules:11d} |"
        )
    return "\n".join(lines)


def verdict(rows: dict[str, tuple[float, int, int]]) -> str:
    base = rows[BASELINE][0]
    lines = []
    for statement in GOAL:
        ratio = rows[statement][0] / base
        lines.append(f"goal `{statement}` <= `{BASELINE}`: {ratio:.2f}x")
    met = all(rows[s][0] <= base for s in GOAL)
    lines.append(f"goal {'met' if met else 'NOT met'}")
    return "\n".join(lines)


IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
OURS = "resilient_pipeline"


def importtime(statement: str) -> list[tuple[str, str, int, int]]:
    """``(importer, module, self us, cumulative us)`` for every module the statement imported."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        check=True,
        capture_output=True,
        text=True,
        env=CHILD_ENV,
    ).stderr
    # -X importtime prints each module after its children, indented one level deeper.
    pending: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    edges = []
    for self_us, cumulative_us, indent, module in IMPORTTIME.findall(err):
        level = len(indent) // 2
        for child, child_self, child_cumulative in pending.pop(level + 1, []):
            edges.append((module, child, child_self, child_cumulative))
        pending[level].append((module, int(self_us), int(cumulative_us)))
    edges.extend(("(statement)", *top) for top in pending.pop(0, []))
    return edges


def why(statement: str) -> str:
    """Where the statement's time goes, from ``-X importtime``, best of several runs.

    Our own modules are summed per package (self time); every other module is
    charged, with everything it imported in turn, to the module of ours (or
    the statement) that imported it first.
    """
    startup = {module for _, module, _, _ in importtime("pass")}
    ours: dict[str, int] = {}
    foreign: dict[tuple[str, str], int] = {}
    for _ in range(WHY_ROUNDS):
        for importer, module, self_us, cumulative_us in importtime(statement):
            if module in startup:
                continue
            if module.split(".")[0] == OURS:
                ours[module] = min(ours.get(module, 1 << 62), self_us)
            elif importer.split(".")[0] == OURS or importer == "(statement)":
                key = (importer, module)
                foreign[key] = min(foreign.get(key, 1 << 62), cumulative_us)
    packages: dict[str, int] = defaultdict(int)
    for module, self_us in ours.items():
        packages[".".join(module.split(".")[:2])] += self_us
    lines = [f"`{statement}`, best of {WHY_ROUNDS} runs of -X importtime (ms)"]
    lines.append("  our modules' own code, per package:")
    for package, self_us in sorted(packages.items(), key=lambda item: -item[1]):
        lines.append(f"    {package:<56} {self_us / 1e3:6.1f}")
    lines.append("  other modules with all they import, charged to the first importer:")
    for (importer, module), cumulative_us in sorted(foreign.items(), key=lambda item: -item[1]):
        if cumulative_us >= 500:
            lines.append(f"    {f'{importer} -> {module}':<56} {cumulative_us / 1e3:6.1f}")
    return "\n".join(lines)


def run() -> str:
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("resilient-pipeline", "tenacity", "stamina")
    )
    header = f"Python {platform.python_version()}; {versions}"
    rows = best_of(ROUNDS)
    sections = [header, table(rows), verdict(rows)]
    if "--why" in sys.argv:
        sections.extend(why(statement) for statement in GOAL)
    return "\n\n".join(sections)


if __name__ == "__main__":
    print(run())
