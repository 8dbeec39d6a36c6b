"""Typed, immutable events and the one mechanism that delivers them.

Primitives emit events (``RetryScheduled``, ``CircuitOpened``, ...) to the
handlers subscribed on the object that emits them, then to the global
handlers. The default global handler, :func:`log_event`, logs each event
through stdlib :mod:`logging` on the ``resilient_pipeline.<module>`` logger,
with the event's fields in ``extra``.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import ClassVar, TypeAlias, cast

import attrs

from resilient_pipeline.exceptions import ConfigurationError

from ._context import current_context
from ._redact import redact

__all__ = [
    "Event",
    "EventHandler",
    "Subscription",
    "emit",
    "log_event",
    "normalize_handlers",
    "subscribe",
]

# A library adds no output of its own: without logging configured, events vanish
# instead of reaching logging.lastResort (the stdlib's advice for libraries).
logging.getLogger("resilient_pipeline").addHandler(logging.NullHandler())

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_internal_logger = logging.getLogger("resilient_pipeline.events")


@attrs.frozen(kw_only=True)
class Event:
    """Base class of every event: immutable, typed, picklable.

    Attributes:
        source: What emitted it: a function's qualified name, a breaker's name, ...
        context: The fields bound (``bind_context``) where the event was
            created: run id, source, partition key... Not an ``__init__``
            argument, not part of equality or the repr, not in :meth:`fields`.

    Subclasses set ``logger_name`` (the ``resilient_pipeline.<module>`` logger
    :func:`log_event` uses), ``level`` and ``template`` (a ``str.format``
    template over the event's fields).

    Examples:
        >>> from resilient_pipeline.retry import RetryScheduled
        >>> event = RetryScheduled(source="fetch", attempt=1, delay=0.5,
        ...                        error="ConnectionError: reset", retry_after=None)
        >>> event.message()
        'fetch: attempt 1 failed (ConnectionError: reset); retrying in 0.50 s'
        >>> event.fields()["delay"]
        0.5
    """

    logger_name: ClassVar[str] = "resilient_pipeline"
    level: ClassVar[int] = logging.INFO
    template: ClassVar[str] = "{source}"

    source: str
    # Captured at creation, so an event handed to another thread keeps its unit of work's fields.
    context: Mapping[str, object] = attrs.field(
        init=False, factory=current_context, eq=False, repr=False
    )

    def fields(self) -> dict[str, object]:
        """The event's fields as a new dict (JSON-friendly values); ``context`` is not one."""
        return {
            a.name: getattr(self, a.name) for a in attrs.fields(type(self)) if a.name != "context"
        }

    def message(self) -> str:
        """A one-line human-readable description."""
        return self.template.format(**self.fields())


EventHandler: TypeAlias = Callable[[Event], None]
"""A subscriber: called synchronously with every event it is subscribed to."""


def log_event(event: Event) -> None:
    """Log ``event`` on its module's logger; fields go in ``extra``.

    ``extra`` holds ``event`` (the class name) and every field; a field whose
    name a ``LogRecord`` already uses gets an ``rp_`` prefix. The fields bound
    where the event was created go in ``extra["context"]`` (a dict), when any.

    Examples:
        >>> import logging
        >>> from resilient_pipeline.retry import RetryExhausted
        >>> logging.getLogger("resilient_pipeline").setLevel(logging.CRITICAL)
        >>> log_event(RetryExhausted(source="fetch", attempts=3, elapsed=3.0,
        ...                          reason="attempts", error="OSError"))
        >>> logging.getLogger("resilient_pipeline").setLevel(logging.NOTSET)
    """
    logger = logging.getLogger(event.logger_name)
    if not logger.isEnabledFor(event.level):
        return
    extra: dict[str, object] = {"event": type(event).__name__}
    for key, value in event.fields().items():
        extra[f"rp_{key}" if key in _RESERVED else key] = value
    if event.context:
        extra["context"] = dict(event.context)
    logger.log(event.level, event.message(), extra=extra)


_lock = threading.Lock()
# A one-item cell holding a copy-on-write tuple: readers (emit, the breaker's
# hot path) index it without a lock; subscribe/unsubscribe swap the tuple.
# While it holds DEFAULT_HANDLERS itself (identity), nobody but the log sink listens.
DEFAULT_HANDLERS: tuple[EventHandler, ...] = (log_event,)
GLOBAL_HANDLERS: list[tuple[EventHandler, ...]] = [DEFAULT_HANDLERS]
# That fact as truth, for every path that skips building events no one would see:
# empty exactly while GLOBAL_HANDLERS holds DEFAULT_HANDLERS. ``if OBSERVED:`` is
# one bytecode where the identity check is five (a tenth of a retried call's
# success path).
OBSERVED: list[bool] = []


def _install(handlers: tuple[EventHandler, ...]) -> None:
    """Make ``handlers`` the global ones (under ``_lock``), keeping OBSERVED in step."""
    handlers = DEFAULT_HANDLERS if handlers == DEFAULT_HANDLERS else handlers
    GLOBAL_HANDLERS[0] = handlers
    OBSERVED[:] = [] if handlers is DEFAULT_HANDLERS else [True]


@attrs.define(eq=False)
class Subscription:
    """A global subscription; cancel it, or use it as a context manager.

    Examples:
        >>> seen = []
        >>> with subscribe(seen.append):
        ...     pass
    """

    handler: EventHandler
    _active: bool = attrs.field(default=True, alias="_active")

    def cancel(self) -> None:
        """Stop delivering events to the handler (idempotent)."""
        if not self._active:
            return
        self._active = False
        with _lock:
            handlers = list(GLOBAL_HANDLERS[0])
            handlers.remove(self.handler)
            _install(tuple(handlers))

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


def subscribe(handler: EventHandler) -> Subscription:
    """Deliver every event emitted anywhere in the process to ``handler``.

    Handlers run synchronously in the thread or task that emits; keep them
    quick. An exception in a handler is logged on ``resilient_pipeline.events``
    and does not disturb the call that emitted the event.

    Examples:
        >>> from resilient_pipeline import retry_with_backoff
        >>> from resilient_pipeline.retry import RetryScheduled
        >>> seen = []
        >>> attempts = iter([OSError("reset"), None])
        >>> @retry_with_backoff(base_delay=0)
        ... def fetch() -> str:
        ...     error = next(attempts)
        ...     if error:
        ...         raise error
        ...     return "ok"
        >>> with subscribe(seen.append):
        ...     fetch()
        'ok'
        >>> [type(e).__name__ for e in seen]
        ['RetryScheduled', 'RetrySucceeded', 'CallFinished']
    """
    if not callable(handler):
        raise ConfigurationError.for_option("handler", handler, "must be callable")
    with _lock:
        _install((*GLOBAL_HANDLERS[0], handler))
    return Subscription(handler)


def normalize_handlers(
    on_event: EventHandler | Iterable[EventHandler] | None, option: str = "on_event"
) -> tuple[EventHandler, ...]:
    """Validate an ``on_event=`` option into a tuple of handlers."""
    if on_event is None:
        return ()
    try:
        handlers: tuple[object, ...] = (on_event,) if callable(on_event) else tuple(on_event)
    except TypeError:
        raise ConfigurationError.for_option(
            option, on_event, "must be a callable or callables"
        ) from None
    for handler in handlers:
        if not callable(handler):
            raise ConfigurationError.for_option(option, on_event, "must be a callable or callables")
    return cast("tuple[EventHandler, ...]", handlers)


def emit(event: Event, local: tuple[EventHandler, ...] = ()) -> None:
    """Deliver ``event`` to the object's own handlers, then to the global ones."""
    for handler in (*local, *GLOBAL_HANDLERS[0]):
        try:
            handler(event)
        except Exception as exc:  # noqa: PERF203 -- one broken handler must not starve the others
            # Not .exception(): the traceback's messages (and a partial's repr) may hold secrets.
            name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
            _internal_logger.error(
                "event handler %s failed on %s\n%s",
                name,
                type(event).__name__,
                redact("".join(traceback.format_exception(exc)).rstrip()),
            )
