"""Alert deduplication in the database, through the idempotency-key record (``once``).

Every process (and machine) writing to the same store shares it, so a
monitor that runs on three schedulers still pages once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from resilient_pipeline.storage import Store, unit_of_work

__all__ = ["StoreAlertLog"]


@attrs.define(eq=False)
class StoreAlertLog:
    """An :class:`~resilient_pipeline.alerting.AlertLog` kept in a store with ``Transaction.once``.

    The key claimed is ``"<alert key>@<window number>"`` (``now // window``),
    and the alert is delivered *inside* that unit of work: a delivery that
    fails rolls the claim back, so the alert is sent again next time, and a
    concurrent duplicate on PostgreSQL waits for the first and is skipped.
    Windows are fixed buckets: two identical alerts either side of a bucket
    boundary are both sent.

    On SQLite the unit of work holds the write lock while notifiers run; keep
    their retry deadlines short (the defaults allow 2 minutes) or use
    PostgreSQL when backfills write concurrently.

    Examples:
        >>> from resilient_pipeline import Alert, Alerter, SQLiteStore
        >>> from resilient_pipeline.testing import MemoryNotifier
        >>> store, pager = SQLiteStore(":memory:"), MemoryNotifier()
        >>> alerter = Alerter([pager], alert_log=StoreAlertLog(store))
        >>> [alerter.send(Alert(severity="error", title="late")).status for _ in range(2)]
        ['sent', 'duplicate']
        >>> store.close()
    """

    store: Store

    def deliver_once(
        self, key: str, *, window: float, now: float, deliver: Callable[[], None]
    ) -> bool:
        """Run ``deliver`` unless ``key`` was claimed in the current window."""
        if window <= 0:
            deliver()
            return True
        claim = f"{key}@{math.floor(now / window)}"
        with unit_of_work(self.store, name="alert") as tx:
            if not tx.once(claim):
                return False
            deliver()
        return True
