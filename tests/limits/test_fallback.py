"""Tests for ``fallback`` / ``Fallback``."""

from __future__ import annotations

import pytest

from resilient_pipeline import ConfigurationError, fallback
from resilient_pipeline.limits import Fallback, FallbackUsed
from resilient_pipeline.testing import capture_events


def test_value_replaces_a_chosen_error() -> None:
    """A chosen error is replaced by the value, with a FallbackUsed event."""

    @fallback([], on=ConnectionError, name="campaigns")
    def fetch() -> list[str]:
        raise ConnectionError("token=abc123 refused")

    with capture_events() as events:
        assert [] == fetch()
    used = [e for e in events if isinstance(e, FallbackUsed)]
    assert ["ConnectionError: token=*** refused"] == [e.error for e in used]
    assert ["campaigns"] == [e.source for e in used]


def test_other_errors_pass_through() -> None:
    """Errors outside ``on`` (and rejected by ``when``) propagate unchanged."""

    @fallback(0, on=ConnectionError, when=lambda e: "retry" in str(e))
    def fetch(error: Exception) -> int:
        raise error

    with pytest.raises(KeyError):
        fetch(KeyError("x"))
    with pytest.raises(ConnectionError, match="fatal"):
        fetch(ConnectionError("fatal"))
    assert 0 == fetch(ConnectionError("please retry"))


def test_configuration_errors_are_never_replaced() -> None:
    """A ConfigurationError says the code is wrong, so no fallback hides it."""

    @fallback(None)
    def fetch() -> None:
        raise ConfigurationError.for_option("limit", -1, "must be >= 0")

    with pytest.raises(ConfigurationError):
        fetch()


def test_call_gets_the_same_arguments() -> None:
    """``call`` is called with the decorated function's arguments."""

    def from_cache(day: str, *, account: str) -> str:
        return f"cached {day} {account}"

    @fallback(call=from_cache)
    def fetch(day: str, *, account: str) -> str:
        raise TimeoutError

    assert "cached d1 a1" == fetch("d1", account="a1")


@pytest.mark.anyio
async def test_async_function_with_async_and_sync_alternatives() -> None:
    """An async function may fall back to an async or a sync alternative."""

    async def async_cache(x: int) -> int:
        return x + 1

    def sync_cache(x: int) -> int:
        return x + 2

    @fallback(call=async_cache)
    async def first(x: int) -> int:
        raise OSError

    @fallback(call=sync_cache)
    async def second(x: int) -> int:
        raise OSError

    assert (2, 3) == (await first(1), await second(1))


def test_async_alternative_for_sync_function_is_refused() -> None:
    """A sync function cannot await an async alternative: refused at decoration."""

    async def cache() -> int:
        return 1

    with pytest.raises(ConfigurationError) as info:
        fallback(call=cache)(lambda: 1)
    assert "call" == info.value.option


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({}, "value"),
        ({"value": 1, "call": print}, "value"),
        ({"value": 1, "on": KeyboardInterrupt}, "on"),
        ({"value": 1, "when": 3}, "when"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], option: str) -> None:
    """Missing, doubled or invalid options are refused at construction."""
    with pytest.raises(ConfigurationError) as info:
        Fallback(**options)  # type: ignore[arg-type]
    assert option == info.value.option
