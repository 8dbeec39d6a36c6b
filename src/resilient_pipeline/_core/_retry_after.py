"""Server-given delays: the ``Retry-After`` header and the ``retry_after`` protocol."""

from __future__ import annotations

import math

from ._clock import get_default_clock

__all__ = ["default_retry_after", "parse_retry_after"]


RETRYABLE_STATUS_CODES: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: timeouts, throttling and transient server errors."""


def parse_retry_after(value: str | bytes | None, *, now: float | None = None) -> float | None:
    """Seconds to wait, read from an HTTP ``Retry-After`` header value.

    Both forms of RFC 9110 are understood: delta-seconds (``"120"``) and an
    HTTP-date (``"Wed, 21 Oct 2026 07:28:00 GMT"``), measured against ``now``
    (wall-clock epoch seconds; the default clock's ``time()`` when omitted).
    A date in the past gives ``0.0``. Anything unparsable gives ``None``:
    a malformed header must never stop a retry.

    Examples:
        >>> parse_retry_after("120")
        120.0
        >>> parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=30.0)
        30.0
        >>> parse_retry_after("soon") is None
        True
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    from datetime import timezone  # like email.utils: only dates need it
    from email.utils import parsedate_to_datetime  # 15-20 ms to import; dates are rare

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # the asctime form carries no zone; RFC 9110 dates are all GMT
        when = when.replace(tzinfo=timezone.utc)
    if now is None:
        now = get_default_clock().time()
    return max(0.0, when.timestamp() - now)


def to_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def default_retry_after(outcome: object) -> float | None:
    """The server-given delay carried by an exception or a result, if any.

    Looked up, in order: a numeric ``retry_after`` attribute (the
    :class:`~resilient_pipeline.typing.SupportsRetryAfter` protocol, which
    ``RejectedError`` follows); then a ``Retry-After`` header on the object's
    ``response`` (``httpx.HTTPStatusError``, ``requests.HTTPError``) or on the
    object itself when it has ``headers`` (an ``httpx.Response`` returned as a
    result). No HTTP library is imported.

    Examples:
        >>> class Throttled(Exception):
        ...     retry_after = 7
        >>> default_retry_after(Throttled())
        7.0
        >>> default_retry_after(ValueError()) is None
        True
    """
    hint = to_number(getattr(outcome, "retry_after", None))
    if hint is not None:
        return hint
    response = getattr(outcome, "response", None)
    holder = response if response is not None else outcome
    headers = getattr(holder, "headers", None)
    if headers is None:
        return None
    try:
        header = headers.get("retry-after")
    except Exception:
        return None
    return parse_retry_after(header) if isinstance(header, (str, bytes)) else None
