"""Stable percentage bucketing: which keys a partial rollout turns on.

A key's bucket is a number in ``[0, 10_000)`` (basis points) drawn from
SHA-256 of ``"<flag>:<key>"`` (UTF-8, lone surrogates passed through): the
same on every machine, in every process and in every release, and different
for each flag, so two flags at 10 % do not pick the same clients. A key is
on at ``percentage`` exactly when its bucket is below ``percentage * 100``,
so raising the percentage only ever adds keys.

Examples:
    >>> bucket("new_conversions_endpoint", "client-42")
    8685
    >>> bucket("new_conversions_endpoint", 42) == bucket("new_conversions_endpoint", "42")
    True
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import sha256

__all__ = ["BUCKETS", "bucket", "normalize_key", "salted"]

BUCKETS = 10_000
"""Buckets per flag: one per basis point, so ``percentage=0.01`` is one bucket."""


def normalize_key(key: object) -> str:
    """The text a key is bucketed by: ``str(key)``, so ``7`` and ``"7"`` are one client."""
    return key if type(key) is str else str(key)


def bucket(flag: str, key: object) -> int:
    """The key's bucket for ``flag``: ``int(sha256(f"{flag}:{key}")[:8]) % 10_000``."""
    return salted(flag)(normalize_key(key))


def salted(flag: str) -> Callable[[str], int]:
    """``bucket`` for one flag, with the flag's prefix hashed once (the hot path's version)."""
    prefix = sha256(f"{flag}:".encode())
    from_bytes = int.from_bytes

    def bucket_of(key: str) -> int:
        hasher = prefix.copy()
        hasher.update(key.encode("utf-8", "surrogatepass"))
        return from_bytes(hasher.digest()[:8], "big") % BUCKETS

    return bucket_of
