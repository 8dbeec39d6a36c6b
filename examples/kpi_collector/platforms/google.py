"""The Google-Ads-like platform: GAQL searches, page tokens, costs in micros.

Its shape, which :func:`transform` turns into the unit:

* ``POST /google/v17/customers/{client}/googleAds:search`` with
  ``{"query": GAQL, "pageSize": N, "pageToken": T}`` answers ``{"results":
  [...], "nextPageToken": T}``; ``results`` is left out when there are none;
* campaign rows: ``{"campaign": {"id", "name"}, "metrics": {"impressions":
  "123", "clicks": "4", "costMicros": "12340000"}, "segments": {"date"}}``;
* conversion rows, one per (campaign, category): ``{"campaign": {"id"},
  "segments": {"date", "conversionActionCategory": "PHONE_CALL_LEAD"},
  "metrics": {"allConversions": 3.0}}`` (a float); the categories of a
  campaign are summed, other categories are not conversions here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from .base import (
    CONVERSION_KINDS,
    Fetcher,
    UnexpectedAnswerError,
    Unit,
    exact_int,
    iso_day,
)

__all__ = ["CATEGORIES", "GoogleFetcher", "transform"]

PLATFORM = "google_ads"
CATEGORIES = {"PHONE_CALL_LEAD": "calls", "CONTACT": "emails", "BOOK_APPOINTMENT": "reservations"}
"""Google conversion action category → the unit's conversion field."""

CAMPAIGNS_QUERY = (
    "SELECT campaign.id, campaign.name, metrics.impressions, metrics.clicks, "
    "metrics.cost_micros, segments.date FROM campaign WHERE segments.date = '{day}'"
)
CONVERSIONS_QUERY = (
    "SELECT campaign.id, segments.date, segments.conversion_action_category, "
    "metrics.all_conversions FROM campaign WHERE segments.date = '{day}'"
)


def _part(row: object, name: str, index: int) -> Mapping[str, Any]:
    if not isinstance(row, Mapping):
        raise UnexpectedAnswerError(f"{PLATFORM}: results[{index}] is not an object")
    part = row.get(name, {})
    if not isinstance(part, Mapping):
        raise UnexpectedAnswerError(f"{PLATFORM}: results[{index}].{name} is not an object")
    return part


def transform(client_id: int, campaigns: Sequence[object], conversions: Sequence[object]) -> Unit:
    """Google's search results as the collector's unit: ints exact, costs already micros.

    A value that is not a whole number (``allConversions: 2.5``) is kept as it
    came, so the partition contract reports it instead of a rounded guess.

    Examples:
        >>> unit = transform(
        ...     7,
        ...     [{"campaign": {"id": "9", "name": "Brand"}, "segments": {"date": "2026-11-28"},
        ...       "metrics": {"impressions": "100", "clicks": "5", "costMicros": "1234567"}}],
        ...     [{"campaign": {"id": "9"}, "metrics": {"allConversions": 2.0},
        ...       "segments": {"date": "2026-11-28", "conversionActionCategory": "CONTACT"}},
        ...      {"campaign": {"id": "9"}, "metrics": {"allConversions": 1.0},
        ...       "segments": {"date": "2026-11-28", "conversionActionCategory": "CONTACT"}}],
        ... )
        >>> unit["campaigns"][0]["spend_micros"], unit["conversions"][0]["emails"]
        (1234567, 3)
    """
    rows = []
    for index, result in enumerate(campaigns):
        campaign, metrics = _part(result, "campaign", index), _part(result, "metrics", index)
        rows.append(
            {
                "platform": PLATFORM,
                "client_id": client_id,
                "date": iso_day(_part(result, "segments", index).get("date")),
                "campaign_id": campaign.get("id"),
                "campaign_name": campaign.get("name"),
                "impressions": exact_int(metrics.get("impressions")),
                "clicks": exact_int(metrics.get("clicks")),
                "spend_micros": exact_int(metrics.get("costMicros")),
            }
        )
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for index, result in enumerate(conversions):
        segments = _part(result, "segments", index)
        campaign_id, day = _part(result, "campaign", index).get("id"), segments.get("date")
        row = grouped.setdefault(
            (repr(campaign_id), repr(day)),
            {
                "platform": PLATFORM,
                "client_id": client_id,
                "date": iso_day(day),
                "campaign_id": campaign_id,
                **dict.fromkeys(CONVERSION_KINDS, 0),
            },
        )
        kind = CATEGORIES.get(str(segments.get("conversionActionCategory")))
        if kind is None:
            continue
        value = exact_int(_part(result, "metrics", index).get("allConversions"))
        before = row[kind]
        if isinstance(before, int) and isinstance(value, int) and not isinstance(value, bool):
            row[kind] = before + value
        else:  # not a whole number: kept as it came, for the contract to name
            row[kind] = value
    return {"campaigns": rows, "conversions": list(grouped.values())}


class GoogleFetcher(Fetcher):
    """Fetches Google-Ads-like units: two searches, every page (see :class:`Fetcher`)."""

    platform = PLATFORM
    prefix = "google"

    async def _fetch(self, client_id: int, day: dt.date) -> Unit:
        path = f"/google/v17/customers/{client_id}/googleAds:search"
        campaigns = await self._pages(client_id, path, CAMPAIGNS_QUERY.format(day=day.isoformat()))
        conversions = await self._pages(
            client_id, path, CONVERSIONS_QUERY.format(day=day.isoformat())
        )
        return transform(client_id, campaigns, conversions)

    async def _pages(self, client_id: int, path: str, query: str) -> list[object]:
        """Every result of every page, following ``nextPageToken``."""
        results: list[object] = []
        seen: set[str] = set()
        token: str | None = None
        while True:
            body: dict[str, Any] = {"query": query, "pageSize": self.page_size}
            if token is not None:
                body["pageToken"] = token
            answer = await self.request(client_id, "POST", path, json=body)
            if not isinstance(answer, Mapping):
                raise UnexpectedAnswerError(f"{PLATFORM}: {path}: the answer is not an object")
            page = answer.get("results", [])  # left out when there are none
            if not isinstance(page, list):
                raise UnexpectedAnswerError(f"{PLATFORM}: {path}: results is not a list")
            results.extend(page)
            token = answer.get("nextPageToken") or None
            if token is None:
                return results
            if not isinstance(token, str) or token in seen:
                raise UnexpectedAnswerError(f"{PLATFORM}: {path}: paging has no new page token")
            seen.add(token)
