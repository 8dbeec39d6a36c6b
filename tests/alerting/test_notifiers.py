"""The built-in notifiers against real local servers (HTTP and SMTP on 127.0.0.1)."""

from __future__ import annotations

import logging

import pytest

from resilient_pipeline import (
    Alert,
    ConfigurationError,
    LoggingNotifier,
    RetryPolicy,
    SlackNotifier,
)
from resilient_pipeline.alerting import EmailNotifier, Notifier, WebhookNotifier
from resilient_pipeline.exceptions import AlertDeliveryError
from resilient_pipeline.testing import set_testing
from tests.helpers.alerting_servers import FlakyEndpoint, flaky_http_server, smtp_sink

ALERT = Alert(
    severity="error",
    title="meta_ads 2026-11-28 incomplete",
    message="14 of 16 clients collected",
    action="backfill",
    details={"missing": [7, 12]},
)


def test_webhook_retries_until_the_server_recovers() -> None:
    """A 503 (with Retry-After) then a 500 are retried; the third POST is delivered."""
    endpoint = FlakyEndpoint(failures=[(503, {"Retry-After": "7"}), (500, {})])
    with flaky_http_server(endpoint), set_testing() as clock:
        WebhookNotifier(endpoint.url).send(ALERT)
    assert 3 == len(endpoint.bodies)
    assert [ALERT.to_dict()] * 3 == endpoint.bodies
    assert clock.sleeps[0] >= 7.0  # the server asked for 7 s
    assert 2 == len(clock.sleeps)


def test_webhook_gives_up_with_an_error_that_hides_the_url() -> None:
    """After max_attempts failures, AlertDeliveryError names the notifier, not the token."""
    endpoint = FlakyEndpoint(failures=[(503, {})] * 5)
    with flaky_http_server(endpoint), set_testing(), pytest.raises(AlertDeliveryError) as info:
        WebhookNotifier(endpoint.url, retry=RetryPolicy(max_attempts=3, base_delay=1)).send(ALERT)
    assert 3 == len(endpoint.bodies)
    assert "webhook(127.0.0.1)" == info.value.notifier
    assert "s3cret" not in str(info.value)
    assert "HTTP 503" in str(info.value)


def test_webhook_does_not_retry_a_client_error() -> None:
    """A 404 means the URL is wrong: one attempt, then AlertDeliveryError."""
    endpoint = FlakyEndpoint(failures=[(404, {})])
    with flaky_http_server(endpoint), set_testing(), pytest.raises(AlertDeliveryError):
        WebhookNotifier(endpoint.url).send(ALERT)
    assert 1 == len(endpoint.bodies)


def test_webhook_retries_a_refused_connection() -> None:
    """Nothing listening: every attempt fails to connect, and the error says so."""
    with flaky_http_server(FlakyEndpoint()) as endpoint:
        url = endpoint.url  # the port is closed once the block exits
    notifier = WebhookNotifier(url, retry=RetryPolicy(max_attempts=2, base_delay=1))
    with set_testing() as clock, pytest.raises(AlertDeliveryError, match="ConnectError"):
        notifier.send(ALERT)
    assert 1 == len(clock.sleeps)


def test_slack_notifier_posts_slack_format() -> None:
    """The Slack notifier posts text + a colored attachment with the action and details."""
    endpoint = FlakyEndpoint()
    with flaky_http_server(endpoint):
        SlackNotifier(endpoint.url).send(ALERT)
    body = endpoint.bodies[0]
    assert "[ERROR] meta_ads 2026-11-28 incomplete" == body["text"]
    fields = {f["title"]: f["value"] for f in body["attachments"][0]["fields"]}
    assert {"Action": "backfill", "missing": "[7, 12]"} == fields


@pytest.mark.parametrize("url", ["ftp://x/y", "not a url", 42, "https://"])
def test_webhook_rejects_bad_urls_without_echoing_them(url: object) -> None:
    """A bad URL raises ConfigurationError that does not repeat the (secret) value."""
    with pytest.raises(ConfigurationError) as info:
        WebhookNotifier(url)  # type: ignore[arg-type]
    assert "url" == info.value.option
    assert info.value.value is None


def test_email_notifier_delivers_over_smtp() -> None:
    """The e-mail reaches the SMTP server with subject, body and recipients."""
    with smtp_sink() as sink:
        EmailNotifier(
            "127.0.0.1",
            port=sink.port,
            sender="etl@example.test",
            recipients=["oncall@example.test"],
            starttls=False,
        ).send(ALERT)
    sender, recipients, data = sink.messages[0]
    assert ("etl@example.test", ["oncall@example.test"]) == (sender, recipients)
    assert "Subject: [ERROR] meta_ads 2026-11-28 incomplete" in data
    assert "Action: backfill" in data


def test_email_notifier_raises_after_retrying_an_unreachable_server() -> None:
    """No SMTP server: retried per the policy, then AlertDeliveryError."""
    with smtp_sink() as sink:
        port = sink.port
    notifier = EmailNotifier(
        "127.0.0.1",
        port=port,
        sender="a@example.test",
        recipients=["b@example.test"],
        starttls=False,
        retry=RetryPolicy(max_attempts=2, base_delay=1),
        password="hunter2",
    )
    with set_testing() as clock, pytest.raises(AlertDeliveryError) as info:
        notifier.send(ALERT)
    assert [1.0] == [round(s) or 1.0 for s in clock.sleeps]
    assert "hunter2" not in str(info.value) + repr(notifier)


def test_logging_notifier_logs_at_the_alert_severity(caplog: pytest.LogCaptureFixture) -> None:
    """An error alert is logged at ERROR with the alert in ``extra``."""
    with caplog.at_level(logging.INFO, logger="resilient_pipeline.alerting"):
        LoggingNotifier().send(ALERT)
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert ALERT.key == caplog.records[0].alert_key


def test_builtin_notifiers_satisfy_the_protocol() -> None:
    """Every built-in notifier is a Notifier."""
    notifiers = [
        LoggingNotifier(),
        WebhookNotifier("https://example.test/h"),
        SlackNotifier("https://example.test/h"),
        EmailNotifier("h", sender="a@b", recipients=["c@d"]),
    ]
    assert all(isinstance(n, Notifier) for n in notifiers)
