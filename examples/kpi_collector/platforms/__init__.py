"""The ad platforms the collector knows: their contracts and fetchers.

Examples:
    >>> from examples.kpi_collector.platforms import PLATFORMS
    >>> sorted(PLATFORMS), PLATFORMS["google_ads"].token_env
    (['google_ads', 'meta_ads'], 'KPI_GOOGLE_TOKEN')
"""

from __future__ import annotations

from .base import (
    AuthenticationError,
    Fetcher,
    PerKey,
    Platform,
    TokenRejectedError,
    UnexpectedAnswerError,
    Unit,
    unit_contract,
)
from .google import GoogleFetcher
from .meta import MetaFetcher

__all__ = [
    "GOOGLE",
    "META",
    "PLATFORMS",
    "AuthenticationError",
    "Fetcher",
    "GoogleFetcher",
    "MetaFetcher",
    "PerKey",
    "Platform",
    "TokenRejectedError",
    "UnexpectedAnswerError",
    "Unit",
    "unit_contract",
]

META = Platform(
    name="meta_ads",
    title="Meta Ads",
    token_env="KPI_META_TOKEN",  # noqa: S106 - the name of a variable, not a secret
    contract=unit_contract("meta_ads"),
    fetcher_type=MetaFetcher,
)
GOOGLE = Platform(
    name="google_ads",
    title="Google Ads",
    token_env="KPI_GOOGLE_TOKEN",  # noqa: S106 - the name of a variable, not a secret
    contract=unit_contract("google_ads"),
    fetcher_type=GoogleFetcher,
)
PLATFORMS: dict[str, Platform] = {META.name: META, GOOGLE.name: GOOGLE}
"""Every platform by its ledger name, in collection order."""
