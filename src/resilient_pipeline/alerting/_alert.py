"""Alerts: what a person must hear about, and the events that trace their delivery.

An :class:`Alert` has the shape the seed used (severity, title, message,
action, details) plus a deduplication key. Severities are ordered
``info < warning < error < critical``; routing and exit codes compare them
with :func:`severity_rank`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any, Literal, Protocol, TypeAlias, cast, runtime_checkable

import attrs

from resilient_pipeline._core import Event, in_, non_empty_str, redact, redact_data

__all__ = [
    "SEVERITIES",
    "Alert",
    "AlertDeliveryFailed",
    "AlertSent",
    "AlertSuppressed",
    "Severity",
    "check_severity",
    "severity_rank",
]

Severity: TypeAlias = Literal["info", "warning", "error", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error", "critical")
"""Every severity, least urgent first: routing and exit codes compare by this order."""
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
_LOG_LEVELS = {
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def check_severity(value: object, option: str = "severity") -> Severity:
    """Return ``value`` if it is a severity, else raise :class:`ConfigurationError`."""
    return cast("Severity", in_(*SEVERITIES).check(option, value))


def severity_rank(severity: Severity) -> int:
    """0 for ``info`` up to 3 for ``critical``.

    Examples:
        >>> severity_rank("warning") < severity_rank("critical")
        True
    """
    return _RANK[severity]


def log_level(severity: Severity) -> int:
    """The stdlib logging level matching ``severity``."""
    return _LOG_LEVELS[severity]


def _frozen_details(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # Offending rows and error texts travel to chat and e-mail: secrets are masked here, once.
    return cast("dict[str, Any]", redact_data(dict(value or {})))


def _masked(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


@attrs.frozen(kw_only=True)
class Alert:
    """Something a person has to know about, and what they should do.

    Attributes:
        severity: ``"info"``, ``"warning"``, ``"error"`` or ``"critical"``.
        title: One line, e.g. ``"meta_ads 2026-11-28 incomplete"``.
        message: What happened, in a sentence or two.
        action: What to do about it (a command, a runbook link).
        details: JSON-friendly context (missing keys, counts, the run id).
        key: Deduplication key: the same key is not re-sent within the
            alerter's window. Defaults to a digest of severity, title and
            message, so an identical alert is deduplicated; give the
            partition (``"meta_ads/7/2026-11-28"``) to deduplicate per partition.

    Secrets in the title, message, action and details (tokens in URLs,
    ``password=...``, secret-named fields of offending rows) are masked when
    the alert is made, so no notifier, log or alert log ever sees them.

    Examples:
        >>> alert = Alert(severity="error", title="meta_ads 2026-11-28 incomplete",
        ...               message="14 of 16 clients collected",
        ...               action="resilient-pipeline-check ... or see docs/runbooks",
        ...               details={"missing": [7, 12]})
        >>> alert.severity, alert.details["missing"]
        ('error', [7, 12])
        >>> len(alert.key)
        16
    """

    severity: Severity = attrs.field(validator=lambda _i, _a, v: check_severity(v))
    title: str = attrs.field(converter=_masked)
    message: str = attrs.field(default="", converter=_masked)
    action: str = attrs.field(default="", converter=_masked)
    details: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_details, hash=False)
    key: str = attrs.field()

    @key.default
    def _default_key(self) -> str:
        text = "\x1f".join((self.severity, self.title, self.message))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __attrs_post_init__(self) -> None:
        non_empty_str(blank=False).check("title", self.title)
        non_empty_str().check("key", self.key)

    def to_dict(self) -> dict[str, Any]:
        """The alert as a JSON-friendly dict (what the JSON webhook posts).

        Examples:
            >>> Alert(severity="info", title="t", key="k").to_dict()["title"]
            't'
        """
        return {
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "action": self.action,
            "details": json.loads(json.dumps(dict(self.details), default=str)),
            "key": self.key,
        }

    def text(self) -> str:
        """A plain-text rendering for logs, e-mail bodies and chat messages.

        Examples:
            >>> print(Alert(severity="warning", title="late", message="m", action="a").text())
            [WARNING] late
            m
            Action: a
        """
        lines = [f"[{self.severity.upper()}] {self.title}"]
        if self.message:
            lines.append(self.message)
        if self.action:
            lines.append(f"Action: {self.action}")
        return "\n".join(lines)


# --------------------------------------------------------------------- events
@attrs.frozen(kw_only=True)
class AlertSent(Event):
    """An alert was delivered by one notifier.

    Attributes:
        notifier: The notifier's name.
        severity: The alert's severity.
        title: The alert's title.
        key: The alert's deduplication key.
    """

    logger_name = "resilient_pipeline.alerting"
    level = logging.INFO
    template = "{source}: sent {severity} alert {title!r} via {notifier}"

    notifier: str
    severity: str
    title: str
    key: str


@attrs.frozen(kw_only=True)
class AlertSuppressed(Event):
    """An alert was not sent: a duplicate within the window, or over the rate limit.

    Attributes:
        reason: ``"duplicate"``, ``"rate_limited"`` or ``"no_route"``.
        severity: The alert's severity.
        title: The alert's title.
        key: The alert's deduplication key.
    """

    logger_name = "resilient_pipeline.alerting"
    level = logging.INFO
    template = "{source}: suppressed {severity} alert {title!r} ({reason})"

    reason: str
    severity: str
    title: str
    key: str


@attrs.frozen(kw_only=True)
class AlertDeliveryFailed(Event):
    """A notifier could not deliver an alert, even after retrying.

    Logged at CRITICAL with the whole alert text, so the alert itself still
    reaches a person reading the logs.

    Attributes:
        notifier: The notifier's name.
        severity: The alert's severity.
        title: The alert's title.
        text: The full alert text.
        error: Why delivery failed, secrets masked.
    """

    logger_name = "resilient_pipeline.alerting"
    level = logging.CRITICAL
    template = "{source}: could not deliver {severity} alert via {notifier} ({error}):\n{text}"

    notifier: str
    severity: str
    title: str
    text: str
    error: str


@runtime_checkable
class Notifier(Protocol):
    """Delivers an :class:`~resilient_pipeline.Alert` to people: chat, e-mail, a log.

    ``send`` blocks until the alert is delivered or raises
    :class:`~resilient_pipeline.exceptions.AlertDeliveryError`; an
    :class:`~resilient_pipeline.Alerter` runs it in a worker thread from async
    code, so a notifier is written once. Retrying is the notifier's job (the
    built-in ones use :class:`~resilient_pipeline.RetryPolicy`).

    Examples:
        >>> class Printer:
        ...     name = "printer"
        ...     def send(self, alert: "Alert", /) -> None:
        ...         print(alert.title)
        >>> isinstance(Printer(), Notifier)
        True
    """

    @property
    def name(self) -> str:
        """A short name for events and errors (no secrets)."""
        ...

    def send(self, alert: Alert, /) -> None:
        """Deliver ``alert`` or raise."""
        ...
