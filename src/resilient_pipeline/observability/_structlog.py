"""The optional structlog bridge (``structlog`` extra): events and bound fields into structlog."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from resilient_pipeline._core import Event, current_context, redact_data
from resilient_pipeline.exceptions import MissingDependencyError

__all__ = ["StructlogSink", "add_bound_context"]


def _structlog() -> Any:
    try:
        import structlog
    except ImportError as exc:
        raise MissingDependencyError(
            package="structlog", extra="structlog", feature="the structlog bridge"
        ) from exc
    return structlog


def add_bound_context(
    _logger: object, _method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: adds the fields bound with ``bind_context`` as ``"context"``.

    Put it in your structlog processor chain (next to
    ``structlog.contextvars.merge_contextvars``) so your own structlog lines
    carry the run id, source and partition key the library's events carry.
    An existing ``"context"`` key is left alone.

    Examples:
        >>> from resilient_pipeline.observability import bind_context
        >>> with bind_context(run_id="r1"):
        ...     add_bound_context(None, "info", {"event": "collected"})
        {'event': 'collected', 'context': {'run_id': 'r1'}}
    """
    context = current_context()
    if context and "context" not in event_dict:
        event_dict["context"] = dict(context)
    return event_dict


class StructlogSink:
    """An event handler logging every event through structlog instead of stdlib ``logging``.

    Each event becomes one structlog call on the logger named like the
    event's stdlib logger (``resilient_pipeline.retry``...), at the event's
    level, with the one-line message as structlog's ``event``, the class
    name as ``event_type``, every field as a key (secret-named ones masked)
    and the bound fields under ``context``. Subscribe it with
    ``resilient_pipeline.subscribe``; to stop the stdlib copies, raise the
    level of the ``resilient_pipeline`` stdlib logger or stop its propagation.

    Args:
        logger: A structlog logger to use for every event (default:
            ``structlog.get_logger(<the event's logger name>)``).

    Raises:
        MissingDependencyError: structlog is not installed (``structlog`` extra).

    Examples:
        >>> import structlog
        >>> from resilient_pipeline.retry import RetryScheduled
        >>> with structlog.testing.capture_logs() as logs:
        ...     StructlogSink()(RetryScheduled(source="fetch", attempt=1, delay=0.5,
        ...                                    error="OSError: reset", retry_after=None))
        >>> logs[0]["event_type"], logs[0]["log_level"], logs[0]["delay"]
        ('RetryScheduled', 'warning', 0.5)
    """

    def __init__(self, *, logger: Any = None) -> None:
        self._structlog = _structlog()
        self._logger = logger

    def __repr__(self) -> str:
        return (
            "StructlogSink()" if self._logger is None else f"StructlogSink(logger={self._logger!r})"
        )

    def __call__(self, event: Event) -> None:
        """Log ``event`` through structlog."""
        logger = self._logger or self._structlog.get_logger(event.logger_name)
        fields: dict[str, Any] = {
            # "event" is structlog's message key; the other names stay the event's own.
            ("event_field" if key == "event" else key): redact_data(value, key)
            for key, value in event.fields().items()
        }
        fields["event_type"] = type(event).__name__
        if event.context:
            fields["context"] = dict(event.context)
        logger.log(event.level, event.message(), **fields)
