"""Scrub secrets out of text before it reaches a log, an event or a repr."""

from __future__ import annotations

import re

__all__ = ["describe_error", "redact"]

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
_KEY_VALUE = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|secret|token|access_token|refresh_token|api_key|apikey"
    r"|client_secret|key|signature|sig|auth)\b)(?P<sep>['\"]?\s*[=:]\s*)(?P<quote>['\"]?)[^\s&'\",;]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<kind>Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)

MASK = "***"
_KEY_HINTS = ("pass", "pwd", "secret", "token", "key", "sig", "auth")


def redact(text: str) -> str:
    """Mask passwords in URLs/DSNs, ``token=...``-style pairs and bearer credentials.

    Examples:
        >>> redact("postgresql://app:s3cret@db/prod?sslmode=require")
        'postgresql://app:***@db/prod?sslmode=require'
        >>> redact("GET /v1/insights?access_token=abc123&fields=spend")
        'GET /v1/insights?access_token=***&fields=spend'
        >>> redact("password=hunter2 host=db")
        'password=*** host=db'
        >>> redact("Authorization: Bearer eyJhbGciOi")
        'Authorization: Bearer ***'
    """
    # Cheap substring tests first: most messages hold no secret, and the three
    # regexes cost microseconds on every retry event.
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<scheme>\g<user>:{MASK}@", text)
    lowered = text.lower()
    if ("=" in text or ":" in text) and any(hint in lowered for hint in _KEY_HINTS):
        text = _KEY_VALUE.sub(rf"\g<key>\g<sep>\g<quote>{MASK}", text)
    if "bearer" in lowered or "basic" in lowered or "token" in lowered:
        text = _BEARER.sub(rf"\g<kind> {MASK}", text)
    return text


def describe_error(exc: BaseException) -> str:
    """``"TypeName: message"`` with secrets masked, for events and notes.

    Examples:
        >>> describe_error(ConnectionError("https://u:pw@api.example/x refused"))
        'ConnectionError: https://u:***@api.example/x refused'
    """
    message = str(exc)
    name = type(exc).__qualname__
    return f"{name}: {redact(message)}" if message else name
