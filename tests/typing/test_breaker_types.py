"""Checked by ``mypy --strict``: the breaker's forms keep signatures and types."""

from __future__ import annotations

from typing_extensions import assert_type

from resilient_pipeline import CircuitBreaker, retry_with_backoff
from resilient_pipeline.breaker import CircuitStatistics, FailureRate, RegistryStatistics

breaker = CircuitBreaker(name="ads", trip=FailureRate(threshold=0.5, window_seconds=60))


@breaker
def fetch(day: str, *, limit: int = 10) -> list[str]:
    return [day] * limit


@breaker
async def afetch(day: str) -> bytes:
    return day.encode()


@retry_with_backoff(deadline=30)
@breaker
def composed(x: int) -> float:
    return x / 2


class Client:
    @breaker
    def get(self, path: str) -> str:
        return path


def check_types() -> None:
    assert_type(fetch("2026-11-28"), list[str])
    assert_type(fetch("d", limit=2), list[str])
    assert_type(composed(3), float)
    assert_type(Client().get("/x"), str)
    assert_type(breaker.call(len, "abc"), int)
    assert_type(breaker.statistics(), CircuitStatistics)
    assert_type(breaker.for_key("meta", 42), CircuitBreaker)
    with breaker as entered:
        assert_type(entered, CircuitBreaker)


async def check_async_types() -> None:
    assert_type(await afetch("d"), bytes)

    async def get(n: int) -> str:
        return str(n)

    assert_type(await breaker.acall(get, 1), str)
    async with breaker:
        pass


def check_registry(stats: RegistryStatistics) -> int:
    return stats.open
