"""A rate limiter and a bulkhead shared by many processes through Redis (``redis`` extra).

Each decision is one atomic Lua script that reads the server's clock
(``redis.call('TIME')``), so processes on hosts with skewed clocks still
share one quota. Bulkhead slots are leases with a TTL: a process that dies
holding one loses it when the lease expires instead of leaking it for ever.
Async calls run the (thread-safe) sync client in a worker thread, which
works the same on asyncio and trio.

Redis keys are ``{prefix}{name}:bucket`` (an unkeyed limiter),
``{prefix}{name}:bucket:{sha256 of repr(key)}`` (a keyed one) and
``{prefix}{name}:leases`` (a bulkhead): limiters of different names never
share a bucket, a bulkhead never collides with a limiter, and a key that is
a credential never appears in Redis. While Redis is unreachable each follows
its ``on_unavailable`` choice (see ``_outage.py``).
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, ParamSpec, TypeVar, cast

import anyio.to_thread
import attrs

from resilient_pipeline._core import (
    Clock,
    EventHandler,
    callable_or_none,
    check_callable,
    emit,
    in_,
    integer,
    is_async,
    non_empty_str,
    normalize_handlers,
    number,
    redact,
    resolve_clock,
)
from resilient_pipeline.exceptions import BulkheadFullError, ConfigurationError

from ._bulkhead import Bulkhead, BulkheadRejected
from ._keys import KeyLabel, key_digest
from ._outage import OnUnavailable, Outage, StoreDown, redis_module
from ._ratelimit import OnLimit, RateLimiter, wait_or_refuse

__all__ = ["RedisBulkhead", "RedisRateLimiter"]

P = ParamSpec("P")
T = TypeVar("T")

# KEYS[1] bucket hash; ARGV rate/s, burst, cost. Returns "0" (admitted) or the wait, as a
# string: Redis would truncate a Lua float reply to an integer.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, ts = burst, now end
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate); ts = now end
local wait = 0
if tokens + 1e-9 >= cost then
  tokens = math.max(tokens - cost, 0)
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1],
  'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return string.format('%.17g', wait)
"""

# KEYS[1] sorted set lease-id -> expiry (server seconds); ARGV limit, ttl, lease-id.
# Returns {admitted (0 or 1), leases held before this one}.
_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then return {0, held} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
return {1, held}
"""

# Leases handed out without Redis during an outage (Redis's are 32 hex digits).
_LOCAL_LEASE = "local"
_ALLOWED_LEASE = "allowed"


def _url_or_client(url: str | None, client: object) -> Any:
    if (url is None) == (client is None):
        shown = None if url is None else redact(str(url))  # a URL may hold a password
        raise ConfigurationError.for_option("url", shown, "give exactly one of url= and client=")
    return client if client is not None else redis_module().Redis.from_url(url)


def _check_outage_options(on_unavailable: object, recheck_interval: object) -> None:
    in_("local", "reject", "allow").check("on_unavailable", on_unavailable)
    number(ge=0).check("recheck_interval", recheck_interval)


def _wrap(
    fn: Callable[P, T],
    enter: Callable[[tuple[Any, ...], dict[str, Any]], object],
    leave: Callable[[object], None],
) -> Callable[P, T]:
    """Decorate ``fn`` with a blocking ``enter``/``leave`` pair; async runs them in a thread."""
    if is_async(fn):
        afn = cast("Callable[P, Awaitable[Any]]", fn)

        @functools.wraps(fn)
        async def aguarded(*args: P.args, **kwargs: P.kwargs) -> Any:
            token = await anyio.to_thread.run_sync(enter, args, kwargs)
            try:
                return await afn(*args, **kwargs)
            finally:
                await anyio.to_thread.run_sync(leave, token)

        return cast("Callable[P, T]", aguarded)

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        token = enter(args, kwargs)
        try:
            return fn(*args, **kwargs)
        finally:
            leave(token)

    return guarded


@attrs.define(eq=False)
class RedisRateLimiter:
    """A token bucket per key in Redis: ``rate`` per ``per`` seconds across every process.

    Same options, behaviour and events as :class:`~resilient_pipeline.RateLimiter`
    (wait within ``max_wait`` and the shared deadline, or reject with
    ``RateLimitedError``), minus adaptive mode. Every process that uses the
    same ``prefix`` and ``name`` shares one bucket per key; limiters of
    different names never share one. A bucket's Redis key is
    ``{prefix}{name}:bucket``, with ``:{sha256 of repr(key)}`` appended for a
    keyed limiter, so a key that is a token never reaches Redis; it expires
    once the bucket would be full again.

    While Redis cannot be reached, ``on_unavailable`` decides:

    * ``"local"`` (the default): an in-process limiter with the same options
      takes over, so each process keeps to the quota on its own (together
      they may use up to one quota each);
    * ``"reject"``: every call is refused with
      :class:`~resilient_pipeline.exceptions.LimitStoreUnavailableError`,
      which ``retry_with_backoff`` does not retry and a breaker does not count;
    * ``"allow"``: every call goes through, unlimited.

    Either way a :class:`LimitStoreFailed` event is emitted once per outage, and
    Redis is tried again ``recheck_interval`` seconds after it last failed.

    Args:
        key_label: Shows a key in errors, events and logs; by default
            ``sha256:`` and 12 hex digits of the SHA-256 of its ``repr``.
        url: A Redis URL (its password never appears in the ``repr``); or
        client: A ``redis.Redis`` to use instead.
        name: Names the bucket in Redis, the events and the errors.
        clock: Where time comes from (waits, ``recheck_interval``).
        on_unavailable: ``"local"``, ``"reject"`` or ``"allow"`` while Redis
            cannot be reached.
        recheck_interval: Seconds an outage lasts, for this limiter, before
            Redis is tried again (>= 0).
        on_event: Handlers for this limiter's events.

    The other options are :class:`~resilient_pipeline.RateLimiter`'s.

    Examples:
        ```python
        limiter = RedisRateLimiter(url="redis://localhost:6379/0", rate=100, per=60,
                                   prefix="ads:", name="ads-quota",
                                   key=lambda account, day: account)

        @limiter
        def fetch(account: str, day: str) -> list[dict]: ...
        ```
    """

    rate: float = attrs.field(kw_only=True)
    per: float = attrs.field(default=1.0, kw_only=True)
    burst: int | None = attrs.field(default=None, kw_only=True)
    on_limit: OnLimit = attrs.field(default="wait", kw_only=True)
    max_wait: float | None = attrs.field(default=None, kw_only=True)
    key: Callable[..., Hashable] | None = attrs.field(
        default=None, kw_only=True, validator=callable_or_none()
    )
    key_label: KeyLabel | None = attrs.field(
        default=None, kw_only=True, validator=callable_or_none()
    )
    prefix: str = attrs.field(default="rp:ratelimit:", kw_only=True)
    url: str | None = attrs.field(default=None, kw_only=True, repr=False)
    client: Any = attrs.field(default=None, kw_only=True, repr=False)
    name: str = attrs.field(default="redis-rate-limiter", kw_only=True)
    clock: Clock | None = attrs.field(default=None, kw_only=True)
    on_unavailable: OnUnavailable = attrs.field(default="local", kw_only=True)
    recheck_interval: float = attrs.field(default=1.0, kw_only=True)
    on_event: tuple[EventHandler, ...] = attrs.field(
        default=(), kw_only=True, converter=normalize_handlers
    )

    _redis: Any = attrs.field(init=False, repr=False)
    _script: Any = attrs.field(init=False, repr=False)
    _burst: int = attrs.field(init=False, repr=False)
    _local: RateLimiter = attrs.field(init=False, repr=False)
    _outage: Outage = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        number(gt=0).check("rate", self.rate)
        number(gt=0).check("per", self.per)
        non_empty_str().check("name", self.name)
        _check_outage_options(self.on_unavailable, self.recheck_interval)
        # The in-process stand-in checks burst, on_limit and max_wait for both.
        self._local = RateLimiter(
            rate=self.rate,
            per=self.per,
            burst=self.burst,
            on_limit=self.on_limit,
            max_wait=self.max_wait,
            key_label=self.key_label,
            name=self.name,
            clock=self.clock,
            on_event=self.on_event,
        )
        self._burst = self._local._burst
        self._outage = Outage(self.name, self.on_unavailable, self.recheck_interval, self.on_event)
        self._redis = _url_or_client(self.url, self.client)
        self._script = self._redis.register_script(_TAKE)

    def _redis_key(self, key: Hashable | None) -> str:
        bucket = f"{self.prefix}{self.name}:bucket"
        return bucket if key is None else f"{bucket}:{key_digest(key)}"

    def acquire(self, key: Hashable | None = None) -> None:
        """Take one token from ``key``'s shared bucket, waiting if allowed.

        Raises:
            RateLimitedError: No token in time (or at once in reject mode).
            LimitStoreUnavailableError: Redis is unreachable and
                ``on_unavailable="reject"``.
        """
        clock = resolve_clock(self.clock)
        keys, args = [self._redis_key(key)], [self.rate / self.per, self._burst, 1]
        waited = 0.0
        while True:
            try:
                reply = self._outage.call(
                    clock.monotonic(), lambda: self._script(keys=keys, args=args)
                )
            except StoreDown as down:
                if self.on_unavailable == "reject":
                    raise self._outage.refusal() from down.cause
                if self.on_unavailable == "local":
                    self._local.acquire(key)
                return
            wait = float(reply)
            if wait <= 0:
                return
            clock.sleep(wait_or_refuse(self, key, wait, waited))
            waited += wait

    async def aacquire(self, key: Hashable | None = None) -> None:
        """Async twin of :meth:`acquire` (its Redis calls and waits run in a worker thread)."""
        await anyio.to_thread.run_sync(self.acquire, key)

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate ``fn`` (sync or async): each call takes a token from its key's bucket."""
        check_callable(fn, "RedisRateLimiter")
        key_of = self.key

        def enter(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
            self.acquire(None if key_of is None else key_of(*args, **kwargs))
            return None

        return _wrap(fn, enter, lambda _: None)


@attrs.define(eq=False)
class RedisBulkhead:
    """At most ``max_concurrent`` calls at once across every process, as leases in Redis.

    A slot is a lease that expires after ``lease_ttl`` seconds, so a crashed
    process cannot hold one for ever; keep calls shorter than the lease
    (``resilient()`` refuses a composition whose timeout could outlive it).
    A full bulkhead rejects at once with ``BulkheadFullError`` (and a
    ``BulkheadRejected`` event). Every process with the same ``prefix`` and
    ``name`` shares the leases, kept in ``{prefix}{name}:leases``.

    While Redis cannot be reached, ``on_unavailable`` decides, as for
    :class:`RedisRateLimiter`: ``"local"`` (the default) limits this process
    to ``max_concurrent`` on its own, ``"reject"`` refuses every call with
    ``LimitStoreUnavailableError``, ``"allow"`` lets every call through. A
    :class:`LimitStoreFailed` event is emitted once per outage. A lease that
    cannot be given back expires after ``lease_ttl``.

    Args:
        max_concurrent: Leases held at once across every process (>= 1).
        lease_ttl: Seconds a lease lasts if it is never given back (> 0).
        prefix: Prepended to the Redis key.
        url: A Redis URL (its password never appears in the ``repr``); or
        client: A ``redis.Redis`` to use instead.
        name: Names the slots in Redis, the events and the errors.
        clock: Where time comes from (``recheck_interval``).
        on_unavailable: ``"local"``, ``"reject"`` or ``"allow"`` while Redis
            cannot be reached.
        recheck_interval: Seconds an outage lasts, for this bulkhead, before
            Redis is tried again (>= 0).
        on_event: Handlers for this bulkhead's events.

    Examples:
        ```python
        bulkhead = RedisBulkhead(url="redis://localhost:6379/0", max_concurrent=8,
                                 lease_ttl=120, prefix="ads:", name="ads-api")

        @resilient(bulkhead=bulkhead, timeout=60)
        def fetch(day: str) -> list[dict]: ...
        ```
    """

    max_concurrent: int = attrs.field(kw_only=True)
    lease_ttl: float = attrs.field(default=60.0, kw_only=True)
    prefix: str = attrs.field(default="rp:bulkhead:", kw_only=True)
    url: str | None = attrs.field(default=None, kw_only=True, repr=False)
    client: Any = attrs.field(default=None, kw_only=True, repr=False)
    name: str = attrs.field(default="redis-bulkhead", kw_only=True)
    clock: Clock | None = attrs.field(default=None, kw_only=True)
    on_unavailable: OnUnavailable = attrs.field(default="local", kw_only=True)
    recheck_interval: float = attrs.field(default=1.0, kw_only=True)
    on_event: tuple[EventHandler, ...] = attrs.field(
        default=(), kw_only=True, converter=normalize_handlers
    )

    _redis: Any = attrs.field(init=False, repr=False)
    _script: Any = attrs.field(init=False, repr=False)
    _local: Bulkhead = attrs.field(init=False, repr=False)
    _outage: Outage = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        integer(ge=1).check("max_concurrent", self.max_concurrent)
        number(gt=0).check("lease_ttl", self.lease_ttl)
        non_empty_str().check("name", self.name)
        _check_outage_options(self.on_unavailable, self.recheck_interval)
        self._local = Bulkhead(
            max_concurrent=self.max_concurrent, name=self.name, on_event=self.on_event
        )
        self._outage = Outage(self.name, self.on_unavailable, self.recheck_interval, self.on_event)
        self._redis = _url_or_client(self.url, self.client)
        self._script = self._redis.register_script(_LEASE)

    @property
    def _key(self) -> str:
        return f"{self.prefix}{self.name}:leases"

    def _now(self) -> float:
        return resolve_clock(self.clock).monotonic()

    def acquire(self) -> str:
        """Lease a slot; its id, to pass to :meth:`release`.

        Raises:
            BulkheadFullError: Every slot is leased.
            LimitStoreUnavailableError: Redis is unreachable and
                ``on_unavailable="reject"``.
        """
        lease = uuid.uuid4().hex
        args = [self.max_concurrent, self.lease_ttl, lease]
        try:
            reply = self._outage.call(
                self._now(), lambda: self._script(keys=[self._key], args=args)
            )
        except StoreDown as down:
            if self.on_unavailable == "reject":
                raise self._outage.refusal() from down.cause
            if self.on_unavailable == "allow":
                return _ALLOWED_LEASE
            self._local.acquire()
            return _LOCAL_LEASE
        admitted, held = (int(value) for value in reply)
        if not admitted:
            emit(
                BulkheadRejected(source=self.name, in_flight=held, waiting=0, waited=0.0),
                self.on_event,
            )
            raise BulkheadFullError(self.name, max_concurrent=self.max_concurrent)
        return lease

    def release(self, lease: str) -> None:
        """Give the leased slot back (if Redis is unreachable, the lease expires on its own)."""
        if lease == _LOCAL_LEASE:
            self._local.release()
        elif lease != _ALLOWED_LEASE:
            # Tried even within an outage: only leases taken before it come here.
            with contextlib.suppress(StoreDown):
                self._outage.call(
                    self._now(), lambda: self._redis.zrem(self._key, lease), always=True
                )

    def in_flight(self) -> int:
        """Leases held now in Redis (expired ones included until the next acquire sweeps them).

        Asks Redis even during an outage.

        Raises:
            LimitStoreUnavailableError: Redis is unreachable.
        """
        count = lambda: self._redis.zcard(self._key)  # noqa: E731
        try:
            return int(self._outage.call(self._now(), count, always=True))
        except StoreDown as down:
            raise self._outage.refusal() from down.cause

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate ``fn`` (sync or async): each call holds a lease while it runs."""
        check_callable(fn, "RedisBulkhead")
        return _wrap(
            fn, lambda _a, _k: self.acquire(), lambda lease: self.release(cast("str", lease))
        )
