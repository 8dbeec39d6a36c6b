"""Feature flags: gradual rollouts, a kill switch and allow/deny lists for new code paths.

``Flags`` evaluates flags from layered sources (``EnvSource``,
``FileSource``, ``StoreSource``, ``RedisSource``, ``MemorySource``) in well
under a microsecond. A partial rollout buckets each key by a stable hash of
the flag and the key, so a client stays in or out across processes and
releases, and raising the percentage never turns a key off. ``FlagsProvider``
(the ``openfeature`` extra, imported on first use) serves the same flags
through the OpenFeature SDK.

Examples:
    >>> from resilient_pipeline.flags import Flags, MemorySource
    >>> flags = Flags([MemorySource({"new_conversions_endpoint": "10%"})])
    >>> sum(flags.enabled("new_conversions_endpoint", key=i) for i in range(10_000))
    973
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resilient_pipeline._lazy import lazy_names

from ._bucket import BUCKETS, bucket
from ._events import FlagEvaluated, FlagSourceFailed
from ._flag import Flag, FlagReason
from ._flags import Flags
from ._shared import RedisSource, StoreSource
from ._sources import EnvSource, FileSource, FlagSource, MemorySource

if TYPE_CHECKING:
    from ._openfeature import FlagsProvider

__all__ = [
    "BUCKETS",
    "EnvSource",
    "FileSource",
    "Flag",
    "FlagEvaluated",
    "FlagReason",
    "FlagSource",
    "FlagSourceFailed",
    "Flags",
    "FlagsProvider",
    "MemorySource",
    "RedisSource",
    "StoreSource",
    "bucket",
]

# The OpenFeature SDK is an optional extra: import it only when the provider is used.
__getattr__, __dir__ = lazy_names(__name__, {"FlagsProvider": "flags._openfeature"})
