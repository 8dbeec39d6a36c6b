"""Log lines for people and for machines: formatters, redaction and ``configure_logging``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import IO, Any, Literal

from resilient_pipeline._core import current_context, redact, redact_data
from resilient_pipeline.exceptions import ConfigurationError

__all__ = [
    "ConsoleFormatter",
    "JsonFormatter",
    "RedactingFilter",
    "configure_logging",
    "record_context",
]

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Set on every record by the factory configure_logging installs: the fields bound where
# the record was created (a queue handler may format it later, in another thread).
_CONTEXT_ATTR = "_rp_context"
_PLAIN = logging.Formatter()


def _jsonable(value: object) -> object:
    """A :func:`redact_data` result as JSON types (other objects by their ``str``)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def record_context(record: logging.LogRecord) -> Mapping[str, object]:
    """The fields bound to the unit of work that logged ``record``.

    An event's record carries the event's own (``extra["context"]``); any
    other record, those bound where it was created (when
    :func:`configure_logging` installed its record factory) or else those
    bound where it is formatted.

    Examples:
        >>> from resilient_pipeline.observability import bind_context
        >>> record = logging.makeLogRecord({"msg": "hello"})
        >>> with bind_context(run_id="r1"):
        ...     dict(record_context(record))
        {'run_id': 'r1'}
    """
    values = record.__dict__
    context = values.get("context")
    if isinstance(context, Mapping):
        return context
    context = values.get(_CONTEXT_ATTR)
    if isinstance(context, Mapping):
        return context
    return current_context()


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_") and key != "context"
    }


class JsonFormatter(logging.Formatter):
    """Formats each record as one JSON object: time, level, logger, message, extras, context.

    Fields passed in ``extra`` (every event field, for the library's own
    records) become top-level keys; the fields bound with
    :func:`~resilient_pipeline.observability.bind_context` go under
    ``"context"``. Values that are not JSON types are rendered with ``str``.
    The message, every string (nested ones too), the traceback (chained
    causes and notes included) and the stack go through
    :func:`~resilient_pipeline.observability.redact`; a field whose name
    says it holds a secret (``token``, ``api_key``, ``Authorization``...)
    is masked whole.

    Examples:
        >>> record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO",
        ...                                 "name": "x", "created": 0.0})
        >>> JsonFormatter().format(record)
        '{"time": "1970-01-01T00:00:00+00:00", "level": "INFO", "logger": "x", "message": "hello"}'
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        payload: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in _extras(record).items():
            payload[key] = _jsonable(redact_data(value, key))
        context = record_context(record)
        if context:
            payload["context"] = _jsonable(redact_data(dict(context)))
        if record.exc_info and not record.exc_text:
            payload["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            payload["exception"] = redact(record.exc_text)
        if record.stack_info:
            payload["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    """One readable line per record for people: time, level, logger, message, bound fields.

    The bound fields follow the message as ``key=value``; an exception's
    traceback follows on the next lines. Everything is redacted like
    :class:`JsonFormatter` output.

    Examples:
        >>> record = logging.makeLogRecord({"msg": "collected", "levelname": "INFO",
        ...     "name": "resilient_pipeline.ledger", "created": 0.0,
        ...     "context": {"run_id": "r1", "partition_key": "act_1"}})
        >>> print(ConsoleFormatter().format(record))
        1970-01-01 00:00:00 INFO     resilient_pipeline.ledger  collected
          run_id=r1 partition_key=act_1
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line (plus its traceback, if any)."""
        when = dt.datetime.fromtimestamp(record.created, tz=dt.timezone.utc)
        line = (
            f"{when:%Y-%m-%d %H:%M:%S} {record.levelname:<8} {record.name}  "
            f"{redact(record.getMessage())}"
        )
        context = record_context(record)
        if context:
            masked = redact_data(dict(context))
            assert isinstance(masked, dict)  # redact_data keeps a dict a dict
            line += "  " + " ".join(f"{key}={value}" for key, value in masked.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + redact(record.exc_text)
        if record.stack_info:
            line += "\n" + redact(self.formatStack(record.stack_info))
        return line


def _mask_record(record: logging.LogRecord, *, extras: bool) -> None:
    """Mask ``record``'s secrets in place: message, traceback, stack and (optionally) extras."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: S110 -- the handler's formatter reports a bad format string
        pass
    else:
        record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = _PLAIN.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    if extras:
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and not key.startswith("_"):
                record.__dict__[key] = redact_data(value, key)


class RedactingFilter(logging.Filter):
    """Masks secrets in every record a handler receives, before its formatter runs.

    Add it to a handler (``handler.addFilter(RedactingFilter())``) whose
    formatter is stdlib's or derived from it. It rewrites the record in place:
    the message with its arguments, the traceback of ``logging.exception``
    (chained ``__cause__``/``__context__`` and notes included, rendered once
    and kept as ``exc_text``, which stdlib formatters print instead of
    rendering their own), the stack, and ``extra`` fields (strings redacted,
    secret-named fields masked). Handlers after it see the masked record too.

    Examples:
        >>> import io
        >>> stream = io.StringIO()
        >>> handler = logging.StreamHandler(stream)
        >>> handler.addFilter(RedactingFilter())
        >>> log = logging.getLogger("demo.redacting")
        >>> log.addHandler(handler)
        >>> log.warning("GET %s failed", "/me?access_token=abc&appsecret_proof=f00d")
        >>> stream.getvalue()
        'GET /me?access_token=***&appsecret_proof=*** failed\\n'
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record's secrets in place; never drops a record."""
        _mask_record(record, extras=True)
        return True


class _RedactingFactory:
    """A ``LogRecord`` factory: every record is masked (and given its context) at birth.

    So any handler, even one added later by another library, only ever sees
    the masked message and traceback. ``extra`` fields are set on the record
    after the factory returns; the handler :func:`configure_logging` adds
    masks those too.
    """

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        _mask_record(record, extras=False)
        context = current_context()
        if context:
            record.__dict__[_CONTEXT_ATTR] = context
        return record


_configure_lock = threading.Lock()
_HANDLER_MARK = "_rp_configured"


def _resolve_level(level: int | str | None) -> int:
    option = "level"
    if level is None:
        option, level = "LOG_LEVEL", os.environ.get("LOG_LEVEL", "").strip() or "INFO"
    if isinstance(level, bool):
        raise ConfigurationError.for_option(option, level, "must be a level name or number")
    if isinstance(level, int):
        if level < 0:
            raise ConfigurationError.for_option(option, level, "must be >= 0")
        return level
    if isinstance(level, str):
        if level.isdigit():
            return int(level)
        number = logging.getLevelName(level.strip().upper())  # a name's number, if known
        if isinstance(number, int):
            return number
    raise ConfigurationError.for_option(
        option, level, "must be DEBUG, INFO, WARNING, ERROR, CRITICAL or a number"
    )


def configure_logging(
    level: int | str | None = None,
    *,
    format: Literal["console", "json"] = "console",
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr), readable or as JSON lines, secrets masked.

    Configures the root logger for an application (a library never calls
    this): one handler writing to ``stream`` with :class:`ConsoleFormatter`
    (``format="console"``, for people) or :class:`JsonFormatter`
    (``format="json"``, for machines); a second call replaces the handler the
    first one added. Secrets are masked before any handler runs: a
    ``LogRecord`` factory masks each record's message and traceback when it
    is created, so handlers added later (by you or another library) never
    see them, and the handler also masks ``extra`` fields. Every record
    carries the fields bound with :func:`bind_context` where it was created.

    Args:
        level: A level name or number; default: the ``LOG_LEVEL``
            environment variable, else ``INFO``.
        format: ``"console"`` or ``"json"``.
        stream: Where to write (default ``sys.stderr``).

    Returns:
        The handler it installed.

    Raises:
        ConfigurationError: An unknown level (naming ``level`` or
            ``LOG_LEVEL``) or format.

    Examples:
        >>> import io
        >>> out = io.StringIO()
        >>> handler = configure_logging("WARNING", format="json", stream=out)
        >>> logging.getLogger("etl").warning("GET /x?token=abc failed")
        >>> json.loads(out.getvalue())["message"]
        'GET /x?token=*** failed'
        >>> logging.getLogger().removeHandler(handler)
    """
    number = _resolve_level(level)
    formatter: logging.Formatter
    if format == "json":
        formatter = JsonFormatter()
    elif format == "console":
        formatter = ConsoleFormatter()
    else:
        raise ConfigurationError.for_option("format", format, 'must be "console" or "json"')
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    with _configure_lock:
        if not isinstance(logging.getLogRecordFactory(), _RedactingFactory):
            logging.setLogRecordFactory(_RedactingFactory(logging.getLogRecordFactory()))
        for old in list(root.handlers):
            if getattr(old, _HANDLER_MARK, False):
                root.removeHandler(old)
                old.close()
        root.addHandler(handler)
        root.setLevel(number)
    return handler
