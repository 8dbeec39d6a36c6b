"""The built-in notifiers: a log, a JSON webhook, a Slack-compatible webhook, and SMTP e-mail.

Each one delivers or raises :class:`AlertDeliveryError`; the ones that talk
to a network retry transient failures with the project's own
:class:`~resilient_pipeline.RetryPolicy` (so a test's
:func:`~resilient_pipeline.testing.set_testing` makes their waits instant).
Webhook URLs carry secrets (Slack's token is in the path), so they never
appear in a repr, a name, an event or an error message.
"""

from __future__ import annotations

import email.message
import logging
import smtplib
import ssl
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from resilient_pipeline._core import RETRYABLE_STATUS_CODES, describe_error, number
from resilient_pipeline.exceptions import (
    AlertDeliveryError,
    ConfigurationError,
    MissingDependencyError,
)
from resilient_pipeline.retry import RetryPolicy

from ._alert import Alert, log_level

__all__ = ["EmailNotifier", "LoggingNotifier", "SlackNotifier", "WebhookNotifier"]


class _Undeliverable(Exception):
    """A failure that retrying cannot fix (a 4xx answer, a refused login)."""


def _retryable(error: Exception) -> bool:
    return not isinstance(error, _Undeliverable)


def _named(policy: RetryPolicy, name: str) -> RetryPolicy:
    """The policy, named after the notifier in retry events (unless it has a name)."""
    return policy if policy.name else attrs.evolve(policy, name=name)


DEFAULT_RETRY = RetryPolicy(
    max_attempts=4, base_delay=1.0, max_delay=30.0, deadline=120.0, retry_if=_retryable
)
"""Up to 4 attempts within 2 minutes; a 4xx answer or a refused login is not retried."""


@attrs.define(eq=False)
class LoggingNotifier:
    """Logs each alert on ``resilient_pipeline.alerting`` at the level matching its severity.

    The notifier of last resort: it cannot fail, so route everything to it too.

    Examples:
        >>> LoggingNotifier().name
        'log'
    """

    logger: logging.Logger = attrs.field(
        factory=lambda: logging.getLogger("resilient_pipeline.alerting"), kw_only=True
    )
    name: str = attrs.field(default="log", kw_only=True)

    def send(self, alert: Alert, /) -> None:
        """Log ``alert``; its fields go in ``extra``."""
        self.logger.log(
            log_level(alert.severity),
            alert.text(),
            extra={"alert": alert.to_dict(), "alert_key": alert.key},
        )


def _check_url(url: object) -> str:
    parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        # The URL may hold a token: name the problem, never echo the value.
        raise ConfigurationError("url must be an http:// or https:// URL", option="url", value=None)
    return url  # type: ignore[return-value]  # parsed proved it is a str


@attrs.define(eq=False)
class WebhookNotifier:
    """POSTs each alert as JSON (:meth:`Alert.to_dict`) to a URL, retrying transient failures.

    Needs the ``http`` extra (httpx). Connection errors, timeouts, 408/425/
    429/5xx answers are retried (honouring ``Retry-After``); any other 4xx
    answer means the request itself is wrong and fails at once.

    Args:
        url: The endpoint; kept out of reprs, names and errors.
        headers: Extra headers (e.g. ``{"Authorization": "Bearer ..."}``).
        timeout: Seconds per HTTP request.
        retry: The retry policy (default: 4 attempts within 2 minutes).
        client: An ``httpx.Client`` to use (default: one per notifier).
        name: The name in events and errors (default: ``"webhook(<host>)"``).

    Examples:
        >>> notifier = WebhookNotifier("https://hooks.example/alerts?token=s3cret")
        >>> notifier.name, "s3cret" in repr(notifier)
        ('webhook(hooks.example)', False)
    """

    url: str = attrs.field(converter=_check_url, repr=False)
    headers: Mapping[str, str] = attrs.field(factory=dict, kw_only=True, repr=False)
    timeout: float = attrs.field(default=10.0, kw_only=True)
    retry: RetryPolicy = attrs.field(default=DEFAULT_RETRY, kw_only=True)
    client: Any = attrs.field(default=None, kw_only=True, repr=False)  # an httpx.Client
    name: str = attrs.field(kw_only=True)
    _post: Callable[[dict[str, Any]], None] = attrs.field(init=False, repr=False)

    @name.default
    def _default_name(self) -> str:
        return f"{self.kind}({urllib.parse.urlsplit(self.url).hostname})"

    kind = "webhook"

    def __attrs_post_init__(self) -> None:
        try:
            import httpx  # noqa: F401
        except ImportError as exc:  # pragma: no cover - httpx is installed for the tests
            raise MissingDependencyError(
                package="httpx", extra="http", feature=f"{type(self).__name__}"
            ) from exc
        number(gt=0).check("timeout", self.timeout)
        self._post = _named(self.retry, self.name)(self._post_once)

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON body posted for ``alert``; override to adapt to another service."""
        return alert.to_dict()

    def _post_once(self, body: dict[str, Any]) -> None:
        import httpx

        client = self.client or httpx.Client(timeout=self.timeout)
        try:
            response = client.post(self.url, json=body, headers=dict(self.headers))
        finally:
            if self.client is None:
                client.close()
        if response.is_success:
            return
        message = f"{self.name} answered HTTP {response.status_code}"
        if response.status_code in RETRYABLE_STATUS_CODES:
            # Carries the server's Retry-After for the retry policy to honour.
            raise httpx.HTTPStatusError(message, request=response.request, response=response)
        raise _Undeliverable(message)

    def send(self, alert: Alert, /) -> None:
        """POST ``alert``; raise :class:`AlertDeliveryError` once retrying is exhausted."""
        try:
            self._post(self.payload(alert))
        except Exception as exc:
            # httpx messages contain the URL (and its token): describe by type only.
            reason = str(exc) if isinstance(exc, _Undeliverable) else _describe_http(exc)
            raise AlertDeliveryError(
                f"{self.name}: {reason}", notifier=self.name, title=alert.title
            ) from None


def _describe_http(error: Exception) -> str:
    import httpx

    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, httpx.HTTPError):
        return type(error).__name__
    return describe_error(error)


_SLACK_COLORS = {"info": "#439FE0", "warning": "#E8A317", "error": "#D00000", "critical": "#7B0000"}


@attrs.define(eq=False)
class SlackNotifier(WebhookNotifier):
    """A :class:`WebhookNotifier` that posts Slack's incoming-webhook format.

    Also accepted by Mattermost, Rocket.Chat and Discord's ``/slack`` endpoint.

    Examples:
        >>> notifier = SlackNotifier("https://hooks.slack.com/services/T0/B0/XXXX")
        >>> body = notifier.payload(Alert(severity="critical", title="DB down", action="page"))
        >>> body["text"], body["attachments"][0]["color"]
        (':rotating_light: [CRITICAL] DB down', '#7B0000')
    """

    kind = "slack"

    def payload(self, alert: Alert) -> dict[str, Any]:
        """Slack's ``text`` + ``attachments`` body for ``alert``."""
        icon = ":rotating_light: " if alert.severity == "critical" else ""
        fields = [
            {"title": str(name), "value": str(value), "short": len(str(value)) < 40}
            for name, value in alert.details.items()
        ]
        if alert.action:
            fields.insert(0, {"title": "Action", "value": alert.action, "short": False})
        return {
            "text": f"{icon}[{alert.severity.upper()}] {alert.title}",
            "attachments": [
                {
                    "color": _SLACK_COLORS[alert.severity],
                    "text": alert.message,
                    "fields": fields,
                    "footer": f"resilient-pipeline · key {alert.key}",
                }
            ],
        }


@attrs.define(eq=False)
class EmailNotifier:
    """Sends each alert as a plain-text e-mail over SMTP (stdlib ``smtplib``).

    Args:
        host: The SMTP server.
        port: Its port (587 with STARTTLS by default; 465 with ``use_ssl``).
        sender: The From address.
        recipients: The To addresses.
        username: Login name, when the server wants one.
        password: Its password; never in a repr, event or error.
        starttls: Upgrade the connection with STARTTLS (default ``True``).
        use_ssl: Connect with implicit TLS (SMTPS) instead.
        timeout: Seconds per SMTP operation.
        retry: The retry policy; a refused login or recipient is not retried.
        name: The name in events and errors.

    Examples:
        >>> notifier = EmailNotifier("smtp.example", sender="etl@example",
        ...                          recipients=["oncall@example"], password="pw")
        >>> notifier.name, "pw" in repr(notifier)
        ('email(smtp.example)', False)
    """

    host: str
    port: int = attrs.field(default=587, kw_only=True)
    sender: str = attrs.field(kw_only=True)
    recipients: Sequence[str] = attrs.field(kw_only=True, converter=tuple)
    username: str | None = attrs.field(default=None, kw_only=True)
    password: str | None = attrs.field(default=None, kw_only=True, repr=False)
    starttls: bool = attrs.field(default=True, kw_only=True)
    use_ssl: bool = attrs.field(default=False, kw_only=True)
    timeout: float = attrs.field(default=10.0, kw_only=True)
    retry: RetryPolicy = attrs.field(default=DEFAULT_RETRY, kw_only=True)
    name: str = attrs.field(kw_only=True)
    _deliver: Callable[[email.message.EmailMessage], None] = attrs.field(init=False, repr=False)

    @name.default
    def _default_name(self) -> str:
        return f"email({self.host})"

    def __attrs_post_init__(self) -> None:
        if not self.recipients:
            raise ConfigurationError.for_option("recipients", self.recipients, "must not be empty")
        number(gt=0).check("timeout", self.timeout)
        self._deliver = _named(self.retry, self.name)(self._deliver_once)

    def message(self, alert: Alert) -> email.message.EmailMessage:
        """The e-mail for ``alert``; override to change the subject or body."""
        msg = email.message.EmailMessage()
        msg["Subject"] = f"[{alert.severity.upper()}] {alert.title}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        details = "\n".join(f"  {k}: {v}" for k, v in alert.details.items())
        msg.set_content(alert.text() + (f"\n\nDetails:\n{details}" if details else ""))
        return msg

    def _deliver_once(self, msg: email.message.EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.use_ssl:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.starttls and not self.use_ssl:
                smtp.starttls(context=context)
            try:
                if self.username is not None:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
            except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused) as exc:
                raise _Undeliverable(f"{self.name}: {type(exc).__name__}") from None

    def send(self, alert: Alert, /) -> None:
        """E-mail ``alert``; raise :class:`AlertDeliveryError` once retrying is exhausted."""
        try:
            self._deliver(self.message(alert))
        except Exception as exc:
            raise AlertDeliveryError(
                f"{self.name}: {describe_error(exc)}", notifier=self.name, title=alert.title
            ) from exc
