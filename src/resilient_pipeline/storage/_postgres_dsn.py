"""A PostgreSQL DSN checked when the store is built, and shown with its secrets masked.

Masking a DSN with a regular expression fails on the DSNs that most need it:
a password with ``@``, ``/`` or a space that was not percent-encoded makes
libpq read part of the password as the host, the port or the database name,
and then every message that names those quotes the password. So the DSN is
parsed by libpq itself (psycopg's ``conninfo_to_dict``) when the store is
built, and refused (with libpq's reason, every quoted fragment elided) when:

* libpq cannot parse it;
* it is a URI with an ``@`` after its ``user:password@`` part, which means
  the password held an ``@``, ``/``, ``?`` or ``#`` that was not encoded;
* its port is not a number (``postgresql://app:p/ss@...`` reads ``p`` as the port).

What is shown (reprs, errors) is rebuilt from the parsed parts with every
secret replaced by ``***``, and the secrets themselves are masked in any
message the driver gives later.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from resilient_pipeline._core import redact
from resilient_pipeline.exceptions import ConfigurationError

__all__ = ["Dsn", "parse_dsn"]

MASK = "***"
_SECRET_KEYS = ("password", "sslpassword")
_QUOTED = re.compile(r'"[^"]*"')
_URI = re.compile(r"(?P<scheme>postgres(?:ql)?://)(?P<rest>.*)", re.DOTALL)
_QUERY_SECRET = re.compile(r"(?<=[?&])(?P<key>(?:ssl)?password=)[^&]*")
_PORT = re.compile(r"[0-9,]*")
_HIDDEN = "<DSN, not shown: it may hold a password>"
# Masking a one- or two-character password everywhere would garble messages
# and hide next to nothing; libpq never quotes passwords in its messages anyway.
_MIN_MASKED = 3


@attrs.frozen(repr=False)
class Dsn:
    """A parsed DSN: what may be shown, and what must never be."""

    shown: str
    secrets: tuple[str, ...]

    def mask(self, text: str) -> str:
        """``text`` with every secret of this DSN (and any other credential) masked."""
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return redact(text)

    def __repr__(self) -> str:
        return f"Dsn({self.shown!r})"


def _refuse(problem: str) -> ConfigurationError:
    message = f"target={_HIDDEN} is invalid: {problem}"
    return ConfigurationError(message, option="target", value=_HIDDEN)


def _split_uri(rest: str) -> tuple[str | None, str]:
    """``(user info, everything after it)`` the way libpq splits a URI."""
    at, slash = rest.find("@"), rest.find("/")
    if at != -1 and (slash == -1 or at < slash):
        return rest[:at], rest[at + 1 :]
    return None, rest


def _shown_uri(scheme: str, userinfo: str | None, after: str) -> str:
    shown = scheme
    if userinfo is not None:
        user, has_password, _ = userinfo.partition(":")
        shown += f"{user}:{MASK}@" if has_password else f"{user}@"
    return shown + _QUERY_SECRET.sub(rf"\g<key>{MASK}", after)


def parse_dsn(dsn: str) -> Dsn:
    """Parse ``dsn`` with libpq; refuse one whose secrets could leak.

    Raises:
        ConfigurationError: naming ``target``, never showing the DSN.
    """
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params: dict[str, Any] | None = None
    reason = ""
    try:
        params = conninfo_to_dict(dsn)
    except ProgrammingError as exc:
        # libpq quotes the fragment it stumbled on, which may be part of the password.
        reason = redact(_QUOTED.sub('"..."', str(exc).strip()))
    if params is None:
        # Raised outside the except block: not even __context__ keeps libpq's message.
        raise _refuse(f"not a valid DSN: {reason}")
    secrets = {str(params[k]) for k in _SECRET_KEYS if params.get(k)}
    uri = _URI.fullmatch(dsn)
    if uri is not None:
        userinfo, after = _split_uri(uri["rest"])
        if "@" in after.partition("?")[0]:
            raise _refuse(
                "the URI has an '@' after its user:password part: percent-encode the "
                "password's '@' as %40, '/' as %2F, '?' as %3F, '#' as %23 and spaces as %20"
            )
        if userinfo is not None and ":" in userinfo:
            secrets.add(userinfo.partition(":")[2])  # as written, percent-encoded
        shown = _shown_uri(uri["scheme"], userinfo, after)
    else:
        masked = {k: (MASK if k in _SECRET_KEYS and v else v) for k, v in params.items()}
        shown = make_conninfo("", **masked)
    if not _PORT.fullmatch(str(params.get("port") or "")):
        raise _refuse(
            "its port is not a number (in a URI, a password with '/' must be "
            "percent-encoded as %2F)"
        )
    kept = tuple(sorted((s for s in secrets if len(s) >= _MIN_MASKED), key=len, reverse=True))
    return Dsn(shown, kept)
