"""The Meta-like platform: cursor-paged insights and conversions, money as decimal strings.

Its shape, which :func:`transform` turns into the unit:

* ``GET /meta/v19.0/act_{client}/insights?level=campaign&time_range=...``:
  ``{"data": [{"campaign_id", "campaign_name", "impressions": "123",
  "clicks": "4", "spend": "12.34", "date_start", "date_stop"}], "paging":
  {"cursors": {"after": C}, "next": URL}}`` (``next`` only when more pages);
* ``GET /meta/v19.0/act_{client}/conversions?date=D``: ``{"data":
  [{"campaign_id", "date", "actions": [{"action_type": "click_to_call",
  "value": "3"}, ...]}]}``; zero actions are left out, other action types
  (``link_click``, ...) are not conversions and are ignored.
* the new version, ``GET /meta/v20.0/act_{client}/conversions?date=D``, used for
  the clients the ``new_conversions_endpoint`` feature flag turns on:
  ``{"data": [{"campaign_id", "date_start", "date_stop", "actions":
  {"click_to_call": 3, ...}}]}``: the actions as one object by type, the day
  as a span (:func:`transform_v20` turns it into the old shape).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .base import (
    CONVERSION_KINDS,
    Fetcher,
    UnexpectedAnswerError,
    Unit,
    exact_int,
    exact_micros,
    iso_day,
)

__all__ = ["ACTIONS", "NEW_CONVERSIONS_FLAG", "MetaFetcher", "transform", "transform_v20"]

PLATFORM = "meta_ads"
ACTIONS = {"click_to_call": "calls", "email_contact": "emails", "reservation": "reservations"}
"""Meta action type → the unit's conversion field."""

_FIELDS = "campaign_id,campaign_name,impressions,clicks,spend"

NEW_CONVERSIONS_FLAG = "new_conversions_endpoint"
"""The feature flag (keyed by client id) that sends a client's conversions to v20.0."""


def _rows(rows: Sequence[object], what: str) -> list[Mapping[str, Any]]:
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise UnexpectedAnswerError(f"{PLATFORM}: {what}[{index}] is not an object")
    return [row for row in rows if isinstance(row, Mapping)]


def _add(counts: dict[str, object], kind: str, value: object) -> None:
    before = counts[kind]
    if isinstance(before, int) and isinstance(value, int) and not isinstance(value, bool):
        counts[kind] = before + value
    else:  # not a whole number: kept as it came, for the contract to name
        counts[kind] = value


def transform(client_id: int, insights: Sequence[object], conversions: Sequence[object]) -> Unit:
    """Meta's answers as the collector's unit: ints exact, spend in integer micros.

    A value that cannot be converted exactly is kept as it came, so the
    partition contract reports it (with its field) instead of a guess.

    Examples:
        >>> unit = transform(
        ...     7,
        ...     [{"campaign_id": "1", "campaign_name": "Brand", "impressions": "100",
        ...       "clicks": "5", "spend": "12.34", "date_start": "2026-11-28",
        ...       "date_stop": "2026-11-28"}],
        ...     [{"campaign_id": "1", "date": "2026-11-28", "actions": [
        ...       {"action_type": "link_click", "value": "5"},
        ...       {"action_type": "reservation", "value": "2"}]}],
        ... )
        >>> unit["campaigns"][0]["spend_micros"], unit["conversions"][0]["reservations"]
        (12340000, 2)
        >>> unit["conversions"][0]["calls"], unit["conversions"][0]["date"]
        (0, datetime.date(2026, 11, 28))
    """
    campaigns = []
    for row in _rows(insights, "insights"):
        start, stop = row.get("date_start"), row.get("date_stop")
        day = iso_day(start) if start == stop else f"{start}..{stop}"  # a span is not a day
        campaigns.append(
            {
                "platform": PLATFORM,
                "client_id": client_id,
                "date": day,
                "campaign_id": row.get("campaign_id"),
                "campaign_name": row.get("campaign_name"),
                "impressions": exact_int(row.get("impressions")),
                "clicks": exact_int(row.get("clicks")),
                "spend_micros": exact_micros(row.get("spend")),
            }
        )
    converted = []
    for item in _rows(conversions, "conversions"):
        counts: dict[str, object] = dict.fromkeys(CONVERSION_KINDS, 0)
        actions = item.get("actions") or []
        if not isinstance(actions, list):
            raise UnexpectedAnswerError(f"{PLATFORM}: conversions actions is not a list")
        for action in _rows(actions, "actions"):
            kind = ACTIONS.get(str(action.get("action_type")))
            if kind is not None:
                _add(counts, kind, exact_int(action.get("value")))
        converted.append(
            {
                "platform": PLATFORM,
                "client_id": client_id,
                "date": iso_day(item.get("date")),
                "campaign_id": item.get("campaign_id"),
                **counts,
            }
        )
    return {"campaigns": campaigns, "conversions": converted}


def transform_v20(conversions: Sequence[object]) -> list[object]:
    """v20.0 conversions rows in the v19.0 shape, for :func:`transform`.

    Anything unexpected is passed on as it came (a span of days stays a span,
    an ``actions`` that is not an object is given as is), so :func:`transform`
    and the contract name it.

    Examples:
        >>> transform_v20([{"campaign_id": "1", "date_start": "2026-11-28",
        ...                 "date_stop": "2026-11-28",
        ...                 "actions": {"link_click": 5, "reservation": 2}}])
        [{'campaign_id': '1', 'date': '2026-11-28', 'actions': [{'action_type': 'link_click', \
'value': 5}, {'action_type': 'reservation', 'value': 2}]}]
    """
    rows: list[object] = []
    for index, row in enumerate(conversions):
        if not isinstance(row, Mapping):
            raise UnexpectedAnswerError(f"{PLATFORM}: conversions[{index}] is not an object")
        start, stop = row.get("date_start"), row.get("date_stop")
        actions = row.get("actions") or {}
        if not isinstance(actions, Mapping):
            raise UnexpectedAnswerError(f"{PLATFORM}: v20.0 conversions actions is not an object")
        rows.append(
            {
                "campaign_id": row.get("campaign_id"),
                "date": start if start == stop else f"{start}..{stop}",
                "actions": [{"action_type": k, "value": v} for k, v in actions.items()],
            }
        )
    return rows


class MetaFetcher(Fetcher):
    """Fetches Meta-like units: insights and conversions, every page (see :class:`Fetcher`)."""

    platform = PLATFORM
    prefix = "meta"

    async def _fetch(self, client_id: int, day: dt.date) -> Unit:
        base = f"/meta/v19.0/act_{client_id}"
        span = json.dumps({"since": day.isoformat(), "until": day.isoformat()})
        insights = await self._pages(
            client_id,
            f"{base}/insights",
            {"level": "campaign", "fields": _FIELDS, "time_range": span},
        )
        if self.flags is not None and self.flags.enabled(NEW_CONVERSIONS_FLAG, key=client_id):
            path = f"/meta/v20.0/act_{client_id}/conversions"
            answer = await self._pages(client_id, path, {"date": day.isoformat()})
            conversions = transform_v20(answer)
        else:
            path = f"{base}/conversions"
            conversions = await self._pages(client_id, path, {"date": day.isoformat()})
        return transform(client_id, insights, conversions)

    async def _pages(self, client_id: int, path: str, params: Mapping[str, str]) -> list[object]:
        """Every row of every page, following the ``after`` cursor until there is no ``next``."""
        rows: list[object] = []
        seen: set[str] = set()
        after: str | None = None
        while True:
            query: dict[str, str | int] = {**params, "limit": self.page_size}
            if after is not None:
                query["after"] = after
            body = await self.request(client_id, "GET", path, params=query)
            data = body.get("data") if isinstance(body, Mapping) else None
            if not isinstance(data, list):
                raise UnexpectedAnswerError(f"{PLATFORM}: {path}: the answer has no data list")
            rows.extend(data)
            paging = body.get("paging") or {}
            if not isinstance(paging, Mapping) or not paging.get("next"):
                return rows
            cursors = paging.get("cursors") or {}
            after = cursors.get("after") if isinstance(cursors, Mapping) else None
            if not isinstance(after, str) or not after or after in seen:
                raise UnexpectedAnswerError(f"{PLATFORM}: {path}: paging has no new cursor")
            seen.add(after)
