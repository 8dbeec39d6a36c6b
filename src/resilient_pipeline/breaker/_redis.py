"""Circuit-breaker state shared by every process through Redis (the ``redis`` extra).

Guarantees (see docs/circuit-breaker.md for the reasoning):

* Every transition is one Lua script run atomically on the server, on the
  server's clock, with a version check: no lost updates, no clock skew.
* Half-open permits are leases: never more trials than permits across all
  processes; a trial whose process died frees its slot after ``permit_ttl``.
* Closed-state successes cost no round trip: they are counted locally and
  flushed every ``sync_interval`` seconds (or with the next failure).
  Failures are reported at once, so the circuit opens in Redis after exactly
  the trip policy's count; every process sees it at its next failure, or
  within ``sync_interval`` at the latest.
* A process reads the shared state before its first call.
* When Redis is unreachable, ``on_unavailable="local"`` (the default) falls
  back to an in-process breaker with the same policies, and
  ``"reject"`` refuses every call; either way a ``CircuitStoreFailed``
  event is emitted once per outage, and Redis is tried again after
  ``sync_interval``.
"""

from __future__ import annotations

import logging
import math
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread
import attrs

from resilient_pipeline._core import Event, describe_error, in_, number
from resilient_pipeline.exceptions import (
    CircuitOpenError,
    ConfigurationError,
    MissingDependencyError,
)

from ._events import CircuitClosed, CircuitHalfOpened, CircuitOpened, CircuitStatistics
from ._lua import SCRIPT, STATES, config_args
from ._machine import FAILURE, SUCCESS
from ._memory import MemoryBackend

if TYPE_CHECKING:
    from resilient_pipeline._core import Clock

    from ._events import State
    from ._policy import BreakerConfig

__all__ = ["CircuitStoreFailed", "RedisBackend", "RedisBreakerStore"]

_REASONS = ("", "failures", "probe_failed", "half_open_timeout", "forced", "recovered", "reset")
_LOCAL = 1 << 62  # tickets of the local fallback, kept apart from Redis lease ids


@attrs.frozen(kw_only=True)
class CircuitStoreFailed(Event):
    """The shared store could not be reached; the breaker fell back.

    Attributes:
        error: What went wrong, secrets masked.
        fallback: ``"local"`` (an in-process breaker) or ``"reject"``.
    """

    logger_name = "resilient_pipeline.breaker"
    level = logging.ERROR
    template = "circuit {source!r}: state store unreachable ({error}); falling back to {fallback}"

    error: str
    fallback: str


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise MissingDependencyError(
            package="redis", extra="redis", feature="Shared circuit-breaker state"
        ) from exc
    return redis


@attrs.define
class RedisBreakerStore:
    """Keeps circuit-breaker state in Redis, shared by every process that uses the same prefix.

    Args:
        client: A ``redis.Redis`` (for sync calls) or ``redis.asyncio.Redis`` (async calls).
        aclient: An async client for async calls on asyncio. Without one, async calls
            run the sync ``client`` in a worker thread (the way it works under trio).
        prefix: Prepended to every key.
        sync_interval: Seconds between a process's reads of the shared state
            (and flushes of its batched successes) while closed.
        on_unavailable: ``"local"`` or ``"reject"`` while Redis cannot be reached.

    Examples:
        ```python
        import redis
        from resilient_pipeline import CircuitBreaker
        from resilient_pipeline.breaker._redis import RedisBreakerStore

        store = RedisBreakerStore(redis.Redis.from_url("redis://localhost:6379/0"))
        breaker = CircuitBreaker(name="ads-api", store=store)
        ```
    """

    client: Any = attrs.field(default=None)
    aclient: Any = attrs.field(default=None, kw_only=True)
    prefix: str = attrs.field(default="resilient-pipeline:breaker:", kw_only=True)
    sync_interval: float = attrs.field(default=1.0, kw_only=True)
    on_unavailable: Literal["local", "reject"] = attrs.field(default="local", kw_only=True)
    _skew: float = attrs.field(default=0.0, init=False, repr=False)  # tests move server time

    def __attrs_post_init__(self) -> None:
        redis = _redis()
        if isinstance(self.client, redis.asyncio.Redis) and self.aclient is None:
            self.client, self.aclient = None, self.client
        if self.client is None and self.aclient is None:
            raise ConfigurationError.for_option("client", None, "give a Redis client")
        number(ge=0).check("sync_interval", self.sync_interval)
        in_("local", "reject").check("on_unavailable", self.on_unavailable)

    def bind(self, name: str, config: BreakerConfig, emit: Callable[[Event], None]) -> RedisBackend:
        """The backend for breaker ``name`` in this process."""
        return RedisBackend(self, name, config, emit)


class RedisBackend:
    """One breaker's view of its shared state: a local cache, batched successes, the script."""

    def __init__(
        self,
        store: RedisBreakerStore,
        name: str,
        config: BreakerConfig,
        emit: Callable[[Event], None],
    ) -> None:
        self.store = store
        self.name = name
        self.config = config
        self._emit = emit
        base = f"{store.prefix}{{{name}}}"  # one hash slot, for Redis Cluster
        self.keys = [base, f"{base}:permits", f"{base}:window"]
        self._lock = threading.Lock()
        self._fallback = MemoryBackend(name, config, emit)
        self._reply: list[int] = [0] * 14
        self._open_until = 0.0  # on the local clock
        self._fetched = -math.inf  # never: the first call reads the shared state
        self._pending = 0  # closed-state successes not yet flushed
        self._down_until: float | None = None
        self.calls = self.successes = self.failures = self.ignored = self.rejected = 0
        self._script: Any = None
        self._ascript: Any = None
        self._config_args, self._expire = config_args(config)

    # -- planning (no I/O, under the lock) ---------------------------------------
    def _argv(
        self,
        op: str,
        *,
        batch: int = 0,
        ticket: int = 0,
        outcome: int = 0,
        hint: float | None = None,
        forced: int = -1,
    ) -> list[object]:
        jitter = self.config.open_duration.jitter
        draw = (self.config.rng or random).random() if jitter else 1.0
        return [
            op,
            *self._config_args,
            draw,
            -1.0 if hint is None else hint,
            self.store._skew,
            self._expire,
            batch,
            ticket,
            outcome,
            self._reply[2],
            forced,
        ]

    def _plan_admit(self, now: float) -> int | CircuitOpenError | list[object] | None:
        """A local answer, the script's arguments, or ``None`` to use the fallback."""
        with self._lock:
            if self._down_until is not None and now < self._down_until:
                return None
            state = self._reply[1]
            if now - self._fetched < self.store.sync_interval:
                if state in (0, 4):
                    self.calls += 1
                    return 0
                if state == 3 or (state == 1 and now < self._open_until):
                    self.rejected += 1
                    return self._rejection(now)
            batch, self._pending = self._pending, 0
            return self._argv("admit", batch=batch)

    def _rejection(self, now: float) -> CircuitOpenError:
        state = STATES[self._reply[1]]
        retry_after = max(self._open_until - now, 0.0) if state == "open" else None
        return CircuitOpenError(self.name, state=state, retry_after=retry_after)

    def _plan_record(self, ticket: int, outcome: int, hint: float | None) -> list[object] | None:
        with self._lock:
            if outcome == SUCCESS:
                self.successes += 1
            elif outcome == FAILURE:
                self.failures += 1
            else:
                self.ignored += 1
            if ticket == 0:
                if outcome == SUCCESS:
                    self._pending += 1  # no round trip: flushed with the next one
                if outcome != FAILURE:
                    return None
                batch, self._pending = self._pending, 0
                return self._argv("record", batch=batch, outcome=FAILURE, hint=hint)
            return self._argv("record", ticket=ticket, outcome=outcome, hint=hint)

    def _apply(self, reply: list[Any], now: float) -> None:
        """Cache the script's reply and announce the transition it made, if any."""
        values = [int(v) for v in reply]
        with self._lock:
            self._reply = values
            self._fetched = now
            self._down_until = None
            if values[3] >= 0:
                self._open_until = now + values[3] / 1000
        event, reason, open_for = values[11], _REASONS[values[12]], values[13] / 1000
        if event == 1:
            self._emit(
                CircuitOpened(
                    source=self.name,
                    reason=reason,
                    open_for=None if reason == "forced" else open_for,
                    failures=values[5] if values[6] == 0 else values[7],
                    failure_rate=None,
                    openings=values[8],
                )
            )
        elif event == 2:
            self._emit(CircuitHalfOpened(source=self.name, permits=self.config.half_open.permits))
        elif event == 3:
            self._emit(CircuitClosed(source=self.name, reason=reason))

    def _admitted(self, reply: list[Any], now: float) -> int | CircuitOpenError:
        self._apply(reply, now)
        with self._lock:
            if self._reply[0]:
                self.calls += 1
                return self._reply[4]
            self.rejected += 1
            return self._rejection(now)

    def _unavailable(self, error: Exception, now: float) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = now + max(self.store.sync_interval, 0.001)
        if first:
            fallback = self.store.on_unavailable
            self._emit(
                CircuitStoreFailed(source=self.name, error=describe_error(error), fallback=fallback)
            )

    def _degraded(self, clock: Clock) -> int | CircuitOpenError:
        if self.store.on_unavailable == "reject":
            return CircuitOpenError(self.name, state="unavailable")
        ticket = self._fallback.admit(clock)
        return ticket + _LOCAL if isinstance(ticket, int) else ticket

    # -- the backend protocol -------------------------------------------------------
    def _sync_script(self) -> Any:
        if self._script is None:
            if self.store.client is None:
                raise ConfigurationError.for_option(
                    "client",
                    None,
                    f"circuit {self.name!r} is used from sync code: give a sync client",
                )
            self._script = self.store.client.register_script(SCRIPT)
        return self._script

    def _async_script(self) -> Any:
        if self._ascript is None:
            if self.store.aclient is None:
                raise ConfigurationError.for_option(
                    "aclient",
                    None,
                    f"circuit {self.name!r} is used from async code: give an async client",
                )
            self._ascript = self.store.aclient.register_script(SCRIPT)
        return self._ascript

    def _run(self, argv: list[object], now: float) -> list[Any] | None:
        script = self._sync_script()
        try:
            return list(script(keys=self.keys, args=argv))
        except _redis().RedisError as exc:
            self._unavailable(exc, now)
            return None

    async def _arun(self, argv: list[object], now: float) -> list[Any] | None:
        if self.store.aclient is None and self.store.client is not None:
            # No async client (or trio, which redis.asyncio does not support):
            # the sync client in a worker thread works on every anyio backend.
            return await anyio.to_thread.run_sync(self._run, argv, now)
        script = self._async_script()
        try:
            return list(await script(keys=self.keys, args=argv))
        except _redis().RedisError as exc:
            self._unavailable(exc, now)
            return None

    def admit(self, clock: Clock) -> int | CircuitOpenError:
        now = clock.monotonic()
        plan = self._plan_admit(now)
        if plan is None:
            return self._degraded(clock)
        if not isinstance(plan, list):
            return plan
        reply = self._run(plan, now)
        return self._degraded(clock) if reply is None else self._admitted(reply, now)

    async def aadmit(self, clock: Clock) -> int | CircuitOpenError:
        now = clock.monotonic()
        plan = self._plan_admit(now)
        if plan is None:
            return self._degraded(clock)
        if not isinstance(plan, list):
            return plan
        reply = await self._arun(plan, now)
        return self._degraded(clock) if reply is None else self._admitted(reply, now)

    def record(self, ticket: int, outcome: int, clock: Clock, hint: float | None) -> None:
        if ticket >= _LOCAL:
            self._fallback.record(ticket - _LOCAL, outcome, clock, hint)
            return
        plan = self._plan_record(ticket, outcome, hint)
        if plan is not None:
            now = clock.monotonic()
            reply = self._run(plan, now)
            if reply is None:
                self._fallback.record(0, outcome, clock, hint)
            else:
                self._apply(reply, now)

    async def arecord(self, ticket: int, outcome: int, clock: Clock, hint: float | None) -> None:
        if ticket >= _LOCAL:
            self._fallback.record(ticket - _LOCAL, outcome, clock, hint)
            return
        plan = self._plan_record(ticket, outcome, hint)
        if plan is not None:
            now = clock.monotonic()
            reply = await self._arun(plan, now)
            if reply is None:
                self._fallback.record(0, outcome, clock, hint)
            else:
                self._apply(reply, now)

    def _force_argv(self, state: State | None) -> list[object]:
        with self._lock:
            self._pending = 0
        return self._argv("force", forced=-1 if state is None else STATES.index(state))

    def force(self, state: State | None, clock: Clock) -> None:
        now = clock.monotonic()
        reply = self._run(self._force_argv(state), now)
        if reply is None:
            self._fallback.force(state, clock)
        else:
            self._apply(reply, now)

    async def aforce(self, state: State | None, clock: Clock) -> None:
        now = clock.monotonic()
        reply = await self._arun(self._force_argv(state), now)
        if reply is None:
            self._fallback.force(state, clock)
        else:
            self._apply(reply, now)

    def _sync_argv(self) -> list[object]:
        with self._lock:
            batch, self._pending = self._pending, 0
        return self._argv("sync", batch=batch)

    def statistics(self, clock: Clock) -> CircuitStatistics:
        now = clock.monotonic()
        reply = self._run(self._sync_argv(), now)
        if reply is None:
            return self._fallback.statistics(clock)
        self._apply(reply, now)
        return self._statistics()

    async def astatistics(self, clock: Clock) -> CircuitStatistics:
        now = clock.monotonic()
        reply = await self._arun(self._sync_argv(), now)
        if reply is None:
            return self._fallback.statistics(clock)
        self._apply(reply, now)
        return self._statistics()

    def last_state(self) -> State:
        return STATES[self._reply[1]]  # type: ignore[return-value]

    def _statistics(self) -> CircuitStatistics:
        with self._lock:
            values = self._reply
            state: State = STATES[values[1]]  # type: ignore[assignment]
            retry_after = values[3] / 1000 if state == "open" else None
            if state == "open" and values[3] == 0:
                state, retry_after = "half_open", None  # what the next call will see
            calls, failures = values[6], values[7]
            trip = self.config.trip
            minimum = getattr(trip, "minimum_calls", None)
            return CircuitStatistics(
                name=self.name,
                state=state,
                calls=self.calls,
                successes=self.successes,
                failures=self.failures,
                ignored=self.ignored,
                rejected=self.rejected,
                consecutive_failures=values[5],
                failure_rate=failures / calls if minimum is not None and calls >= minimum else None,
                window_calls=calls,
                openings=values[8],
                opened_at=values[9] / 1000 if state in ("open", "forced_open") else None,
                retry_after=retry_after,
                permits_in_use=values[10],
            )
