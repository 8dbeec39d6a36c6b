"""Log lines: JSON and console formatters, configure_logging, LOG_LEVEL and redaction."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from resilient_pipeline import ConfigurationError, retry_with_backoff
from resilient_pipeline.observability import (
    ConsoleFormatter,
    JsonFormatter,
    bind_context,
    configure_logging,
)
from resilient_pipeline.testing import FakeClock


def test_json_formatter_carries_event_fields_and_masks_secrets() -> None:
    """Library records become JSON lines with every event field; secrets are masked."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("resilient_pipeline")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        outcomes = iter([OSError("GET /v1?access_token=SECRET9 failed"), None])

        @retry_with_backoff(base_delay=0, clock=FakeClock(), name="fetch")
        def fetch() -> None:
            error = next(outcomes)
            if error is not None:
                raise error

        fetch()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert ["RetryScheduled", "RetrySucceeded"] == [line["event"] for line in lines]
    first = lines[0]
    assert ("WARNING", "resilient_pipeline.retry", "fetch", 1) == (
        first["level"],
        first["logger"],
        first["source"],
        first["attempt"],
    )
    assert "SECRET9" not in stream.getvalue()


def test_json_formatter_renders_exceptions_and_odd_values() -> None:
    """Tracebacks are included (masked) and non-JSON values become strings."""
    try:
        raise RuntimeError("password=hunter2")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, None)
        record.exc_info = __import__("sys").exc_info()
    record.when = object()
    record.items = (1, {"a": 2.5})
    line = json.loads(JsonFormatter().format(record))
    assert "password=***" in line["exception"]
    assert "hunter2" not in line["exception"]
    assert [1, {"a": 2.5}] == line["items"]
    assert line["when"].startswith("<object object")


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The root logger, restored after the test: handlers, level and record factory."""
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.setLogRecordFactory(factory)


@pytest.mark.parametrize(
    ("env", "expected"), [("DEBUG", logging.DEBUG), ("warning", logging.WARNING), ("15", 15)]
)
def test_log_level_comes_from_the_environment(
    root_logging: logging.Logger, monkeypatch: pytest.MonkeyPatch, env: str, expected: int
) -> None:
    """Without a level argument, LOG_LEVEL decides (names in any case, or numbers)."""
    monkeypatch.setenv("LOG_LEVEL", env)
    configure_logging(stream=io.StringIO())
    assert expected == root_logging.level


def test_log_level_argument_wins_and_default_is_info(
    root_logging: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit level beats LOG_LEVEL; with neither, INFO."""
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    configure_logging("ERROR", stream=io.StringIO())
    assert logging.ERROR == root_logging.level
    monkeypatch.delenv("LOG_LEVEL")
    configure_logging(stream=io.StringIO())
    assert logging.INFO == root_logging.level


def test_bad_log_level_names_the_variable(
    root_logging: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in LOG_LEVEL is an error naming LOG_LEVEL, not a silent default."""
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigurationError, match="LOG_LEVEL='LOUD'"):
        configure_logging(stream=io.StringIO())
    with pytest.raises(ConfigurationError, match="format='xml'"):
        configure_logging("INFO", format="xml", stream=io.StringIO())  # type: ignore[arg-type]
    assert handlers_of(root_logging) == []


def handlers_of(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if getattr(h, "_rp_configured", False)]


def test_json_and_console_output(root_logging: logging.Logger) -> None:
    """JSON: one object per line; console: a readable line; both carry the bound context."""
    out = io.StringIO()
    configure_logging("INFO", format="json", stream=out)
    with bind_context(run_id="r7", partition_key="act_1"):
        logging.getLogger("etl").info("collected %d rows", 12)
    record = json.loads(out.getvalue())
    assert ("INFO", "etl", "collected 12 rows", {"run_id": "r7", "partition_key": "act_1"}) == (
        record["level"],
        record["logger"],
        record["message"],
        record["context"],
    )
    out = io.StringIO()
    configure_logging("INFO", format="console", stream=out)
    with bind_context(run_id="r7"):
        logging.getLogger("etl").warning("slow")
    line = out.getvalue()
    assert line.endswith(" WARNING  etl  slow  run_id=r7\n")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
    assert 1 == len(handlers_of(root_logging))  # the second call replaced the first handler


def test_a_handler_added_later_sees_masked_text(root_logging: logging.Logger) -> None:
    """Secrets are masked when the record is created: a plain handler added afterwards sees ***."""
    configure_logging("INFO", format="json", stream=io.StringIO())
    later = io.StringIO()
    plain = logging.StreamHandler(later)
    plain.setFormatter(logging.Formatter("%(message)s"))
    root_logging.addHandler(plain)
    log = logging.getLogger("etl.later")
    log.warning("GET %s failed", "/me?access_token=EAAB0123456789&x=1")
    try:
        raise RuntimeError("password=hunter2")
    except RuntimeError:
        log.exception("db down")
    text = later.getvalue()
    assert "EAAB0123456789" not in text
    assert "hunter2" not in text
    assert "access_token=***" in text
    assert "password=***" in text


def test_console_formatter_masks_context_and_traceback() -> None:
    """Bound values and tracebacks are redacted in console lines too."""
    try:
        raise RuntimeError("token=abc123")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    record.created = 0.0
    with bind_context(url="https://u:pw123@host/db"):
        text = ConsoleFormatter().format(record)
    assert "pw123" not in text
    assert "abc123" not in text
    assert text.startswith("1970-01-01 00:00:00 ERROR    x  boom  url=https://u:***@host/db\n")
