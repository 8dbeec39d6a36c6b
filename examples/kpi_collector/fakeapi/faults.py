"""What the fake ad platforms get wrong, and when: a seeded, pure fault plan.

Faults are decided per *thing asked for*: one page of one endpoint for one
(client, day). The same seed gives the same faults, and by default a fault
hits only the first ask of its thing (``repeat=1``), so a retry, a later
attempt or the next run gets the true answer: every fault is transient and
the truth is always reachable. ``permanent=True`` makes every ask of a
faulted thing fail; ``down`` and ``illogical`` name what fails for as long as
it stays in the set (the demo removes it when "the platform recovers").
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Hashable, Sequence
from typing import Any

import attrs

__all__ = ["FAULT_KINDS", "Faults", "Outage"]

FAULT_KINDS = (
    "server_error",  # 503 with an error body
    "throttle",  # 429 with Retry-After
    "timeout",  # the server hangs longer than the client waits, then answers
    "drop",  # the connection closes without a response
    "token_expiry",  # 401: the access token presented just expired
    "empty",  # 200 with no rows (first page of campaigns or conversions)
    "partial",  # 200 with half of a conversions page missing
    "illogical",  # 200 with a campaign row whose clicks exceed its impressions
)
"""Every fault kind a :class:`Faults` plan can inject (besides outages and down accounts)."""

# Kinds that apply to every data request; the others only to some pages.
TRANSPORT_KINDS = ("server_error", "throttle", "timeout", "drop", "token_expiry")


def _kinds(value: Sequence[str]) -> tuple[str, ...]:
    kinds = tuple(value)
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds={value!r}: give some of {', '.join(FAULT_KINDS)}")
    return kinds


def _rate(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name}={value!r} must be between 0 and 1")


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name}={value!r} must be >= 0")


def _uniform(*parts: object) -> float:
    """A stable number in [0, 1) from ``parts``."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@attrs.frozen
class Outage:
    """A platform outage: its data requests number ``start`` .. ``start + length - 1`` get 503.

    Requests are numbered per platform from 1, in the order the server
    receives them (token refreshes not counted).

    Examples:
        >>> outage = Outage("google_ads", start=10, length=3)
        >>> [n for n in range(1, 20) if outage.covers("google_ads", n)]
        [10, 11, 12]
    """

    platform: str
    start: int = attrs.field(validator=attrs.validators.ge(1))
    length: int = attrs.field(validator=attrs.validators.ge(1))

    def covers(self, platform: str, number: int) -> bool:
        """Whether request ``number`` to ``platform`` falls in the outage."""
        return platform == self.platform and self.start <= number < self.start + self.length


@attrs.define
class Faults:
    """The fault plan: which asks fail, how, reproducibly.

    Args:
        rate: Share of first asks (of each page of each endpoint for each
            partition) that get a fault, in [0, 1]; ``0`` serves the truth.
        seed: Chooses which asks fail and how.
        kinds: The kinds to draw from (default: all of :data:`FAULT_KINDS`).
            Each faulted ask gets one kind, drawn evenly from those that apply
            to it (``empty`` only to first pages, ``partial`` to conversions,
            ``illogical`` to campaigns).
        repeat: A faulted thing fails its first ``repeat`` asks, then answers true.
        permanent: Faulted things fail every ask (the truth is never reached).
        retry_after: Seconds in a throttled answer's ``Retry-After`` header.
        hang: Seconds a ``timeout`` fault holds the answer back (keep the
            client's timeout shorter).
        outage: One platform outage window (:class:`Outage`), or ``None``.
        down: Accounts ``(platform, client)`` that answer 503 to everything
            while they are in the set.
        illogical: Partitions ``(platform, client, day)`` whose campaigns carry
            an illogical row while they are in the set.

    Examples:
        >>> faults = Faults(rate=1.0, kinds=("throttle",))
        >>> faults.decide(("meta.insights", 1, "2026-11-28", ""), 1, ("throttle", "drop"))
        'throttle'
        >>> faults.decide(("meta.insights", 1, "2026-11-28", ""), 2, ("throttle",)) is None
        True
    """

    rate: float = attrs.field(default=0.0, kw_only=True, validator=_rate)
    seed: int = attrs.field(default=0, kw_only=True)
    kinds: tuple[str, ...] = attrs.field(default=FAULT_KINDS, kw_only=True, converter=_kinds)
    repeat: int = attrs.field(default=1, kw_only=True, validator=attrs.validators.ge(1))
    permanent: bool = attrs.field(default=False, kw_only=True)
    retry_after: int = attrs.field(default=1, kw_only=True, validator=_non_negative)
    hang: float = attrs.field(default=1.0, kw_only=True, validator=_non_negative)
    outage: Outage | None = attrs.field(default=None, kw_only=True)
    down: set[tuple[str, int]] = attrs.field(factory=set, kw_only=True)
    illogical: set[tuple[str, int, dt.date]] = attrs.field(factory=set, kw_only=True)

    @classmethod
    def demo(cls, *, seed: int = 0, rate: float = 0.2) -> Faults:
        """The demo's plan: ``rate`` of first asks fail, every kind, and a Google outage."""
        return cls(rate=rate, seed=seed, outage=Outage("google_ads", start=60, length=25))

    def decide(self, thing: Hashable, ask: int, applicable: Sequence[str]) -> str | None:
        """The fault for the ``ask``-th ask (from 1) of ``thing``, or ``None`` to answer true.

        Pure: the same plan, thing and ask always give the same answer.
        """
        kinds = [kind for kind in applicable if kind in self.kinds]
        if not kinds or self.rate == 0.0 or (ask > self.repeat and not self.permanent):
            return None
        if _uniform(self.seed, thing, "rate") >= self.rate:
            return None
        return kinds[int(_uniform(self.seed, thing, "kind") * len(kinds))]
