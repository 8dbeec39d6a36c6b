"""How a rate limiter shows a bucket's key: hashed, or through the user's label, never raw.

Keys are often credentials (one bucket per API token), and ``redact()``
cannot recognise a bare token, so no key ever leaves a limiter as it is:
errors, events, logs and Redis key names all go through this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from typing import Any

from resilient_pipeline._core import redact

__all__ = ["KeyLabel", "key_digest", "shown_key"]

KeyLabel = Callable[[Any], str]

# Enough to tell keys apart in a log; the full digest names the Redis key.
_SHOWN_DIGITS = 12


def key_digest(key: Hashable) -> str:
    """The SHA-256 of ``repr(key)``, in hex: the key's identity in Redis.

    Examples:
        >>> import hashlib
        >>> key_digest("acct-7") == hashlib.sha256(b"'acct-7'").hexdigest()
        True
    """
    return hashlib.sha256(repr(key).encode("utf-8", "backslashreplace")).hexdigest()


def shown_key(key: Hashable | None, label: KeyLabel | None) -> str | None:
    """``key`` as errors and events show it: ``label(key)``, else ``sha256:`` and 12 hex digits.

    ``None`` (an unkeyed limiter) stays ``None``; a label is still passed
    through ``redact()``.

    Examples:
        >>> shown_key("EAAGm0PX4ZCpsBAK", None)
        'sha256:6e6f20476862'
        >>> shown_key(("acct-7", "EAAGm0PX4ZCpsBAK"), lambda key: key[0])
        'acct-7'
    """
    if key is None:
        return None
    if label is not None:
        return redact(str(label(key)))
    return f"sha256:{key_digest(key)[:_SHOWN_DIGITS]}"
