"""The pure token bucket behind ``RateLimiter``, and reading quota headers.

The bucket never reads a clock and never sleeps: it is told the time and
answers "admitted" (``0.0``) or "a token is free in this many seconds". It
never lends tokens, so over any window of ``t`` seconds it admits at most
``rate * t + burst`` units, whatever the schedule of calls.
"""

from __future__ import annotations

import math
import re

import attrs

from resilient_pipeline._core import to_number as _seconds

__all__ = ["TokenBucket", "default_quota"]

# Absorbs float rounding: a caller that slept exactly the computed wait must find its token.
_EPSILON = 1e-9


@attrs.define
class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` banked.

    Adaptive slow-downs (a server's quota or Retry-After) lower the refill
    rate until ``slow_until``; a rate of ``0`` is a pause.

    Examples:
        >>> bucket = TokenBucket(rate=2.0, burst=1, now=0.0)
        >>> bucket.take(0.0), bucket.take(0.0)
        (0.0, 0.5)
        >>> bucket.take(0.5)
        0.0
    """

    rate: float
    burst: int
    tokens: float = attrs.field(kw_only=True, default=-1.0)
    updated: float = attrs.field(kw_only=True, alias="now")
    slow_rate: float = attrs.field(kw_only=True, default=0.0)
    slow_until: float = attrs.field(kw_only=True, default=-math.inf)

    def __attrs_post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def _refill(self, now: float) -> None:
        elapsed_from = self.updated
        if now <= elapsed_from:
            return
        if elapsed_from < self.slow_until:
            end = min(now, self.slow_until)
            self.tokens = min(self.burst, self.tokens + (end - elapsed_from) * self.slow_rate)
            elapsed_from = end
        self.tokens = min(self.burst, self.tokens + (now - elapsed_from) * self.rate)
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: ``0.0`` if admitted, else seconds until they are there."""
        # _refill() and the min/max calls unrolled (same arithmetic): this runs
        # on every admitted call.
        updated = self.updated
        if now > updated:
            if updated < self.slow_until:
                self._refill(now)
            else:
                tokens = self.tokens + (now - updated) * self.rate
                burst = self.burst
                self.tokens = tokens if tokens < burst else burst
                self.updated = now
        tokens = self.tokens
        if tokens + _EPSILON >= cost:
            left = tokens - cost
            self.tokens = 0.0 if left < 0.0 else left
            return 0.0
        return self.wait(now, cost)

    def wait(self, now: float, cost: float = 1.0) -> float:
        """Seconds from ``now`` until ``cost`` tokens are banked (after a refill at ``now``)."""
        need = cost - self.tokens
        waited = 0.0
        if now < self.slow_until:
            window = self.slow_until - now
            gained = window * self.slow_rate
            if gained >= need:
                return need / self.slow_rate
            need -= gained
            waited = window
        return waited + need / self.rate

    def slow_down(self, now: float, *, remaining: float, reset: float) -> None:
        """Admit at most ``remaining`` units in the next ``reset`` seconds, then resume ``rate``.

        ``remaining == 0`` (or a Retry-After) pauses the bucket for ``reset`` seconds.
        """
        self._refill(now)
        self.tokens = min(self.tokens, max(remaining, 0.0))
        spread = max(remaining - self.tokens, 0.0) / reset if reset > 0 else self.rate
        self.slow_rate = min(self.rate, spread)
        self.slow_until = now + max(reset, 0.0)

    def available(self, now: float) -> float:
        """Tokens banked at ``now``."""
        self._refill(now)
        return self.tokens


_COMBINED = re.compile(r"\b(?P<key>[rt])\s*=\s*(?P<value>\d+(?:\.\d+)?)")
_EPOCH_SECONDS = 1e9  # a reset this large is a Unix timestamp, not a delay


def _header(headers: object, *names: str) -> str | None:
    get = getattr(headers, "get", None)
    if get is None:
        return None
    for name in names:
        try:
            value = get(name)
        except Exception:
            return None
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return _seconds(float(text.split(",")[0]))
    except ValueError:
        return None


def default_quota(outcome: object, *, now: float) -> tuple[float, float] | None:
    """``(remaining, reset_seconds)`` from the quota headers of a response or an HTTP error.

    Read from ``outcome.response.headers`` or ``outcome.headers``:
    ``RateLimit-Remaining`` / ``X-RateLimit-Remaining`` with
    ``RateLimit-Reset`` / ``X-RateLimit-Reset`` (a delay, or a Unix time
    compared with ``now``, wall-clock seconds), or the IETF draft's combined
    ``RateLimit: "default";r=50;t=30``.

    Examples:
        >>> class Response:
        ...     headers = {"x-ratelimit-remaining": "12", "x-ratelimit-reset": "30"}
        >>> default_quota(Response(), now=0.0)
        (12.0, 30.0)
        >>> default_quota(object(), now=0.0) is None
        True
    """
    response = getattr(outcome, "response", None)
    headers = getattr(response if response is not None else outcome, "headers", None)
    if headers is None:
        return None
    remaining = _float(_header(headers, "ratelimit-remaining", "x-ratelimit-remaining"))
    reset = _float(_header(headers, "ratelimit-reset", "x-ratelimit-reset"))
    combined = _header(headers, "ratelimit")
    if combined is not None and (remaining is None or reset is None):
        parts = {m["key"]: float(m["value"]) for m in _COMBINED.finditer(combined)}
        remaining, reset = parts.get("r", remaining), parts.get("t", reset)
    if remaining is None or reset is None:
        return None
    if reset > _EPOCH_SECONDS:
        reset = max(reset - now, 0.0)
    return remaining, reset
