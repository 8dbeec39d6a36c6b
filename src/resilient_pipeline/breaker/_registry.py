"""Keyed circuit breakers: one breaker per (platform, account, endpoint), bounded in memory."""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import attrs

from resilient_pipeline._core import integer
from resilient_pipeline.exceptions import ConfigurationError

from ._breaker import CircuitBreaker
from ._events import CircuitStatistics
from ._memory import MemoryBreakerStore

__all__ = ["CircuitBreakerRegistry", "RegistryStatistics"]


@attrs.frozen(kw_only=True)
class RegistryStatistics:
    """The roll-up view of a registry's keyed breakers.

    Attributes:
        keys: Keyed breakers held in memory.
        closed: How many are closed (or forced closed).
        open: How many are open (or forced open).
        half_open: How many are half-open.
        evicted: Breakers dropped so far to stay within ``max_keys``.
        open_keys: The names of the open ones, sorted.

    Examples:
        >>> registry = CircuitBreakerRegistry(template=CircuitBreaker(name="ads"))
        >>> registry.get("meta").force_open()
        >>> registry.statistics().open_keys
        ('ads[meta]',)
    """

    keys: int
    closed: int
    open: int
    half_open: int
    evicted: int
    open_keys: tuple[str, ...]


def _key_text(key: tuple[object, ...]) -> str:
    if not key:
        raise ConfigurationError.for_option("key", key, "give at least one key part")
    return ",".join(str(part) for part in key)


@attrs.define(eq=False)
class CircuitBreakerRegistry:
    """Hands out one :class:`CircuitBreaker` per key, all built from ``template``.

    Memory stays bounded: beyond ``max_keys`` the least recently used
    breaker is dropped, choosing a closed one when there is one, so an open
    circuit is forgotten only when every held circuit is open. State in a
    shared store (Redis) outlives eviction; a re-created breaker reads it.

    Examples:
        >>> registry = CircuitBreakerRegistry(template=CircuitBreaker(name="ads"), max_keys=2)
        >>> registry.get("meta", "act_1").name
        'ads[meta,act_1]'
        >>> _ = registry.get("google", "123"), registry.get("tiktok", "9")
        >>> registry.statistics().keys, registry.statistics().evicted
        (2, 1)
    """

    template: CircuitBreaker = attrs.field(kw_only=True)
    max_keys: int = attrs.field(default=1024, kw_only=True)
    _breakers: OrderedDict[str, CircuitBreaker] = attrs.field(factory=OrderedDict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _evicted: int = attrs.field(default=0, init=False)
    _store: Any = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.template, CircuitBreaker):
            raise ConfigurationError.for_option(
                "template", self.template, "must be a CircuitBreaker"
            )
        integer(ge=1).check("max_keys", self.max_keys)
        # Keyed breakers without a shared store get a registry-wide memory
        # store, so an evicted key's state can be dropped with it.
        self._store = self.template.store or MemoryBreakerStore()

    def get(self, *key: object) -> CircuitBreaker:
        """The breaker for ``key``, created on first use.

        Examples:
            >>> registry = CircuitBreakerRegistry(template=CircuitBreaker(name="ads"))
            >>> registry.get("meta") is registry.get("meta")
            True
        """
        text = _key_text(key)
        breakers = self._breakers
        with self._lock:
            breaker = breakers.get(text)
            if breaker is not None:
                breakers.move_to_end(text)
                return breaker
            breaker = attrs.evolve(
                self.template, name=f"{self.template.name}[{text}]", store=self._store
            )
            breakers[text] = breaker
            if len(breakers) > self.max_keys:
                self._evict()
            return breaker

    def _evict(self) -> None:
        breakers = self._breakers
        # Never the breaker just handed out (the last one); a closed one if any.
        candidates = itertools.islice(breakers.items(), len(breakers) - 1)
        oldest = next(iter(breakers))
        victim = next(
            (
                text
                for text, breaker in candidates
                if breaker._backend.last_state().endswith("closed")
            ),
            oldest,
        )
        dropped = breakers.pop(victim)
        self._evicted += 1
        if isinstance(self._store, MemoryBreakerStore):
            self._store.forget(dropped.name)

    def __iter__(self) -> Iterator[CircuitBreaker]:
        with self._lock:
            return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)

    def all_statistics(self) -> tuple[CircuitStatistics, ...]:
        """Every held breaker's statistics, in least-recently-used order."""
        return tuple(breaker.statistics() for breaker in self)

    def statistics(self) -> RegistryStatistics:
        """How many keys are held, and how many of them are open."""
        counts = {"closed": 0, "open": 0, "half_open": 0}
        open_keys = []
        for stats in self.all_statistics():
            group = "half_open" if stats.state == "half_open" else stats.state.split("_")[-1]
            counts[group] += 1
            if group == "open":
                open_keys.append(stats.name)
        return RegistryStatistics(
            keys=len(self._breakers),
            evicted=self._evicted,
            open_keys=tuple(sorted(open_keys)),
            **counts,
        )


CircuitBreaker.registry_type = CircuitBreakerRegistry
