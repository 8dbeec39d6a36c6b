"""What collecting one platform takes: its ledger, breakers, quota, fetcher and backfill arguments.

The collector's own run (:mod:`.pipeline`) and a fleet's job (:mod:`.jobs`)
both build it with :func:`build_collection`, so they fetch, validate, write
and quarantine the same way, through the same policies.

With ``settings.redis_url`` the breakers (one per account) and the quota (one
bucket per token) live in Redis, so every process of a fleet respects the
API's quota together and all of them stop calling an account that one of them
found dead. While Redis cannot be reached, each process falls back to its own
breakers and quota (a ``CircuitStoreFailed`` / ``LimitStoreFailed`` event says
so) and uses Redis again when it answers. The shared quota is not adaptive: a
429's ``Retry-After`` is honoured by the retry of the call that got it.

Examples:
    >>> from examples.kpi_collector.settings import Settings
    >>> from examples.kpi_collector.suite import open_store
    >>> store = open_store(":memory:")
    >>> settings = Settings(db=":memory:", tokens={"meta_ads": "t0k3n"}, platforms=("meta_ads",),
    ...                     clients=(1, 2), days=2, lookback=0)
    >>> collection = build_collection(settings, store, "meta_ads", tally=Tally())
    >>> sorted(collection.backfill_options())[:4]
    ['concurrency', 'contract', 'fetch', 'measure']
    >>> store.close()
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import Any

import attrs

from resilient_pipeline import PartitionLedger, RateLimiter, RetryPolicy, SQLQuarantine
from resilient_pipeline.breaker import (
    CircuitBreaker,
    CircuitBreakerRegistry,
    CircuitOpened,
    ConsecutiveFailures,
    HalfOpen,
    OpenDuration,
    RedisBreakerStore,
)
from resilient_pipeline.events import Event
from resilient_pipeline.exceptions import MissingDependencyError
from resilient_pipeline.flags import Flags
from resilient_pipeline.ledger import Partition
from resilient_pipeline.limits import RedisRateLimiter
from resilient_pipeline.retry import RetryScheduled
from resilient_pipeline.storage import Store, Transaction
from resilient_pipeline.validation import CheckedUnit, PartitionQuarantined

from . import repository
from .platforms import PLATFORMS, Fetcher
from .platforms.base import retryable as retryable_call
from .platforms.base import upstream_failed
from .settings import Settings

__all__ = ["Collection", "Tally", "build_collection", "redis_client", "spend"]


@attrs.define
class Tally:
    """One platform's counts, from the events of its own policies (platforms run at once)."""

    counts: dict[str, int] = attrs.Factory(dict)
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def add(self, name: str, n: int = 1) -> None:
        """Count ``n`` more ``name``."""
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def get(self, name: str) -> int:
        """How many ``name`` so far."""
        return self.counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """Every count so far (a fleet job's ``counters``)."""
        with self._lock:
            return dict(self.counts)

    def merge(self, counts: Mapping[str, int]) -> None:
        """Add counts a fleet's workers made."""
        for name, n in counts.items():
            self.add(name, n)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RetryScheduled):
            self.add("retries")
        elif isinstance(event, CircuitOpened):
            self.add("breaker_openings")
        elif isinstance(event, PartitionQuarantined):
            self.add("rows_quarantined", event.rows)


def spend(unit: Any) -> float:
    """The partition's measure for restatement sizes: its spend, in currency units."""
    rows = unit.rows("campaigns") if isinstance(unit, CheckedUnit) else unit.get("campaigns", ())
    return sum(int(row["spend_micros"]) for row in rows) / 1_000_000


def redis_client(url: str) -> Any:
    """A ``redis.Redis`` for ``url`` (the ``redis`` extra); connects on first use."""
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise MissingDependencyError(
            package="redis", extra="redis", feature="Breakers and quotas shared by a fleet"
        ) from exc
    return redis.Redis.from_url(url)


@attrs.frozen
class _Writer:
    """``write`` for backfill: the checked unit into the tables, rows counted."""

    tally: Tally

    def __call__(self, tx: Transaction, partition: Partition, unit: Any) -> None:
        collections = (
            {name: list(rows) for name, rows in unit.collections.items()}
            if isinstance(unit, CheckedUnit)
            else unit
        )
        result = repository.write_unit(tx, partition, collections)
        self.tally.add("rows_inserted", result.inserted)
        self.tally.add("rows_updated", result.updated + result.deleted)


@attrs.frozen(kw_only=True)
class Collection:
    """One platform's collection: what ``backfill`` needs besides the keys and the range.

    Attributes:
        source: The platform's ledger name.
        ledger: The partition ledger (the data's store).
        breakers: One breaker per account (``/readyz`` lists them).
        fetcher: The platform's fetcher (close it with ``aclose``).
        write: ``write(tx, partition, unit)``.
        retry: The partition-level retry (an incomplete unit is asked again at once).
        sink: Where invalid and incomplete-and-exhausted units go.
        concurrency: Partitions in flight at once.
        progress: The progress bar's setting.
        redis: The Redis client of the shared breakers and quota (``None``: in-process).
        owns_redis: :meth:`aclose` closes ``redis`` too.
    """

    source: str
    ledger: PartitionLedger
    breakers: CircuitBreakerRegistry
    fetcher: Fetcher
    write: _Writer
    retry: RetryPolicy
    sink: SQLQuarantine
    concurrency: int
    progress: bool | None
    redis: Any = attrs.field(default=None, repr=False)
    owns_redis: bool = False

    async def aclose(self) -> None:
        """Close the fetcher's HTTP client, and the Redis client if this collection made it."""
        await self.fetcher.aclose()
        if self.owns_redis:
            self.redis.close()

    def backfill_options(self) -> dict[str, Any]:
        """``backfill``'s keyword arguments except the ledger, the keys, the range and lookback."""
        return {
            "source": self.source,
            "fetch": self.fetcher.fetch_unit,
            "write": self.write,
            "concurrency": self.concurrency,
            "policies": (self.retry,),
            "progress": self.progress,
            "contract": PLATFORMS[self.source].contract,
            "quarantine": self.sink,
            "measure": spend,
        }


def build_collection(
    settings: Settings,
    store: Store,
    name: str,
    *,
    tally: Tally,
    sink: SQLQuarantine | None = None,
    flags: Flags | None = None,
    close_when_idle: bool = False,
    redis: Any = None,
) -> Collection:
    """Everything collecting platform ``name`` takes, as ``settings`` says.

    Args:
        settings: The run (its token for ``name`` must be set).
        store: The data's store; the ledger and the quarantine live in it too.
        name: The platform's ledger name.
        tally: Counts the policies' events and the rows written.
        sink: The quarantine (default: a ``SQLQuarantine`` of ``store``).
        flags: Feature flags for the fetcher (``None``: every flag off).
        close_when_idle: The fetcher closes its HTTP client whenever no unit is
            in flight (a job's fetcher, used by one event loop after another).
        redis: A Redis client to share (a worker's, for every job it runs);
            default: one for ``settings.redis_url``, closed by :meth:`Collection.aclose`.
    """
    owns_redis = redis is None and settings.redis_url is not None
    if owns_redis:
        redis = redis_client(str(settings.redis_url))
    token = settings.token(name)
    ledger = PartitionLedger(
        store, max_attempts=settings.max_attempts, lease=settings.lease, on_event=tally
    )
    # One breaker per account, made from this template; a registry, so /readyz lists them.
    breakers = CircuitBreakerRegistry(
        template=CircuitBreaker(
            name=name,
            trip=ConsecutiveFailures(threshold=5),
            open_duration=OpenDuration(seconds=settings.breaker_open),
            half_open=HalfOpen(permits=4),  # several days of one account are in flight
            failure_if=upstream_failed,
            on_event=tally,
            store=None
            if redis is None
            else RedisBreakerStore(redis, prefix=f"{settings.redis_prefix}breaker:"),
        )
    )
    fetcher = PLATFORMS[name].fetcher(
        base_url=settings.base_url,
        token=token,
        timeout=settings.fetch_timeout,
        on_event=tally,
        # Each page is retried on its own (Retry-After honoured, refusals waited out).
        retry=RetryPolicy(
            max_attempts=6,
            base_delay=settings.retry_delay,
            max_delay=max(5.0, settings.retry_delay),
            deadline=60.0,
            retry_if=retryable_call,
            name=f"{name} call",
            on_event=tally,
        ),
        breaker=breakers,
        limiter=_quota(settings, name, token, tally, redis),
        # New code paths per client (the new conversions endpoint).
        flags=flags,
        close_when_idle=close_when_idle,
    )
    # Partition-level retry: an incomplete unit (campaigns without conversions, an empty
    # answer) is asked again at once; the fetcher retries HTTP faults on its own.
    retry = RetryPolicy(
        max_attempts=3,
        base_delay=settings.retry_delay,
        max_delay=max(settings.retry_delay * 8, 0.0),
        name=f"{name} unit",
        on_event=tally,
    )
    return Collection(
        source=name,
        ledger=ledger,
        breakers=breakers,
        fetcher=fetcher,
        write=_Writer(tally),
        retry=retry,
        sink=SQLQuarantine(store) if sink is None else sink,
        concurrency=settings.concurrency,
        progress=settings.progress,
        redis=redis,
        owns_redis=owns_redis,
    )


def _quota(
    settings: Settings, name: str, token: str, tally: Tally, redis: Any
) -> RateLimiter | RedisRateLimiter:
    """The token's quota: in this process (one fetcher per platform), or shared in Redis."""
    if redis is None:
        # One fetcher per platform per run: its one bucket is the token's.
        return RateLimiter(
            rate=settings.rate_limit,
            per=1.0,
            adaptive=settings.adaptive_quota,
            name=f"{name} quota",
            on_event=tally,
        )
    # Every process with this token takes from one bucket; the token itself is never a key.
    bucket = hashlib.sha256(token.encode()).hexdigest()[:12]
    return RedisRateLimiter(
        client=redis,
        rate=settings.rate_limit,
        per=1.0,
        key=lambda *args, **kwargs: bucket,
        key_label=lambda key: f"{name} token sha256:{key}",
        prefix=f"{settings.redis_prefix}ratelimit:",
        name=f"{name} quota",
        on_event=tally,
    )
