"""HTTP helpers: which errors to retry, and the server's ``Retry-After``.

Works with ``httpx`` (the ``http`` extra), imported lazily.

Examples:
    >>> import httpx
    >>> from resilient_pipeline import retry_with_backoff
    >>> from resilient_pipeline.http import is_retryable_http_error
    >>> @retry_with_backoff(retry_if=is_retryable_http_error)
    ... def fetch(client: httpx.Client) -> bytes:
    ...     response = client.get("/insights")
    ...     response.raise_for_status()
    ...     return response.content
"""

from __future__ import annotations

from resilient_pipeline._core import RETRYABLE_STATUS_CODES, parse_retry_after
from resilient_pipeline.exceptions import MissingDependencyError

__all__ = ["RETRYABLE_STATUS_CODES", "httpx_retry_after", "is_retryable_http_error"]


def _require_httpx() -> None:
    try:
        import httpx  # noqa: F401
    except ImportError as exc:  # pragma: no cover - httpx is installed for the tests
        raise MissingDependencyError(package="httpx", extra="http", feature="HTTP helpers") from exc


def httpx_retry_after(error: object) -> float | None:
    """The ``Retry-After`` of an ``httpx.HTTPStatusError`` (or ``httpx.Response``), in seconds.

    Use it as ``retry_with_backoff(retry_after=httpx_retry_after)``; the
    default extractor already understands httpx, so this one matters when you
    want *only* HTTP hints.

    Examples:
        >>> import httpx
        >>> response = httpx.Response(429, headers={"Retry-After": "3"},
        ...                           request=httpx.Request("GET", "https://api.test/"))
        >>> error = httpx.HTTPStatusError("throttled", request=response.request,
        ...                               response=response)
        >>> httpx_retry_after(error)
        3.0
    """
    _require_httpx()
    import httpx

    if isinstance(error, httpx.HTTPStatusError):
        response: httpx.Response = error.response
    elif isinstance(error, httpx.Response):
        response = error
    else:
        return None
    return parse_retry_after(response.headers.get("retry-after"))


def is_retryable_http_error(error: Exception) -> bool:
    """Retry transport errors and statuses in :data:`RETRYABLE_STATUS_CODES`; not 4xx bugs.

    Examples:
        >>> import httpx
        >>> is_retryable_http_error(httpx.ConnectError("refused"))
        True
        >>> request = httpx.Request("GET", "https://api.test/")
        >>> error = httpx.HTTPStatusError("bad", request=request,
        ...                               response=httpx.Response(400, request=request))
        >>> is_retryable_http_error(error)
        False
    """
    _require_httpx()
    import httpx

    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code in RETRYABLE_STATUS_CODES
    return isinstance(error, httpx.TransportError)
