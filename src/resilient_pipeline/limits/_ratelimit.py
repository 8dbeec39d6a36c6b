"""``RateLimiter``: token buckets per key that wait (within the deadline) or reject.

The decisions live in :class:`~resilient_pipeline.limits.TokenBucket`
and :meth:`RateLimiter._plan`; the sync and async drivers only sleep on the
clock for as long as the plan says and ask again.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Literal, ParamSpec, Protocol, TypeVar, cast

import attrs

from resilient_pipeline._core import (
    DEFAULT_CLOCK,
    Clock,
    EventHandler,
    callable_or_none,
    check_callable,
    default_retry_after,
    emit,
    in_,
    integer,
    is_async,
    normalize_handlers,
    number,
    remaining_time,
    resolve_clock,
)
from resilient_pipeline.exceptions import ConfigurationError, RateLimitedError, RejectedError

from ._keys import KeyLabel, shown_key
from ._token_bucket import TokenBucket, default_quota
from ._trail import PolicyEvent

__all__ = ["RateLimitAdapted", "RateLimitRejected", "RateLimitWaited", "RateLimiter"]

P = ParamSpec("P")
T = TypeVar("T")

OnLimit = Literal["wait", "reject"]
QuotaReader = Callable[..., "tuple[float, float] | None"]


@attrs.frozen(kw_only=True)
class RateLimitWaited(PolicyEvent):
    """A call waits for a token.

    Attributes:
        key: The bucket's key as the limiter shows it (``key_label``, else a
            hash; ``None`` unkeyed), never the raw key.
        delay: Seconds it will sleep.
    """

    logger_name = "resilient_pipeline.limits"
    level = logging.DEBUG
    template = "{source}: waiting {delay:.3f} s for a token (key {key})"

    key: str | None
    delay: float


@attrs.frozen(kw_only=True)
class RateLimitRejected(PolicyEvent):
    """A call was refused with ``RateLimitedError``.

    Attributes:
        key: The bucket's key as the limiter shows it, never the raw key.
        retry_after: Seconds until a token is free.
    """

    logger_name = "resilient_pipeline.limits"
    level = logging.WARNING
    template = "{source}: rate limited (key {key}); a token is free in {retry_after:.3f} s"

    key: str | None
    retry_after: float


@attrs.frozen(kw_only=True)
class RateLimitAdapted(PolicyEvent):
    """A server's quota headers or Retry-After slowed a bucket down.

    Attributes:
        key: The bucket's key as the limiter shows it, never the raw key.
        remaining: Units the server still allows in the window (``0``: paused).
        reset: Seconds until the server's window resets (or the Retry-After).
    """

    logger_name = "resilient_pipeline.limits"
    level = logging.INFO
    template = "{source}: slowed down (key {key}): {remaining} left for {reset:.1f} s"

    key: str | None
    remaining: float
    reset: float


def _must_refuse(on_limit: str, max_wait: float | None, waited: float, wait: float) -> bool:
    """Whether a call that already waited ``waited`` s must be refused, not wait ``wait`` more."""
    if on_limit == "reject" or (max_wait is not None and waited + wait > max_wait):
        return True
    remaining = remaining_time()
    return remaining is not None and wait >= remaining


class Limiting(Protocol):
    """The options a limiter's waits and refusals depend on."""

    @property
    def name(self) -> str: ...
    @property
    def on_limit(self) -> str: ...
    @property
    def max_wait(self) -> float | None: ...
    @property
    def key_label(self) -> KeyLabel | None: ...
    @property
    def on_event(self) -> tuple[EventHandler, ...]: ...


def wait_or_refuse(limiter: Limiting, key: Hashable | None, wait: float, waited: float) -> float:
    """``wait`` (announced by ``RateLimitWaited``), or ``RateLimitedError`` if it may not wait.

    Shared by :class:`RateLimiter` and the Redis limiter: both have the
    ``name``, ``on_limit``, ``max_wait``, ``key_label`` and ``on_event`` options.
    """
    shown = shown_key(key, limiter.key_label)
    if _must_refuse(limiter.on_limit, limiter.max_wait, waited, wait):
        emit(RateLimitRejected(source=limiter.name, key=shown, retry_after=wait), limiter.on_event)
        raise RateLimitedError(limiter.name, key=shown, retry_after=wait)
    emit(RateLimitWaited(source=limiter.name, key=shown, delay=wait), limiter.on_event)
    return wait


@attrs.define(eq=False)
class RateLimiter:
    """Admit at most ``rate`` calls per ``per`` seconds (bursts up to ``burst``), per key.

    Use it as a decorator (sync or async) or call :meth:`acquire` /
    :meth:`aacquire`. When no token is free, ``on_limit="wait"`` sleeps
    until one is (never past ``max_wait`` or the shared deadline: beyond
    them it rejects), and ``on_limit="reject"`` raises
    :class:`~resilient_pipeline.exceptions.RateLimitedError` at once, with
    ``retry_after`` set to when a token will be free.

    Args:
        rate: Calls allowed per ``per`` seconds (> 0).
        per: The period in seconds (> 0); ``rate=100, per=60`` is 100 a minute.
        burst: Calls that may go at once after a quiet spell (default:
            ``rate`` rounded up, at least 1).
        on_limit: ``"wait"`` or ``"reject"``.
        max_wait: Most seconds one call waits (``None``: the deadline only).
        key: For the decorator: computes the bucket key from the call's
            arguments (per token, per account). ``None``: one bucket.
        key_label: Shows a key in errors, events and logs (``lambda key:
            key.account_id``). By default a key is shown as ``sha256:``
            followed by the first 12 hex digits of the SHA-256 of its
            ``repr``, so a token used as a key never appears anywhere.
        max_keys: Buckets kept; the least recently used is dropped beyond it.
        adaptive: Slow a key's bucket down when a result or error carries a
            ``Retry-After`` (a 429) or quota headers (``X-RateLimit-Remaining``
            and ``-Reset``, ...). Call :meth:`observe` yourself to feed it.
        quota: Reads ``(remaining, reset_seconds)`` from a result or error for
            adaptive mode (default: :func:`default_quota`).
        name: The name in events and errors.
        clock: Where time comes from (waits sleep on it).
        on_event: Handlers for this limiter's events.

    Examples:
        >>> from resilient_pipeline.exceptions import RateLimitedError
        >>> from resilient_pipeline.testing import FakeClock
        >>> limiter = RateLimiter(rate=2, on_limit="reject", clock=FakeClock(), name="ads")
        >>> limiter.acquire(); limiter.acquire()
        >>> try:
        ...     limiter.acquire()
        ... except RateLimitedError as e:
        ...     print(e.retry_after)
        0.5
    """

    rate: float = attrs.field(kw_only=True, validator=number(gt=0))
    per: float = attrs.field(default=1.0, kw_only=True, validator=number(gt=0))
    burst: int | None = attrs.field(default=None, kw_only=True)
    on_limit: OnLimit = attrs.field(default="wait", kw_only=True)
    max_wait: float | None = attrs.field(default=None, kw_only=True)
    key: Callable[..., Hashable] | None = attrs.field(
        default=None, kw_only=True, validator=callable_or_none()
    )
    key_label: KeyLabel | None = attrs.field(
        default=None, kw_only=True, validator=callable_or_none()
    )
    max_keys: int = attrs.field(default=10_000, kw_only=True)
    adaptive: bool = attrs.field(default=False, kw_only=True)
    quota: QuotaReader | None = attrs.field(
        default=None, kw_only=True, validator=callable_or_none()
    )
    name: str = attrs.field(default="rate-limiter", kw_only=True)
    clock: Clock | None = attrs.field(default=None, kw_only=True)
    on_event: tuple[EventHandler, ...] = attrs.field(
        default=(), kw_only=True, converter=normalize_handlers
    )

    _per_second: float = attrs.field(init=False, repr=False)
    _burst: int = attrs.field(init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _buckets: OrderedDict[Hashable, TokenBucket] = attrs.field(
        factory=OrderedDict, init=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        self._per_second = self.rate / self.per
        if self.burst is None:
            self._burst = max(1, math.ceil(self.rate))
        else:
            self._burst = integer(ge=1).check("burst", self.burst)
        in_("wait", "reject").check("on_limit", self.on_limit)
        if self.max_wait is not None:
            number(ge=0).check("max_wait", self.max_wait)
        integer(ge=1).check("max_keys", self.max_keys)

    # -- the core -------------------------------------------------------------
    def _bucket(self, key: Hashable | None, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._per_second, self._burst, now=now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def _plan(self, key: Hashable | None, cost: float, now: float, waited: float) -> float:
        """Take a token (``0.0``) or how long to sleep first; raise if waiting is not allowed."""
        with self._lock:
            buckets = self._buckets
            bucket = buckets.get(key)
            if bucket is None:
                bucket = self._bucket(key, now)
            else:
                buckets.move_to_end(key)  # _bucket(), unrolled for a known key
            wait = bucket.take(now, cost)
        return 0.0 if wait == 0.0 else wait_or_refuse(self, key, wait, waited)

    def _check_cost(self, cost: float) -> None:
        number(gt=0).check("cost", cost)
        if cost > self._burst:
            raise ConfigurationError.for_option(
                "cost", cost, f"is more than burst={self._burst}; it could never be admitted"
            )

    # -- drivers --------------------------------------------------------------
    def acquire(self, key: Hashable | None = None, *, cost: float = 1.0) -> None:
        """Take ``cost`` tokens from ``key``'s bucket, sleeping if ``on_limit="wait"``.

        Raises:
            RateLimitedError: No token in time (or at once in reject mode).
        """
        if cost != 1.0:
            self._check_cost(cost)
        clock = resolve_clock(self.clock)
        wait = self._plan(key, cost, clock.monotonic(), 0.0)
        if wait:
            self._sleep(key, cost, clock, wait)

    def _sleep(self, key: Hashable | None, cost: float, clock: Clock, wait: float) -> None:
        """Sleep as the plan says and ask again, until admitted (or refused)."""
        waited = 0.0
        while wait:
            wait = _at_least_a_tick(wait, clock)
            clock.sleep(wait)
            waited += wait
            wait = self._plan(key, cost, clock.monotonic(), waited)

    async def aacquire(self, key: Hashable | None = None, *, cost: float = 1.0) -> None:
        """Async twin of :meth:`acquire` (asyncio and trio)."""
        if cost != 1.0:
            self._check_cost(cost)
        clock = resolve_clock(self.clock)
        wait = self._plan(key, cost, clock.monotonic(), 0.0)
        if wait:
            await self._asleep(key, cost, clock, wait)

    async def _asleep(self, key: Hashable | None, cost: float, clock: Clock, wait: float) -> None:
        """Async twin of :meth:`_sleep`."""
        waited = 0.0
        while wait:
            wait = _at_least_a_tick(wait, clock)
            await clock.asleep(wait)
            waited += wait
            wait = self._plan(key, cost, clock.monotonic(), waited)

    def observe(self, outcome: object, key: Hashable | None = None) -> None:
        """Slow ``key``'s bucket down if ``outcome`` (a result or an error) says the server is busy.

        A ``Retry-After`` (``retry_after`` attribute, or header) pauses the
        bucket that long; quota headers spread what is left over the window.
        The decorator calls this itself when ``adaptive=True``. Our own
        refusals (``RejectedError``) are ignored.

        Examples:
            >>> from resilient_pipeline.testing import FakeClock
            >>> clock = FakeClock()
            >>> limiter = RateLimiter(rate=10, clock=clock)
            >>> class TooManyRequests(Exception):
            ...     retry_after = 30.0
            >>> limiter.observe(TooManyRequests())
            >>> limiter.acquire()
            >>> clock.sleeps[0] > 30
            True
        """
        if isinstance(outcome, RejectedError):
            return
        clock = resolve_clock(self.clock)
        pause = default_retry_after(outcome)
        if pause is not None:
            remaining, reset = 0.0, pause
        else:
            reader = self.quota or default_quota
            found = reader(outcome, now=clock.time())
            if found is None:
                return
            remaining, reset = found
        now = clock.monotonic()
        with self._lock:
            self._bucket(key, now).slow_down(now, remaining=remaining, reset=reset)
        emit(
            RateLimitAdapted(
                source=self.name,
                key=shown_key(key, self.key_label),
                remaining=remaining,
                reset=reset,
            ),
            self.on_event,
        )

    def available(self, key: Hashable | None = None) -> float:
        """Tokens ``key``'s bucket holds now (``burst`` for a key never seen)."""
        now = resolve_clock(self.clock).monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            return float(self._burst) if bucket is None else bucket.available(now)

    # -- decorator ------------------------------------------------------------
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, T]:
        """Decorate ``fn`` (sync or async): each call takes one token from its key's bucket."""
        check_callable(fn, "RateLimiter")
        key_of = self.key
        adaptive = self.adaptive
        # acquire() / aacquire() unrolled: an admitted call takes its token in
        # the wrapper's own frame; only one that must wait pays for the loop.
        plan, default = self._plan, DEFAULT_CLOCK
        if is_async(fn):
            afn = cast("Callable[P, Awaitable[Any]]", fn)

            @functools.wraps(fn)
            async def alimited(*args: P.args, **kwargs: P.kwargs) -> Any:
                key = None if key_of is None else key_of(*args, **kwargs)
                clock = default[0] if self.clock is None else self.clock
                wait = plan(key, 1.0, clock.monotonic(), 0.0)
                if wait:
                    await self._asleep(key, 1.0, clock, wait)
                if not adaptive:
                    return await afn(*args, **kwargs)
                try:
                    result = await afn(*args, **kwargs)
                except Exception as exc:
                    self.observe(exc, key)
                    raise
                self.observe(result, key)
                return result

            return cast("Callable[P, T]", alimited)

        @functools.wraps(fn)
        def limited(*args: P.args, **kwargs: P.kwargs) -> T:
            key = None if key_of is None else key_of(*args, **kwargs)
            clock = default[0] if self.clock is None else self.clock
            wait = plan(key, 1.0, clock.monotonic(), 0.0)
            if wait:
                self._sleep(key, 1.0, clock, wait)
            if not adaptive:
                return fn(*args, **kwargs)
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                self.observe(exc, key)
                raise
            self.observe(result, key)
            return result

        return limited


def _at_least_a_tick(wait: float, clock: Clock) -> float:
    """``wait``, or the clock's resolution at its reading if that is more.

    A wait shorter than the smallest step a float clock can take at its
    reading (``math.ulp``: 1.4e-14 s at 100 s) would leave the reading where
    it was, so the bucket's plan would ask for the same wait again, for ever,
    on a :class:`~resilient_pipeline.testing.FakeClock` (a real clock moves
    anyway). One tick more is never a token given early.
    """
    return max(wait, math.ulp(clock.monotonic()))
