"""Alerts and the Alerter: routing by severity, deduplication, rate limiting, loud failures."""

from __future__ import annotations

import logging
import pickle

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import Alert, Alerter, ConfigurationError
from resilient_pipeline.alerting import AlertDeliveryFailed, AlertSuppressed, MemoryAlertLog, Route
from resilient_pipeline.alerting._alert import SEVERITIES
from resilient_pipeline.exceptions import AlertDeliveryError
from resilient_pipeline.testing import FakeClock, MemoryNotifier, capture_events
from tests.strategies import severities


def alert(severity: str = "error", title: str = "late", **kw: object) -> Alert:
    """An alert with defaults."""
    return Alert(severity=severity, title=title, **kw)  # type: ignore[arg-type]


def test_routes_by_minimum_severity() -> None:
    """Each notifier gets the alerts at or above its route's minimum severity."""
    chat, pager = MemoryNotifier(name="chat"), MemoryNotifier(name="pager")
    alerter = Alerter([Route(chat, min_severity="warning"), Route(pager, min_severity="critical")])
    for severity in SEVERITIES:
        alerter.send(alert(severity, title=severity))
    assert ["warning", "error", "critical"] == [a.title for a in chat.alerts]
    assert ["critical"] == [a.title for a in pager.alerts]


def test_unrouted_alert_is_reported_as_no_route() -> None:
    """An info alert with only a critical route is not sent, and the delivery says why."""
    pager = MemoryNotifier()
    delivery = Alerter([Route(pager, min_severity="critical")]).send(alert("info"))
    assert ("no_route", []) == (delivery.status, pager.alerts)


def test_duplicate_within_window_is_not_resent() -> None:
    """The same key is sent once per window, then again once the window has passed."""
    clock, chat = FakeClock(), MemoryNotifier()
    alerter = Alerter([chat], dedup_window=3600, clock=clock)
    statuses = [alerter.send(alert(key="meta/7/2026-11-28")).status]
    clock.advance(3599)
    statuses.append(alerter.send(alert(key="meta/7/2026-11-28")).status)
    clock.advance(1)
    statuses.append(alerter.send(alert(key="meta/7/2026-11-28")).status)
    assert ["sent", "duplicate", "sent"] == statuses
    assert 2 == len(chat.alerts)


def test_different_partitions_are_not_duplicates() -> None:
    """Keys differ per partition, so each partition's alert is sent."""
    chat = MemoryNotifier()
    alerter = Alerter([chat], rate_limit=None)
    for client in range(3):
        alerter.send(alert(key=f"meta/{client}/2026-11-28"))
    assert 3 == len(chat.alerts)


def test_rate_limit_suppresses_and_reports_the_count() -> None:
    """Over the limit, alerts are skipped; the next one sent says how many were."""
    clock, chat = FakeClock(), MemoryNotifier()
    alerter = Alerter([chat], rate_limit=(2, 60.0), clock=clock)
    statuses = [alerter.send(alert(title=f"a{i}")).status for i in range(5)]
    clock.advance(60)
    alerter.send(alert(title="after"))
    assert ["sent", "sent", "rate_limited", "rate_limited", "rate_limited"] == statuses
    assert 3 == chat.alerts[-1].details["suppressed_alerts"]
    assert (3, 3) == (alerter.statistics().sent, alerter.statistics().rate_limited)


def test_failed_delivery_is_logged_critically_and_raised(caplog: pytest.LogCaptureFixture) -> None:
    """A failing notifier: others still get it, a CRITICAL log holds the text, then it raises."""
    broken, chat = MemoryNotifier(name="broken"), MemoryNotifier(name="chat")
    broken.fail_next(1)
    alerter = Alerter([broken, chat])
    with caplog.at_level(logging.CRITICAL), pytest.raises(AlertDeliveryError) as info:
        alerter.send(alert(message="14 of 16 clients"))
    assert "broken" == info.value.notifier
    assert 1 == len(chat.alerts)
    assert any("14 of 16 clients" in r.getMessage() for r in caplog.records)
    assert 1 == alerter.statistics().failed


def test_failed_delivery_is_not_recorded_as_sent() -> None:
    """After a failure the same alert is sent again (it is not a duplicate)."""
    pager = MemoryNotifier()
    pager.fail_next(1)
    alerter = Alerter([pager])
    with pytest.raises(AlertDeliveryError):
        alerter.send(alert())
    assert "sent" == alerter.send(alert()).status


def test_raise_on_failure_false_returns_the_failures() -> None:
    """With raise_on_failure=False the delivery says failed and names the notifier."""
    pager = MemoryNotifier(name="pager")
    pager.fail_next(1)
    with capture_events() as events:
        delivery = Alerter([pager], raise_on_failure=False).send(alert())
    assert "failed" == delivery.status
    assert delivery.failures[0].startswith("pager: AlertDeliveryError")
    assert [AlertDeliveryFailed] == [type(e) for e in events if isinstance(e, AlertDeliveryFailed)]


def test_send_all_tries_every_alert_before_raising() -> None:
    """One failing alert does not stop the next ones from being sent."""
    pager = MemoryNotifier()
    pager.fail_next(1)
    with pytest.raises(AlertDeliveryError):
        Alerter([pager]).send_all([alert(title="a"), alert(title="b")])
    assert ["b"] == [a.title for a in pager.alerts]


def test_suppression_emits_an_event() -> None:
    """A duplicate emits AlertSuppressed(reason='duplicate')."""
    alerter = Alerter([MemoryNotifier()])
    with capture_events() as events:
        alerter.send(alert())
        alerter.send(alert())
    assert ["duplicate"] == [e.reason for e in events if isinstance(e, AlertSuppressed)]


@pytest.mark.anyio
async def test_asend_delivers_from_async_code() -> None:
    """asend works under asyncio and trio."""
    chat = MemoryNotifier()
    delivery = await Alerter([chat]).asend(alert())
    assert ("sent", 1) == (delivery.status, len(chat.alerts))


@pytest.mark.anyio
async def test_concurrent_duplicates_are_sent_once() -> None:
    """Ten tasks sending the same alert at once: exactly one delivery."""
    chat = MemoryNotifier()
    alerter = Alerter([chat])
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(alerter.asend, alert())
    assert 1 == len(chat.alerts)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("dedup_window", -1),
        ("rate_limit", (0, 60.0)),
        ("rate_limit", (5, 0)),
        ("rate_limit", (5,)),
        ("routes", []),
        ("routes", [object()]),
    ],
)
def test_bad_options_are_rejected(option: str, value: object) -> None:
    """Invalid options raise ConfigurationError naming the option."""
    kwargs = {"routes": [MemoryNotifier()], option: value}
    with pytest.raises(ConfigurationError) as info:
        Alerter(**kwargs)  # type: ignore[arg-type]
    assert option == info.value.option


@pytest.mark.parametrize(("field", "value"), [("severity", "fatal"), ("title", " "), ("key", "")])
def test_alert_validates_its_fields(field: str, value: str) -> None:
    """A bad severity, blank title or empty key is rejected."""
    kwargs: dict[str, object] = {"severity": "error", "title": "t", field: value}
    with pytest.raises(ConfigurationError):
        Alert(**kwargs)  # type: ignore[arg-type]


@given(
    severities,
    st.text(min_size=1).filter(str.strip),
    st.text(),
)
def test_alert_key_is_stable_and_alerts_pickle(severity: str, title: str, message: str) -> None:
    """The default key depends only on severity, title and message; alerts pickle."""
    a = Alert(severity=severity, title=title, message=message, details={"n": 1})  # type: ignore[arg-type]
    b = Alert(severity=severity, title=title, message=message, details={"n": 2})  # type: ignore[arg-type]
    assert a.key == b.key
    assert a == pickle.loads(pickle.dumps(a))


def test_memory_alert_log_restores_the_previous_time_on_failure() -> None:
    """A failed re-send keeps the earlier send's time, so the window still counts from it."""
    log = MemoryAlertLog()

    def boom() -> None:
        raise OSError("down")

    assert log.deliver_once("k", window=10, now=0, deliver=lambda: None)
    with pytest.raises(OSError):
        log.deliver_once("k", window=10, now=20, deliver=boom)
    assert log.deliver_once("k", window=10, now=20, deliver=lambda: None)
    assert not log.deliver_once("k", window=10, now=25, deliver=lambda: None)


def test_store_alert_log_deduplicates_across_alerters(tmp_path: object) -> None:
    """Two alerters (two processes) sharing a store send an alert once per window."""
    from resilient_pipeline import SQLiteStore
    from resilient_pipeline.alerting import StoreAlertLog

    store = SQLiteStore(f"{tmp_path}/alerts.db")
    clock, pager = FakeClock(), MemoryNotifier()
    first = Alerter([pager], alert_log=StoreAlertLog(store), clock=clock, dedup_window=3600)
    second = Alerter([pager], alert_log=StoreAlertLog(store), clock=clock, dedup_window=3600)
    statuses = [first.send(alert(key="p/1")).status, second.send(alert(key="p/1")).status]
    clock.advance(3600)
    statuses.append(second.send(alert(key="p/1")).status)
    assert ["sent", "duplicate", "sent"] == statuses
    store.close()


def test_store_alert_log_releases_the_claim_when_delivery_fails(tmp_path: object) -> None:
    """A failed delivery rolls back its claim: the next send delivers it."""
    from resilient_pipeline import SQLiteStore
    from resilient_pipeline.alerting import StoreAlertLog

    store = SQLiteStore(f"{tmp_path}/alerts.db")
    pager = MemoryNotifier()
    pager.fail_next(1)
    alerter = Alerter([pager], alert_log=StoreAlertLog(store))
    with pytest.raises(AlertDeliveryError):
        alerter.send(alert())
    assert "sent" == alerter.send(alert()).status
    store.close()


def test_alerts_mask_secrets_before_any_notifier_sees_them() -> None:
    """Title, message, action and offending rows are masked when the alert is made."""
    secret = "sk_" + "live_51HxQa8TqVn2bW0rt"  # built, so no scanner mistakes it for a key
    alert = Alert(
        severity="error",
        title=f"GET https://api.example/v1?api_key={secret} failed",
        message=f"password={secret}",
        action=f"retry with Authorization: Bearer {secret}",
        details={"rows": [{"client_id": 7, "access_token": secret}], "note": secret},
    )
    notifier = MemoryNotifier()
    Alerter([notifier]).send(alert)
    [sent] = notifier.alerts
    rendered = repr(sent) + sent.text() + repr(sent.to_dict())
    assert secret not in rendered
    assert [{"client_id": 7, "access_token": "***"}] == sent.details["rows"]
    assert "api_key=***" in sent.title
