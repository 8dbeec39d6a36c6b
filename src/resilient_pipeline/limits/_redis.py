"""A rate limiter and a bulkhead shared by many processes through Redis (``redis`` extra).

Each decision is one atomic Lua script that reads the server's clock
(``redis.call('TIME')``), so processes on hosts with skewed clocks still
share one quota. Bulkhead slots are leases with a TTL: a process that dies
holding one loses it when the lease expires instead of leaking it for ever.
Async calls run the (thread-safe) sync client in a worker thread, which
works the same on asyncio and trio.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, ParamSpec, TypeVar, cast

import anyio.to_thread
import attrs

from resilient_pipeline._core import (
    Clock,
    check_callable,
    in_,
    integer,
    is_async,
    number,
    resolve_clock,
)
from resilient_pipeline.exceptions import (
    BulkheadFullError,
    MissingDependencyError,
    RateLimitedError,
)

from ._ratelimit import _shown, must_refuse

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
_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
return 1
"""


def _client(url: str) -> Any:
    try:
        import redis
    except ImportError as exc:
        raise MissingDependencyError(
            package="redis", extra="redis", feature="Redis-backed limits"
        ) from exc
    return redis.Redis.from_url(url)


def _url_or_client(url: str | None, client: object) -> Any:
    if (url is None) == (client is None):
        raise _config("url", url, "give exactly one of url= and client=")
    return client if client is not None else _client(cast("str", url))


def _config(option: str, value: object, problem: str) -> Exception:
    from resilient_pipeline.exceptions import ConfigurationError

    return ConfigurationError.for_option(option, value, problem)


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

    Same options and behaviour as :class:`~resilient_pipeline.RateLimiter`
    (wait within ``max_wait`` and the shared deadline, or reject with
    ``RateLimitedError``), minus adaptive mode. Keys live under ``prefix``
    and expire once their bucket would be full again.

    Examples:
        ```python
        limiter = RedisRateLimiter(url="redis://localhost:6379/0", rate=100, per=60,
                                   prefix="ads:", key=lambda account, day: account)

        @limiter
        def fetch(account: str, day: str) -> list[dict]: ...
        ```
    """

    rate: float = attrs.field(kw_only=True)
    per: float = attrs.field(default=1.0, kw_only=True)
    burst: int | None = attrs.field(default=None, kw_only=True)
    on_limit: str = attrs.field(default="wait", kw_only=True)
    max_wait: float | None = attrs.field(default=None, kw_only=True)
    key: Callable[..., Hashable] | None = attrs.field(default=None, kw_only=True)
    prefix: str = attrs.field(default="rp:ratelimit:", kw_only=True)
    url: str | None = attrs.field(default=None, kw_only=True, repr=False)
    client: Any = attrs.field(default=None, kw_only=True, repr=False)
    name: str = attrs.field(default="redis-rate-limiter", kw_only=True)
    clock: Clock | None = attrs.field(default=None, kw_only=True)

    _redis: Any = attrs.field(init=False, repr=False)
    _script: Any = attrs.field(init=False, repr=False)
    _burst: int = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        number(gt=0).check("rate", self.rate)
        number(gt=0).check("per", self.per)
        self._burst = (
            max(1, int(-(-self.rate // 1)))
            if self.burst is None
            else integer(ge=1).check("burst", self.burst)
        )
        in_("wait", "reject").check("on_limit", self.on_limit)
        if self.max_wait is not None:
            number(ge=0).check("max_wait", self.max_wait)
        self._redis = _url_or_client(self.url, self.client)
        self._script = self._redis.register_script(_TAKE)

    def _take(self, key: Hashable | None) -> float:
        redis_key = f"{self.prefix}{'' if key is None else key}"
        return float(self._script(keys=[redis_key], args=[self.rate / self.per, self._burst, 1]))

    def acquire(self, key: Hashable | None = None) -> None:
        """Take one token from ``key``'s shared bucket, waiting if allowed."""
        clock = resolve_clock(self.clock)
        waited = 0.0
        while (wait := self._take(key)) > 0:
            if must_refuse(self.on_limit, self.max_wait, waited, wait):
                raise RateLimitedError(self.name, key=_shown(key), retry_after=wait)
            clock.sleep(wait)
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
    A full bulkhead rejects at once with ``BulkheadFullError``.

    Examples:
        ```python
        bulkhead = RedisBulkhead(url="redis://localhost:6379/0", max_concurrent=8,
                                 lease_ttl=120, prefix="ads:")

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

    _redis: Any = attrs.field(init=False, repr=False)
    _script: Any = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        integer(ge=1).check("max_concurrent", self.max_concurrent)
        number(gt=0).check("lease_ttl", self.lease_ttl)
        self._redis = _url_or_client(self.url, self.client)
        self._script = self._redis.register_script(_LEASE)

    @property
    def _key(self) -> str:
        return f"{self.prefix}{self.name}"

    def acquire(self) -> str:
        """Lease a slot; its id, to pass to :meth:`release`. Raises ``BulkheadFullError``."""
        lease = uuid.uuid4().hex
        if not int(
            self._script(keys=[self._key], args=[self.max_concurrent, self.lease_ttl, lease])
        ):
            raise BulkheadFullError(self.name, max_concurrent=self.max_concurrent)
        return lease

    def release(self, lease: str) -> None:
        """Give the leased slot back."""
        self._redis.zrem(self._key, lease)

    def in_flight(self) -> int:
        """Leases held now (expired ones included until the next acquire sweeps them)."""
        return int(self._redis.zcard(self._key))

    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate ``fn`` (sync or async): each call holds a lease while it runs."""
        check_callable(fn, "RedisBulkhead")
        return _wrap(
            fn, lambda _a, _k: self.acquire(), lambda lease: self.release(cast("str", lease))
        )
