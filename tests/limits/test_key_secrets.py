"""A rate-limiter key that is a credential never appears: errors, events, logs, reprs, Redis."""

from __future__ import annotations

import hashlib
import logging
import string
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import ConfigurationError, RateLimiter
from resilient_pipeline.exceptions import RateLimitedError
from resilient_pipeline.limits import (
    RateLimitAdapted,
    RateLimitRejected,
    RateLimitWaited,
    RedisRateLimiter,
)
from resilient_pipeline.testing import FakeClock, capture_events

# Long enough that no fixed text of the library could contain one by chance.
tokens = st.text(alphabet=string.ascii_letters + string.digits + "-_.~+/=", min_size=20)


def hashed(key: Hashable) -> str:
    """The documented shown form: sha256 of the key's repr, first 12 hex digits."""
    return "sha256:" + hashlib.sha256(repr(key).encode()).hexdigest()[:12]


class TooManyRequests(Exception):
    retry_after = 5.0


@contextmanager
def logged() -> Iterator[list[logging.LogRecord]]:
    """Every record the library logs inside the block, DEBUG and up."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign,assignment]
    logger = logging.getLogger("resilient_pipeline")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def texts(
    errors: list[BaseException], events: list[Any], records: list[logging.LogRecord]
) -> list[str]:
    """Everything a user or an operator could read."""
    out = []
    for error in errors:
        out += [str(error), repr(error), repr(error.args), repr(vars(error))]
    for event in events:
        out += [repr(event), event.message()]
    for record in records:
        out += [record.getMessage(), repr(getattr(record, "key", None))]
    return out


def exercise(limiter: RateLimiter | RedisRateLimiter, key: Hashable) -> list[BaseException]:
    """Take tokens until one is refused; the errors raised."""
    errors: list[BaseException] = []
    for _ in range(3):
        try:
            limiter.acquire(key)
        except RateLimitedError as exc:
            errors.append(exc)
    return errors


@given(token=tokens)
def test_local_limiter_never_shows_a_token(token: str) -> None:
    """Waits, refusals and adaptive slow-downs show the key hashed, never the token."""
    clock = FakeClock()
    waiting = RateLimiter(rate=1, burst=1, clock=clock, name="wait", adaptive=True)
    rejecting = RateLimiter(rate=1, burst=1, on_limit="reject", clock=clock, name="reject")
    with capture_events() as events, logged() as records:
        errors = exercise(waiting, token) + exercise(rejecting, token)
        waiting.observe(TooManyRequests(), token)
    kinds = {type(e) for e in events}
    assert {RateLimitWaited, RateLimitRejected, RateLimitAdapted} <= kinds
    assert len(errors) == 2
    assert [hashed(token)] * 2 == [e.key for e in errors if isinstance(e, RateLimitedError)]
    assert {hashed(token)} == {getattr(e, "key", None) for e in events}
    shown = [*texts(errors, events, records), repr(waiting), repr(rejecting)]
    assert [] == [text for text in shown if token in text]


def test_key_label_chooses_how_a_key_is_shown() -> None:
    """A key_label shows keys the user's way, in the error and the events alike."""
    key = ("acct-7", "EAAGm0PX4ZCpsBAKZB9s3cr3t")
    limiter = RateLimiter(
        rate=1, on_limit="reject", clock=FakeClock(), key_label=lambda key: key[0]
    )
    with capture_events() as events:
        errors = exercise(limiter, key)
    assert ["acct-7"] * 2 == [getattr(error, "key", None) for error in errors]
    assert ["acct-7"] * 2 == [e.key for e in events if isinstance(e, RateLimitRejected)]


@pytest.mark.redis
def test_redis_limiter_never_shows_a_token(redis_url: str, redis_prefix: str) -> None:
    """Errors, events, logs, reprs and Redis key names hold the token's hash, never the token."""
    import redis

    token = "EAAGm0PX4ZCpsBAKZB9s3cr3tZBlZCZAqTi9"
    common = {"url": redis_url, "prefix": redis_prefix, "clock": FakeClock()}
    # 1000 a second, burst 1: the second call waits about a millisecond (real Redis time).
    waiting = RedisRateLimiter(rate=1000, burst=1, name="wait", **common)  # type: ignore[arg-type]
    rejecting = RedisRateLimiter(
        rate=1,
        per=3600,
        on_limit="reject",
        name="reject",
        **common,  # type: ignore[arg-type]
    )
    with capture_events() as events, logged() as records:
        errors = exercise(rejecting, token)
        # The wait needs two calls within a millisecond of Redis's own time; a
        # loaded machine can miss that, so a few rounds make sure it is seen.
        for _ in range(20):
            errors += exercise(waiting, token)
            if any(isinstance(e, RateLimitWaited) for e in events):
                break
    kinds: set[type[Any]] = {type(e) for e in events}
    expected: set[type[Any]] = {RateLimitWaited, RateLimitRejected}
    assert expected == kinds
    assert [hashed(token)] * 2 == [e.key for e in errors if isinstance(e, RateLimitedError)]
    shown = [*texts(errors, events, records), repr(waiting), repr(rejecting)]
    assert [] == [text for text in shown if token in text]

    client = redis.Redis.from_url(redis_url)
    try:
        names = sorted(k.decode() for k in client.scan_iter(match=f"{redis_prefix}*"))
    finally:
        client.close()
    digest = hashlib.sha256(repr(token).encode()).hexdigest()
    assert [f"{redis_prefix}{n}:bucket:{digest}" for n in ("reject", "wait")] == names


def test_a_password_in_the_url_never_shows() -> None:
    """A Redis URL's password stays out of configuration errors and reprs."""
    import redis

    url = "redis://app:s3cret-pw@127.0.0.1:1/0"
    with pytest.raises(ConfigurationError) as info:
        RedisRateLimiter(url=url, client=redis.Redis(port=1), rate=1)
    assert "url" == info.value.option
    limiter = RedisRateLimiter(url=url, rate=1)
    shown = [str(info.value), repr(info.value.value), repr(limiter)]
    assert [] == [text for text in shown if "s3cret-pw" in text]
