"""Worker processes for the multi-process Redis breaker tests (kept light: no pytest import)."""

from __future__ import annotations

import time
from typing import Any

import redis

from resilient_pipeline import CircuitBreaker, CircuitOpenError, ConsecutiveFailures
from resilient_pipeline import OpenDuration as OpenFor
from resilient_pipeline.breaker import HalfOpen
from resilient_pipeline.breaker._redis import RedisBreakerStore


class Down(ConnectionError):
    """The shared upstream is failing."""


def make_breaker(url: str, prefix: str, **options: Any) -> CircuitBreaker:
    """The breaker every process builds: same name, same prefix, same policies."""
    store = RedisBreakerStore(redis.Redis.from_url(url), prefix=prefix, sync_interval=0.05)
    options.setdefault("trip", ConsecutiveFailures(threshold=3))
    options.setdefault("open_duration", OpenFor(seconds=0.2))
    return CircuitBreaker(name="shared", store=store, **options)


def probe_worker(url: str, prefix: str, start: Any, inflight: Any, peak: Any, probes: Any) -> None:
    """Hammer a half-open circuit for a second; record how many trials ran at once."""
    breaker = make_breaker(url, prefix, half_open=HalfOpen(permits=2, success_threshold=10**6))

    def trial() -> None:
        with inflight.get_lock():
            inflight.value += 1
            peak.value = max(peak.value, inflight.value)
            probes.value += 1
        time.sleep(0.01)  # a real upstream call takes time: others race meanwhile
        with inflight.get_lock():
            inflight.value -= 1

    start.wait(30)
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        try:
            breaker.call(trial)
        except CircuitOpenError:
            time.sleep(0.001)


def recovery_worker(url: str, prefix: str, start: Any, healthy: Any, results: Any) -> None:
    """Call a failing upstream until it recovers; report the state this process ends in."""
    breaker = make_breaker(url, prefix)

    def upstream() -> str:
        if not healthy.value:
            raise Down("upstream down")
        return "ok"

    start.wait(30)
    deadline = time.monotonic() + 4.0
    successes = 0
    while time.monotonic() < deadline and successes < 20:
        try:
            breaker.call(upstream)
            successes += 1
        except (Down, CircuitOpenError):
            time.sleep(0.005)
    results.put(breaker.statistics().state)


def hung_probe_worker(url: str, prefix: str, holding: Any) -> None:
    """Take the only half-open permit, then hang until killed."""
    breaker = make_breaker(url, prefix, half_open=HalfOpen(permits=1, permit_ttl=0.5))

    def hang() -> None:
        holding.set()
        time.sleep(60)

    breaker.call(hang)
