"""The event mechanism: global and local handlers, stdlib logging, failing handlers."""

from __future__ import annotations

import functools
import logging
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import ConfigurationError, Event, retry_with_backoff, subscribe
from resilient_pipeline._core import DEFAULT_HANDLERS, GLOBAL_HANDLERS, OBSERVED, Subscription
from resilient_pipeline.events import emit, log_event
from resilient_pipeline.retry import RetryExhausted, RetryScheduled


def scheduled(**changes: object) -> RetryScheduled:
    fields: dict[str, object] = {
        "source": "fetch",
        "attempt": 1,
        "delay": 0.5,
        "error": "OSError: reset",
        "retry_after": None,
    }
    fields.update(changes)
    return RetryScheduled(**fields)  # type: ignore[arg-type]


def test_local_handlers_run_before_global_ones() -> None:
    """An object's own handlers see the event first, then global subscribers."""
    order: list[str] = []
    with subscribe(lambda e: order.append("global")):
        emit(scheduled(), (lambda e: order.append("local"),))
    assert ["local", "global"] == order


def test_cancelled_subscription_stops_delivery() -> None:
    """After cancel() (or leaving the with block) a handler gets nothing more."""
    seen: list[Event] = []
    subscription = subscribe(seen.append)
    emit(scheduled(attempt=1))
    subscription.cancel()
    subscription.cancel()  # idempotent
    emit(scheduled(attempt=2))
    assert [scheduled(attempt=1)] == seen


def test_failing_handler_is_logged_and_does_not_break_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler that raises is logged on resilient_pipeline.events; the rest still run."""
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("handler bug")

    with caplog.at_level(logging.ERROR, logger="resilient_pipeline.events"):
        emit(scheduled(), (broken, seen.append))
    assert [scheduled()] == seen
    assert "event handler" in caplog.text
    assert "handler bug" in caplog.text


def test_failing_handler_log_masks_secrets_in_the_traceback_and_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler's error text and a partial's bound token never reach the log unmasked."""
    token = "EAAG" + "m0PX4ZCpsBAKqW3"  # a made-up Meta-shaped token

    def post(url: str, event: Event) -> None:
        raise RuntimeError(f"POST {url} failed")

    handler = functools.partial(post, f"https://graph.example/v1?access_token={token}")
    with caplog.at_level(logging.ERROR, logger="resilient_pipeline.events"):
        emit(scheduled(), (handler,))
    [record] = caplog.records
    text = record.getMessage() + (record.exc_text or "")
    assert token not in text
    assert "access_token=***" in text
    assert "RuntimeError" in text
    assert "Traceback" in text


def test_subscribe_rejects_non_callables() -> None:
    """subscribe() validates its argument."""
    with pytest.raises(ConfigurationError, match="handler"):
        subscribe("print")  # type: ignore[arg-type]


def test_log_event_uses_module_logger_level_and_extra(caplog: pytest.LogCaptureFixture) -> None:
    """Events are logged on resilient_pipeline.<module> with their fields in extra."""
    with caplog.at_level(logging.DEBUG, logger="resilient_pipeline"):
        log_event(scheduled())
    [record] = caplog.records
    assert "resilient_pipeline.retry" == record.name
    assert record.levelno == logging.WARNING
    assert "fetch: attempt 1 failed (OSError: reset); retrying in 0.50 s" == record.getMessage()
    assert "RetryScheduled" == record.event  # type: ignore[attr-defined]
    assert 0.5 == record.delay  # type: ignore[attr-defined]
    assert "fetch" == record.source  # type: ignore[attr-defined]


def test_log_event_prefixes_fields_that_clash_with_logrecord(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A field named like a LogRecord attribute gets an rp_ prefix instead of crashing."""
    import attrs

    @attrs.frozen(kw_only=True)
    class Named(Event):
        logger_name = "resilient_pipeline.test"
        template = "{source} {name}"
        name: str

    with caplog.at_level(logging.INFO, logger="resilient_pipeline"):
        log_event(Named(source="s", name="n"))
    [record] = caplog.records
    assert "n" == record.rp_name  # type: ignore[attr-defined]
    assert "resilient_pipeline.test" == record.name


def test_default_logging_is_subscribed(caplog: pytest.LogCaptureFixture) -> None:
    """emit() logs through stdlib logging without any set-up."""
    with caplog.at_level(logging.ERROR, logger="resilient_pipeline"):
        emit(
            RetryExhausted(source="f", attempts=3, elapsed=1.0, reason="attempts", error="OSError")
        )
    expected = ["f: gave up after 3 attempt(s) in 1.00 s (attempts): OSError"]
    assert expected == [r.getMessage() for r in caplog.records]


def test_events_are_immutable_and_picklable() -> None:
    """Events are frozen values that survive pickle."""
    import attrs

    event = scheduled()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.delay = 3  # type: ignore[misc]
    assert event == pickle.loads(pickle.dumps(event))


@given(steps=st.lists(st.tuples(st.booleans(), st.integers(0, 3)), max_size=12))
def test_observed_is_non_empty_exactly_while_anyone_subscribes(
    steps: list[tuple[bool, int]],
) -> None:
    """OBSERVED (the hot paths' check) agrees with the global handlers after any (un)subscribe."""
    handlers = [functools.partial(_ignore, n) for n in range(4)]
    active: list[Subscription] = []
    try:
        for add, which in steps:
            if add or not active:
                active.append(subscribe(handlers[which]))
            else:
                active.pop(which % len(active)).cancel()
            assert bool(active) == bool(OBSERVED)
            assert bool(active) == (GLOBAL_HANDLERS[0] is not DEFAULT_HANDLERS)
    finally:
        for subscription in active:
            subscription.cancel()
    assert [] == OBSERVED


def _ignore(n: int, event: Event) -> None:
    """A handler that does nothing (distinct per ``n``)."""


def test_retry_success_path_reports_to_a_subscriber_that_came_after_decoration() -> None:
    """The decorator's unobserved fast path notices a later subscriber and its cancellation."""
    seen: list[Event] = []
    fetch = retry_with_backoff(base_delay=0, name="fetch")(lambda: "ok")
    assert "ok" == fetch()
    with subscribe(seen.append):
        assert "ok" == fetch()
    assert "ok" == fetch()
    assert ["CallFinished"] == [type(event).__name__ for event in seen]
