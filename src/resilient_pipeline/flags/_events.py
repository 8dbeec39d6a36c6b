"""What flags report: each evaluation, and a source that could not be read."""

from __future__ import annotations

import logging

import attrs

from resilient_pipeline._core import Event

from ._flag import FlagReason

__all__ = ["FlagEvaluated", "FlagSourceFailed"]


@attrs.frozen(kw_only=True)
class FlagEvaluated(Event):
    """A flag was evaluated (emitted on every evaluation; meant for metrics, not logs).

    It is a ``DEBUG`` event, so the default log sink drops it unless you turn
    on ``DEBUG`` for ``resilient_pipeline.flags``; count it with a metrics
    handler instead. The key is never part of the event. When nobody listens
    (only the default log sink, not at ``DEBUG``) nothing is delivered at all.

    Attributes:
        source: The flag's name.
        flag: The flag's name.
        enabled: The answer.
        reason: Why: ``kill_switch``, ``deny_list``, ``allow_list``, ``percentage``,
            ``no_key`` or ``unknown``.

    Examples:
        >>> FlagEvaluated(source="beta", flag="beta", enabled=True, reason="percentage").message()
        "flag 'beta' evaluated: on (percentage)"
    """

    logger_name = "resilient_pipeline.flags"
    level = logging.DEBUG
    template = "flag {flag!r} evaluated: {state} ({reason})"

    flag: str
    enabled: bool
    reason: FlagReason

    def message(self) -> str:
        """A one-line description."""
        return self.template.format(
            flag=self.flag, state="on" if self.enabled else "off", reason=self.reason
        )


@attrs.frozen(kw_only=True)
class FlagSourceFailed(Event):
    """A flag source could not be read or held bad flags; the last good flags stay in use.

    Emitted once per failed reload; the source is tried again after its
    ``reload_interval``.

    Attributes:
        source: The source (``RP_FLAG_*``, a file path, a store table, a Redis key).
        error: What went wrong, secrets masked.

    Examples:
        >>> FlagSourceFailed(source="flags.toml", error="OSError: gone").message()
        'flag source flags.toml failed (OSError: gone); keeping its last good flags'
    """

    logger_name = "resilient_pipeline.flags"
    level = logging.WARNING
    template = "flag source {source} failed ({error}); keeping its last good flags"

    error: str
