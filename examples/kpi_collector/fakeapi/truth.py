"""The ground truth behind the fake ad platforms: every number, derived from one seed.

Every (platform, client, day) has a fixed answer, computed from the seed
alone, so a test knows what the collector *should* have stored without
asking the server. The answer is given in the collector's own unit format
(what a fetcher returns after its transformer), so tests compare the database
with :meth:`GroundTruth.unit` value by value.

What the data holds, on purpose:

* each client runs 2-4 campaigns per platform; every campaign has a row every
  day (a paused campaign reports zeros);
* about one partition in twenty is a *zero day*: every campaign answered
  with zero spend, and there are no conversions. It is complete;
* a campaign that spent always has a conversions row, often a genuine zero;
* money is integer micros: Meta spends whole cents (it reports "12.34"),
  Google any number of micros (it reports ``costMicros``);
* a *restated* partition (:meth:`GroundTruth.restate`) answers +10% spend
  from then on, exactly (integer arithmetic).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable
from typing import Any

import attrs

__all__ = [
    "CONVERSION_KINDS",
    "PLATFORM_NAMES",
    "Campaign",
    "GroundTruth",
    "Unit",
    "as_day",
]

Unit = dict[str, list[dict[str, Any]]]
"""One partition's collections: ``{"campaigns": [...], "conversions": [...]}``."""

PLATFORM_NAMES = ("meta_ads", "google_ads")
"""The platforms the fake serves (ledger ``source`` names)."""

CONVERSION_KINDS = ("calls", "emails", "reservations")
"""The three kinds of conversion, as unit fields."""

# Meta reports spend in cents ("12.34"); Google in micros. Restated spend keeps the quantum.
_QUANTUM = {"meta_ads": 10_000, "google_ads": 1}
_NAMES = (
    "Brand search",
    "Local reach",
    "Retargeting",
    "Seasonal promo",
    "Calls only",
    "Table bookings",
)
_ZERO_DAY = 0.05
_PAUSED = 0.10


def as_day(value: dt.date | str) -> dt.date:
    """A day from a ``date`` or an ISO string.

    Examples:
        >>> as_day("2026-11-28"), as_day(dt.date(2026, 11, 28))
        (datetime.date(2026, 11, 28), datetime.date(2026, 11, 28))
    """
    if isinstance(value, dt.datetime):
        raise TypeError(f"a day is a date, not a datetime: {value!r}")
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def _platform(platform: str) -> str:
    if platform not in PLATFORM_NAMES:
        raise ValueError(f"unknown platform {platform!r} (have: {', '.join(PLATFORM_NAMES)})")
    return platform


def _client(client: int | str) -> int:
    number = int(client)
    if number < 1:
        raise ValueError(f"client ids start at 1, not {client!r}")
    return number


@attrs.frozen
class Campaign:
    """A campaign of a client on a platform: its id and name never change."""

    campaign_id: str
    name: str


@attrs.define
class GroundTruth:
    """What each platform answers for every (client, day), derived from ``seed``.

    Args:
        seed: Same seed, same numbers (on every machine and Python version).
        restated: Partitions ``(platform, client, day)`` answered restated (+10% spend).

    Examples:
        >>> truth = GroundTruth(seed=7)
        >>> unit = truth.unit("google_ads", 3, "2026-11-28")
        >>> sorted(unit), unit == GroundTruth(seed=7).unit("google_ads", 3, "2026-11-28")
        (['campaigns', 'conversions'], True)
        >>> before = truth.daily_kpi("meta_ads", 3, "2026-11-28")["spend_micros"]
        >>> truth.restate("meta_ads", 3, "2026-11-28")
        >>> truth.daily_kpi("meta_ads", 3, "2026-11-28")["spend_micros"] > before or before == 0
        True
    """

    seed: int = 0
    restated: set[tuple[str, int, dt.date]] = attrs.field(factory=set)

    # -- the campaigns -------------------------------------------------------------
    def campaigns_of(self, platform: str, client: int | str) -> tuple[Campaign, ...]:
        """The 2-4 campaigns ``client`` runs on ``platform`` (the same every day)."""
        platform, client = _platform(platform), _client(client)
        rng = random.Random(f"{self.seed}|{platform}|{client}|campaigns")
        count = rng.randint(2, 4)
        names = rng.sample(_NAMES, count)
        if platform == "meta_ads":
            ids = [f"2385{client:04d}{n:05d}" for n in rng.sample(range(1, 99_999), count)]
        else:
            ids = [str(client * 100_000_000 + n) for n in rng.sample(range(1, 9_999_999), count)]
        return tuple(Campaign(i, f"{name} #{client}") for i, name in zip(ids, names, strict=True))

    # -- one partition -------------------------------------------------------------
    def is_zero_day(self, platform: str, client: int | str, day: dt.date | str) -> bool:
        """Whether every campaign of the partition answers zero spend (and no conversions)."""
        return self._rng(platform, client, day, "zero").random() < _ZERO_DAY

    def is_restated(self, platform: str, client: int | str, day: dt.date | str) -> bool:
        """Whether the partition answers its restated numbers now."""
        return (_platform(platform), _client(client), as_day(day)) in self.restated

    def restate(self, platform: str, client: int | str, day: dt.date | str) -> None:
        """From now on the partition answers +10% spend (the platform corrected its report)."""
        self.restated.add((_platform(platform), _client(client), as_day(day)))

    def unit(
        self, platform: str, client: int | str, day: dt.date | str, *, version: int | None = None
    ) -> Unit:
        """The partition as a fetcher returns it (transformed); fresh lists every call.

        Args:
            version: ``0`` the original answer, ``1`` the restated one, ``None``
                whichever the platform answers now.
        """
        platform, client, day = _platform(platform), _client(client), as_day(day)
        if version is None:
            version = int((platform, client, day) in self.restated)
        if version not in (0, 1):
            raise ValueError(f"version must be 0, 1 or None, not {version!r}")
        zero_day = self.is_zero_day(platform, client, day)
        campaigns: list[dict[str, Any]] = []
        conversions: list[dict[str, Any]] = []
        for campaign in self.campaigns_of(platform, client):
            rng = self._rng(platform, client, day, campaign.campaign_id)
            paused = rng.random() < _PAUSED
            key = {
                "platform": platform,
                "client_id": client,
                "date": day,
                "campaign_id": campaign.campaign_id,
            }
            if zero_day or paused:
                metrics = {"impressions": 0, "clicks": 0, "spend_micros": 0}
            else:
                metrics = self._metrics(rng, platform, version)
            campaigns.append({**key, "campaign_name": campaign.name, **metrics})
            if metrics["spend_micros"] > 0:
                clicks = metrics["clicks"]
                counts = {kind: rng.randint(0, clicks // 25) for kind in CONVERSION_KINDS}
                conversions.append({**key, **counts})
        return {"campaigns": campaigns, "conversions": conversions}

    def campaigns(
        self, platform: str, client: int | str, day: dt.date | str, *, version: int | None = None
    ) -> list[dict[str, Any]]:
        """The partition's campaign rows (see :meth:`unit`)."""
        return self.unit(platform, client, day, version=version)["campaigns"]

    def conversions(
        self, platform: str, client: int | str, day: dt.date | str, *, version: int | None = None
    ) -> list[dict[str, Any]]:
        """The partition's conversions rows (see :meth:`unit`)."""
        return self.unit(platform, client, day, version=version)["conversions"]

    # -- aggregates ----------------------------------------------------------------
    def daily_kpi(
        self, platform: str, client: int | str, day: dt.date | str, *, version: int | None = None
    ) -> dict[str, Any]:
        """The partition's ``daily_kpi_data`` row: totals over its campaigns.

        ``campaigns`` counts campaign rows (zero rows included); ``conversions``
        is ``calls + emails + reservations``.
        """
        unit = self.unit(platform, client, day, version=version)
        totals = _totals(unit["campaigns"], unit["conversions"])
        return {
            "client_id": _client(client),
            "date": as_day(day),
            "platform": platform,
            "campaigns": len(unit["campaigns"]),
            **totals,
            "conversions": sum(totals[k] for k in CONVERSION_KINDS),
        }

    def monthly(
        self, platform: str, client: int | str, month: str, days: Iterable[dt.date | str]
    ) -> dict[str, dict[str, int]]:
        """``campaign_summaries`` of ``month`` ('YYYY-MM') over the collected ``days``.

        Only the days of ``month`` among ``days`` count; each campaign's
        ``days`` is how many of them it has a row for (every one, zeros included).
        """
        summaries: dict[str, dict[str, int]] = {}
        for day in sorted({as_day(d) for d in days}):
            if day.isoformat()[:7] != month:
                continue
            unit = self.unit(platform, client, day)
            converted = {row["campaign_id"]: row for row in unit["conversions"]}
            for row in unit["campaigns"]:
                summary = summaries.setdefault(
                    row["campaign_id"],
                    dict.fromkeys(("days", "impressions", "clicks", "spend_micros"), 0)
                    | dict.fromkeys(CONVERSION_KINDS, 0),
                )
                summary["days"] += 1
                for field in ("impressions", "clicks", "spend_micros"):
                    summary[field] += row[field]
                for kind in CONVERSION_KINDS:
                    summary[kind] += converted.get(row["campaign_id"], {}).get(kind, 0)
        return summaries

    def pick(
        self,
        count: int,
        *,
        platforms: Iterable[str] = PLATFORM_NAMES,
        clients: Iterable[int],
        days: Iterable[dt.date | str],
        salt: str = "pick",
    ) -> list[tuple[str, int, dt.date]]:
        """``count`` partitions drawn from the seed (to restate, to break): same seed, same pick."""
        everything = [
            (_platform(p), _client(c), as_day(d)) for p in platforms for c in clients for d in days
        ]
        return random.Random(f"{self.seed}|{salt}").sample(everything, min(count, len(everything)))

    # -- internals -----------------------------------------------------------------
    def _rng(
        self, platform: str, client: int | str, day: dt.date | str, what: str
    ) -> random.Random:
        key = f"{self.seed}|{_platform(platform)}|{_client(client)}|{as_day(day)}|{what}"
        return random.Random(key)  # str seeds hash with SHA-512: stable everywhere

    @staticmethod
    def _metrics(rng: random.Random, platform: str, version: int) -> dict[str, int]:
        impressions = rng.randint(200, 20_000)
        clicks = rng.randint(0, impressions // 12)
        cents = max(1, clicks * rng.randint(20, 250) + rng.randint(0, 500))
        spend = cents * 10_000 + (rng.randint(0, 9_999) if platform == "google_ads" else 0)
        if version == 1:
            quantum = _QUANTUM[platform]
            spend += max(quantum, spend // 10 // quantum * quantum)  # always differs
        return {"impressions": impressions, "clicks": clicks, "spend_micros": spend}


def _totals(campaigns: list[dict[str, Any]], conversions: list[dict[str, Any]]) -> dict[str, int]:
    totals = {f: sum(r[f] for r in campaigns) for f in ("impressions", "clicks", "spend_micros")}
    return totals | {kind: sum(r[kind] for r in conversions) for kind in CONVERSION_KINDS}
