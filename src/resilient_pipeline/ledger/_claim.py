"""A claim: find the next claimable partitions and lease them, in a transaction given.

What :meth:`PartitionLedger.claim_many` and :func:`backfill` run. Claimable,
in order, one index range scan per group: ``pending``; ``failed`` in
another run; ``running`` with an expired lease; with ``include_exhausted``,
``exhausted``; ``succeeded`` partitions of the look-back periods nobody holds.

PostgreSQL finds and leases each group in one ``UPDATE ... RETURNING`` (the
former status and owner come from the locked rows), and after a success the
success and the claim of pending work are one statement. SQLite finds them
with a ``SELECT`` and leases them with an ``UPDATE`` of the rows found: its
``RETURNING`` would show only new values, and a one-statement ``UPDATE ...
WHERE rowid IN (SELECT ...) RETURNING`` of unheld pending rows measured
slower than the two statements (49 vs 35 us, SQLite 3.40).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from resilient_pipeline.exceptions import LeaseLostError, StoreError
from resilient_pipeline.storage import Transaction

from . import _sql as q
from ._records import Claimed, Partition
from ._states import normalize_status

if TYPE_CHECKING:
    from ._ledger import PartitionLedger, _Success

__all__ = ["claim"]


def _period_key(row: tuple[Any, ...]) -> tuple[str, str]:
    """A claimed row's (period, key): claims are taken in that order."""
    return (row[1], row[0])


def claim(
    ledger: PartitionLedger,
    tx: Transaction,
    source: str,
    lo: str,
    hi: str,
    run_id: str,
    limit: int,
    keys: Iterable[object] | None,
    periods: Iterable[object] | None,
    include_exhausted: bool,
    recheck: list[str] | None,
    after: _Success | None = None,
    commit: bool = False,
) -> list[Claimed]:
    """Lease up to ``limit`` claimable partitions in ``tx``; record the success ``after`` first.

    ``commit``: nothing else follows in ``tx``, so on PostgreSQL the success
    and the claim of pending work may go with ``COMMIT`` in one round trip.
    When they did (``tx.committed``), only pending partitions were looked
    for: fewer than ``limit`` claimed means the other groups are still to
    try, in a transaction of their own.
    """
    now = ledger._now()
    condition, only_params = ledger._only(tx, keys, periods)
    leased = tx.dialect == "postgres"  # every group found and leased by one statement
    branches: list[tuple[str, tuple[object, ...]]] = [
        (q.CLAIM_PENDING, ()),
        (q.CLAIM_FAILED, (run_id,)),
        (q.CLAIM_EXPIRED, (now,)),
    ]
    if include_exhausted:
        branches += [(q.CLAIM_EXHAUSTED, (name, run_id)) for name in ("exhausted", "quarantined")]
    if recheck:
        member, member_param = q.listed("period", recheck, tx.dialect, "{p}")
        branches.append((q.CLAIM_RECHECK.replace("{recheck}", member), (run_id, now, member_param)))
    rows: list[tuple[Any, ...]] = []
    lease = (ledger.worker_id, now + ledger.lease, run_id, now)
    if after is not None and not leased:
        ledger._record(tx, after)
        after = None
    for claimable, params in branches:
        template = q.CLAIM_RETURNING if leased else q.CLAIMABLE
        if after is not None:  # the first branch, pending work: never the succeeded row
            template = q.SUCCEED_THEN_CLAIM
        statement = ledger._sql(
            tx,
            template.replace("{claimable}", claimable),
            limit=str(limit - len(rows)),
            only=condition,
        )
        found = (source, *params, lo, hi, *only_params)
        if after is not None:
            bound = (*after.params, ledger.worker_id, *lease, *found)
            # A restatement's row follows the success: then the commit cannot come with it.
            last = commit and after.outcome != "restated"
            try:
                if last:
                    result = tx.fetchall_and_commit(statement, bound)
                else:
                    result = tx.fetchall(statement, bound)
            except StoreError as exc:
                if exc.sqlstate != "22P02" or q.LEASE_LOST not in str(exc):
                    raise
                partition = after.partition.as_tuple()
                raise LeaseLostError(
                    f"{partition} was re-claimed by another worker", partition=partition
                ) from exc
            ledger._check_still_ours(tx, after, int(result[0][0]))
            # one row even when nothing was claimed: the success's count, NULLs
            taken = [row[1:] for row in result if row[1] is not None]
            rows += sorted(taken, key=_period_key)
            after = None
            if tx.committed:
                break
        elif leased:
            rows += sorted(tx.fetchall(statement, (*lease, *found)), key=_period_key)
        else:
            rows += tx.fetchall(statement, found)
        if len(rows) >= limit:
            break
    claimed = [
        Claimed(
            partition=Partition(source, k, p),
            status=normalize_status(status),
            fingerprint=fp,
            row_count=n,
            attempts=int(attempts),
            recovered=owner is not None,
            measure=measure,
        )
        for k, p, status, fp, n, attempts, owner, measure in rows
    ]
    if not leased and claimed:
        leases = [(*lease, *c.partition.as_tuple()) for c in claimed]
        if len(leases) == 1:  # a backfill's claim: execute() costs less than executemany()
            tx.execute(ledger._sql(tx, q.CLAIM), leases[0])
        else:
            tx.executemany(ledger._sql(tx, q.CLAIM), leases)
    return claimed
