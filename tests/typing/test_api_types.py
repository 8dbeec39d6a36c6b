"""Checked by ``mypy --strict``: the public API keeps signatures and types."""

from __future__ import annotations

from typing_extensions import assert_type

from resilient_pipeline import RetryPolicy, retry_with_backoff, retrying


@retry_with_backoff
def bare(day: str, *, limit: int = 10) -> list[str]:
    return [day] * limit


@retry_with_backoff(max_attempts=5, deadline=30.0, jitter="equal")
def configured(day: str) -> dict[str, int]:
    return {day: 1}


@retry_with_backoff(retry_on=(ConnectionError, TimeoutError))
async def fetch(day: str) -> bytes:
    return day.encode()


policy = RetryPolicy(max_attempts=2)


@policy
def with_policy(x: int) -> float:
    return x / 2


class Client:
    @retry_with_backoff(base_delay=0.1)
    def get(self, path: str) -> str:
        return path


def check_types() -> None:
    assert_type(bare("2026-11-28"), list[str])
    assert_type(bare("2026-11-28", limit=2), list[str])
    assert_type(configured("d"), dict[str, int])
    assert_type(with_policy(3), float)
    assert_type(Client().get("/x"), str)
    for attempt in retrying(max_attempts=2):
        with attempt:
            assert_type(attempt.number, int)


async def check_async_types() -> None:
    assert_type(await fetch("d"), bytes)
    async for attempt in retrying(base_delay=0):
        with attempt:
            pass


# --- policies and their composition keep signatures -------------------------
from resilient_pipeline import Bulkhead, RateLimiter, fallback, resilient, timeout  # noqa: E402
from resilient_pipeline.limits import Timeout  # noqa: E402

_policy = resilient(deadline=30.0, retry=RetryPolicy(), bulkhead=Bulkhead(max_concurrent=2))


@_policy
def composed(day: str, *, limit: int = 3) -> list[str]:
    return [day] * limit


@_policy
async def acomposed(day: str) -> bytes:
    return day.encode()


@timeout(5.0)
@Bulkhead(max_concurrent=1)
@RateLimiter(rate=10)
@fallback(call=lambda x: 0.0)
def layered(x: int) -> float:
    return x / 2


@Timeout(1.0)
async def atimed(x: int) -> int:
    return x


def check_policy_types() -> None:
    assert_type(composed("d"), list[str])
    assert_type(composed("d", limit=1), list[str])
    assert_type(layered(3), float)


async def check_async_policy_types() -> None:
    assert_type(await acomposed("d"), bytes)
    assert_type(await atimed(1), int)
