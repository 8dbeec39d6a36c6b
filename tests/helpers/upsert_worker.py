"""An upsert worker for the multi-process PostgreSQL test (started with multiprocessing's spawn).

Each worker upserts its own overlapping share of the keys, shuffled and split
into batches of random sizes (both write paths), through four phases that
start together at a barrier. It upserts without retrying, so a deadlock
would surface, and reports what each phase's results added up to.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from resilient_pipeline import PostgresStore, idempotent_upsert

PHASES = ("insert", "same", "overwrite", "versioned")
TABLE_DDL = "(id integer PRIMARY KEY, val text NOT NULL, version integer)"


def rows_for(phase: str, worker: int, keys: Sequence[int]) -> list[dict[str, Any]]:
    """What ``worker`` writes in ``phase``.

    insert / same: one value per key, the same in every worker;
    overwrite: a value only this worker writes (no version);
    versioned: a value and a version only this worker writes.
    """
    if phase in ("insert", "same"):
        return [{"id": k, "val": f"v{k}", "version": 0} for k in keys]
    if phase == "overwrite":
        return [{"id": k, "val": f"o{worker}"} for k in keys]
    return [{"id": k, "val": f"w{worker}", "version": worker + 1} for k in keys]


def batches(keys: list[int], rng: random.Random, largest: int) -> Iterator[list[int]]:
    """``keys`` in random order, cut into batches of 1 to ``largest`` keys."""
    order = list(keys)
    rng.shuffle(order)
    while order:
        size = rng.randint(1, largest)
        yield order[:size]
        del order[:size]


def work(
    dsn: str,
    schema: str,
    worker: int,
    keys: list[int],
    seed: int,
    copy_threshold: int,
    barrier: Any,
    results: Any,
    phases: Sequence[str] = PHASES,
    merge: bool = False,
) -> None:
    """Run every phase; put ``(worker, phase, counts, inserted keys, updated keys)`` per phase.

    With ``merge``, every batch is one PostgreSQL's ``MERGE`` can take (no
    ``version``, no ``returning``): only the counts are reported.
    """
    rng = random.Random(seed)
    store = PostgresStore(dsn, schema=schema, copy_threshold=copy_threshold)
    try:
        for phase in phases:
            barrier.wait(timeout=60)
            counts = {"inserted": 0, "updated": 0, "unchanged": 0, "stale": 0}
            inserted: list[int] = []
            updated: list[int] = []
            for batch in batches(keys, rng, largest=3 * copy_threshold):
                result = idempotent_upsert(
                    store,
                    "t",
                    rows_for(phase, worker, batch),
                    key="id",
                    version=None if merge or phase == "overwrite" else "version",
                    returning=not merge,
                )
                for name in counts:
                    counts[name] += getattr(result, name)
                inserted += [k for (k,) in result.inserted_keys]
                updated += [k for (k,) in result.updated_keys]
            results.put((worker, phase, counts, inserted, updated))
    except BaseException as exc:
        results.put((worker, "error", f"{type(exc).__name__}: {exc}", [], []))
        barrier.abort()
        raise
    finally:
        store.close()
