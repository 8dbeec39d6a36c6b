"""Alerting: alerts, routing with deduplication, notifiers (log, Slack, webhook, e-mail).

Examples:
    >>> from resilient_pipeline.alerting import Alert
    >>> Alert(severity="error", title="meta_ads incomplete", message="3 gaps").severity
    'error'
"""

from __future__ import annotations

from ._alert import (
    SEVERITIES,
    Alert,
    AlertDeliveryFailed,
    AlertSent,
    AlertSuppressed,
    Notifier,
    Severity,
    check_severity,
    severity_rank,
)
from ._alerter import Alerter, AlerterStatistics, AlertLog, Delivery, MemoryAlertLog, Route
from ._log import StoreAlertLog
from ._notifiers import EmailNotifier, LoggingNotifier, SlackNotifier, WebhookNotifier

__all__ = [
    "SEVERITIES",
    "Alert",
    "AlertDeliveryFailed",
    "AlertLog",
    "AlertSent",
    "AlertSuppressed",
    "Alerter",
    "AlerterStatistics",
    "Delivery",
    "EmailNotifier",
    "LoggingNotifier",
    "MemoryAlertLog",
    "Notifier",
    "Route",
    "Severity",
    "SlackNotifier",
    "StoreAlertLog",
    "WebhookNotifier",
    "check_severity",
    "severity_rank",
]
