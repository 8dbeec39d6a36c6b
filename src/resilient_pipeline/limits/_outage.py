"""What a Redis limiter or bulkhead does while Redis cannot be reached.

The choice mirrors the Redis circuit-breaker store: ``on_unavailable="local"``
(the default) falls back to an in-process limiter with the same options,
``"reject"`` refuses every call with ``LimitStoreUnavailableError``, and
``"allow"`` lets every call through unlimited. Whatever the choice, one
``LimitStoreFailed`` event is emitted per outage, and Redis is tried again
``recheck_interval`` seconds after it last failed (not on every call: an
unreachable host can make each attempt wait for a connect timeout).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import attrs

from resilient_pipeline._core import EventHandler, describe_error, emit
from resilient_pipeline.exceptions import LimitStoreUnavailableError, MissingDependencyError

from ._trail import PolicyEvent

__all__ = ["LimitStoreFailed", "OnUnavailable", "Outage", "StoreDown", "redis_module"]

T = TypeVar("T")

OnUnavailable = Literal["local", "reject", "allow"]


@attrs.frozen(kw_only=True)
class LimitStoreFailed(PolicyEvent):
    """A Redis rate limiter or bulkhead could not reach Redis and fell back (once per outage).

    Attributes:
        error: What went wrong talking to Redis, secrets masked.
        fallback: The ``on_unavailable`` choice now in force: ``"local"``
            (an in-process limit), ``"reject"`` (every call refused) or
            ``"allow"`` (every call let through, unlimited).

    Examples:
        >>> event = LimitStoreFailed(source="ads-quota", error="ConnectionError", fallback="local")
        >>> event.message()
        'ads-quota: Redis unreachable (ConnectionError); falling back to local'
    """

    logger_name = "resilient_pipeline.limits"
    level = logging.ERROR
    template = "{source}: Redis unreachable ({error}); falling back to {fallback}"

    error: str
    fallback: str


class StoreDown(Exception):  # an internal signal: it never leaves the package
    """Redis is unreachable; ``cause`` is the Redis error this call saw (``None``: known down)."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__()
        self.cause = cause


def redis_module() -> Any:
    """The ``redis`` package, or ``MissingDependencyError`` naming the extra."""
    try:
        import redis
    except ImportError as exc:
        raise MissingDependencyError(
            package="redis", extra="redis", feature="Redis-backed limits"
        ) from exc
    return redis


class Outage:
    """Tracks whether Redis is down for one limiter; thread-safe."""

    def __init__(
        self,
        name: str,
        policy: OnUnavailable,
        recheck_interval: float,
        on_event: tuple[EventHandler, ...],
    ) -> None:
        self.name = name
        self.policy = policy
        self.recheck_interval = recheck_interval
        self.on_event = on_event
        self._lock = threading.Lock()
        self._down_until: float | None = None
        self._error = ""
        self._redis_error: type[BaseException] = redis_module().RedisError

    def call(self, now: float, fn: Callable[[], T], *, always: bool = False) -> T:
        """``fn()``, or ``StoreDown`` when Redis is known to be down or ``fn`` cannot reach it.

        ``always`` tries Redis even within an outage (giving back a lease
        taken before it began).
        """
        with self._lock:
            if not always and self._down_until is not None and now < self._down_until:
                raise StoreDown(None)
        try:
            result = fn()
        except self._redis_error as exc:
            self._failed(exc, now)
            raise StoreDown(exc) from exc
        with self._lock:
            self._down_until = None
        return result

    def _failed(self, exc: BaseException, now: float) -> None:
        error = describe_error(exc)
        with self._lock:
            first = self._down_until is None
            self._down_until = now + self.recheck_interval
            self._error = error
        if first:
            emit(
                LimitStoreFailed(source=self.name, error=error, fallback=self.policy),
                self.on_event,
            )

    def refusal(self) -> LimitStoreUnavailableError:
        """The error that refuses a call during this outage (raise it ``from`` the Redis error)."""
        with self._lock:
            error = self._error
        return LimitStoreUnavailableError(self.name, error=error)
