"""Server-given delays: the Retry-After header in both forms and the retry_after protocol."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import retry_with_backoff
from resilient_pipeline.http import (
    RETRYABLE_STATUS_CODES,
    httpx_retry_after,
    is_retryable_http_error,
)
from resilient_pipeline.retry import default_retry_after, parse_retry_after
from resilient_pipeline.testing import FakeClock

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        (b"3", 3.0),
        ("Sat, 28 Nov 2026 12:00:30 GMT", 30.0),
        ("Sat, 28 Nov 2026 11:00:00 GMT", 0.0),  # in the past
        ("Saturday, 28-Nov-26 12:01:00 GMT", 60.0),  # obsolete RFC 850 form
        ("Sat Nov 28 12:00:05 2026", 5.0),  # asctime form
    ],
)
def test_parse_both_forms(header: str | bytes, expected: float) -> None:
    """Delta-seconds and every HTTP-date form give seconds from now."""
    assert expected == parse_retry_after(header, now=NOW)


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5", "12abc", "Sat, 99 Foo 2026"])
def test_unparsable_headers_are_ignored(header: str | None) -> None:
    """A malformed header yields None instead of breaking the retry."""
    assert parse_retry_after(header, now=NOW) is None


@given(st.text())
def test_parser_never_raises(header: str) -> None:
    """Any header text gives None or a non-negative number."""
    value = parse_retry_after(header, now=NOW)
    assert value is None or value >= 0


@given(st.integers(min_value=0, max_value=10**9))
def test_delta_seconds_round_trip(seconds: int) -> None:
    """Delta-seconds parse to exactly that many seconds."""
    assert float(seconds) == parse_retry_after(str(seconds))


def test_http_date_uses_the_default_clock_wall_time() -> None:
    """Without now=, an HTTP date is measured against the default clock's time()."""
    from resilient_pipeline.testing import set_testing

    clock = FakeClock(wall_start=NOW)
    when = format_datetime(datetime.fromtimestamp(NOW + 42, tz=timezone.utc), usegmt=True)
    with set_testing(clock=clock):
        assert 42.0 == parse_retry_after(when)


def response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, headers=headers or {}, request=httpx.Request("GET", "https://api.test/x")
    )


def status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    resp = response(status, headers)
    return httpx.HTTPStatusError(f"{status}", request=resp.request, response=resp)


def test_default_extractor_reads_attribute_then_headers() -> None:
    """retry_after attribute first, then a Retry-After header on .response or the object."""
    assert 9.0 == default_retry_after(status_error(429, {"Retry-After": "9"}))
    assert 4.0 == default_retry_after(response(503, {"Retry-After": "4"}))
    assert default_retry_after(status_error(500)) is None
    assert default_retry_after(object()) is None

    class Weird:
        retry_after = float("nan")
        headers = None

    assert default_retry_after(Weird()) is None

    class BrokenHeaders:
        class headers:
            @staticmethod
            def get(name: str) -> str:
                raise RuntimeError("boom")

    assert default_retry_after(BrokenHeaders()) is None


def test_httpx_extractor() -> None:
    """httpx_retry_after reads the header of an HTTPStatusError or a Response."""
    assert 3.0 == httpx_retry_after(status_error(429, {"Retry-After": "3"}))
    assert 2.0 == httpx_retry_after(response(503, {"Retry-After": "2"}))
    assert httpx_retry_after(ValueError()) is None


@pytest.mark.parametrize("status", sorted(RETRYABLE_STATUS_CODES))
def test_retryable_statuses(status: int) -> None:
    """Throttling and transient server errors are retryable."""
    assert is_retryable_http_error(status_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 501])
def test_client_errors_are_not_retryable(status: int) -> None:
    """A 4xx (other than 408/425/429) is a bug or a bad token: never retried."""
    assert not is_retryable_http_error(status_error(status))


def test_transport_errors_are_retryable_and_others_not() -> None:
    """Network-level httpx errors are retried; unrelated errors are not."""
    assert is_retryable_http_error(httpx.ReadTimeout("slow"))
    assert not is_retryable_http_error(ValueError("x"))


def test_httpx_429_retry_after_end_to_end() -> None:
    """A real httpx client against a mock transport: a 429's Retry-After sets the wait."""
    statuses = iter([429, 503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        headers = {"Retry-After": "7"} if status == 429 else {}
        return httpx.Response(status, headers=headers, json={"rows": 3})

    clock = FakeClock()
    client = httpx.Client(transport=httpx.MockTransport(handler), base_url="https://api.test")

    @retry_with_backoff(retry_if=is_retryable_http_error, jitter=None, clock=clock)
    def fetch() -> int:
        resp = client.get("/conversions")
        resp.raise_for_status()
        return int(resp.json()["rows"])

    assert 3 == fetch()
    assert [7.0, 2.0] == clock.sleeps
