"""Feature-flag evaluation: ours against a bare dict lookup and the OpenFeature SDK.

Run: .venv/bin/python benchmarks/bench_flags.py

Goal: a native ``Flags.enabled(name, key=...)`` costs < 1 us. The SDK rows
show what moving to OpenFeature costs per evaluation: its in-memory provider
(a static value, no bucketing at all) and the SDK serving our provider.
"""

from __future__ import annotations

import logging
import statistics
import sys
import uuid
from pathlib import Path

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from resilient_pipeline.events import subscribe
from resilient_pipeline.flags import Flags, FlagsProvider, MemorySource

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Goal, interleaved, ns_per_call, ratio_goal, table

logging.disable(logging.CRITICAL)

N = 200_000
NAME = "new_conversions_endpoint"
BASELINE = "bare dict lookup"
GOAL_ROW = "Flags.enabled, str key (10 % rollout)"


def run() -> str:
    """Time each way of asking "is the flag on for this client?"; a Markdown table."""
    flags = Flags([MemorySource({NAME: "10%", "everyone": "on"})])
    plain = {NAME: True}
    key, int_key = "client-42", 42
    fresh = iter([f"client-{i}" for i in range(N * 6)])  # keys never seen: no bucket cache

    domain = f"bench-{uuid.uuid4().hex}"
    api.set_provider(
        InMemoryProvider({NAME: InMemoryFlag("on", {"on": True, "off": False})}),
        domain=f"{domain}-memory",
    )
    api.set_provider(FlagsProvider(flags), domain=f"{domain}-ours")
    memory_client = api.get_client(f"{domain}-memory")
    our_client = api.get_client(f"{domain}-ours")
    context = EvaluationContext(targeting_key=key)

    enabled = flags.enabled
    rows = {
        BASELINE: ns_per_call(lambda: plain.get(NAME, False), number=N),
        GOAL_ROW: ns_per_call(lambda: enabled(NAME, key=key), number=N),
        "Flags.enabled, int key": ns_per_call(lambda: enabled(NAME, key=int_key), number=N),
        "Flags.enabled, a new key each call": ns_per_call(
            lambda: enabled(NAME, key=next(fresh)), number=N
        ),
        "Flags.enabled, no key (100 %)": ns_per_call(lambda: enabled("everyone"), number=N),
    }
    with subscribe(lambda event: None):
        rows["Flags.enabled, str key, a subscriber listening"] = ns_per_call(
            lambda: enabled(NAME, key=key), number=N
        )
    rows["OpenFeature SDK, InMemoryProvider"] = ns_per_call(
        lambda: memory_client.get_boolean_value(NAME, False, context), number=N // 20
    )
    rows["OpenFeature SDK, FlagsProvider"] = ns_per_call(
        lambda: our_client.get_boolean_value(NAME, False, context), number=N // 20
    )
    api.clear_providers()

    verdict = "met" if rows[GOAL_ROW] < 1_000 else "NOT met"
    return "\n\n".join(
        [
            table("One flag evaluation", rows, baseline=BASELINE),
            f"Goal: {GOAL_ROW} < 1000 ns: **{verdict}** ({rows[GOAL_ROW]:.0f} ns).",
        ]
    )


def goals(quick: bool) -> list[Goal]:
    """The flag goal, for ``run_all.py``: < 1 us, as a ratio to a bare dict lookup.

    The limit is 1,000 ns over the dict lookup's median in the same rounds,
    so the verdict is the absolute goal's; the ratio and spread are the
    figures that do not move with the machine.
    """
    flags = Flags([MemorySource({NAME: "10%"})])
    plain, key, enabled = {NAME: True}, "client-42", flags.enabled
    samples = interleaved(
        {
            BASELINE: lambda: plain.get(NAME, False),
            GOAL_ROW: lambda: enabled(NAME, key=key),
        },
        number=N // 4 if quick else N,
        rounds=5 if quick else 7,
    )
    base, ours = statistics.median(samples[BASELINE]), statistics.median(samples[GOAL_ROW])
    return [
        ratio_goal(
            "feature flag evaluation, a key seen before",
            "< 1 us: <= 1,000 ns / a bare dict lookup in the same rounds",
            samples,
            ours=GOAL_ROW,
            peer=BASELINE,
            limit=1_000 / base,
            note=f"{ours:.0f} ns on this run; limit {1_000 / base:.1f}x",
        )
    ]


if __name__ == "__main__":
    print(run())
