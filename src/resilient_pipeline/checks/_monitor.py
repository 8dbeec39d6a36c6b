"""``monitor()``: run a period's completeness and consistency checks and alert on failures.

The seed's ``monitorDailyCollection``, generalised: any checks, any period,
any notifiers. Every failed or errored check becomes one :class:`Alert`
(deduplicated per check and period by the :class:`Alerter`); the report is
returned so a scheduler can use its exit code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from resilient_pipeline._core import run_in_worker_thread
from resilient_pipeline.alerting import Alert, Alerter, LoggingNotifier, Notifier

from ._check import Check, CheckSuite, Dataset
from ._report import CheckReport

__all__ = ["amonitor", "monitor"]


def monitor(
    checks: CheckSuite | Iterable[Check],
    *,
    params: Mapping[str, Any] | None = None,
    alerter: Alerter | Notifier | None = None,
    connection: Any = None,
    datasets: Mapping[str, Dataset] | None = None,
    notify_success: bool = False,
) -> CheckReport:
    """Run ``checks`` for one period (``params``) and alert on every failure.

    Args:
        checks: A :class:`CheckSuite`, or checks to build one from.
        params: The period and anything else the checks bind (``{"day": "2026-11-28"}``).
        alerter: Where alerts go: an :class:`Alerter`, a bare notifier, or
            ``None`` for a :class:`LoggingNotifier`.
        connection: Database connection for SQL checks (overrides the suite's).
        datasets: Datasets for Python checks (merged over the suite's).
        notify_success: Also send an ``info`` alert when everything passed.

    Returns:
        The report; ``report.exit_code`` is what a scheduler should exit with.

    Raises:
        AlertDeliveryError: An alert could not be delivered (after all were tried).

    Examples:
        >>> from resilient_pipeline import checks
        >>> from resilient_pipeline.testing import MemoryNotifier
        >>> pager = MemoryNotifier()
        >>> report = monitor([checks.completeness(expected=[1, 2, 3])],
        ...                  params={"day": "2026-11-28"}, alerter=pager,
        ...                  datasets={"rows": [{"client_id": 1}, {"client_id": 2}]})
        >>> int(report.exit_code), [a.title for a in pager.alerts]
        (2, ['monitor: completeness failed'])
        >>> pager.alerts[0].message
        'expected 3 key(s), got 2: missing 3'
    """
    suite = checks if isinstance(checks, CheckSuite) else CheckSuite(checks=checks, name="monitor")
    if alerter is None:
        alerter = LoggingNotifier()
    router = alerter if isinstance(alerter, Alerter) else Alerter([alerter], name=suite.name)
    report = suite.run(params, connection=connection, datasets=datasets)
    alerts = report.alerts()
    if not alerts and notify_success:
        alerts = [
            Alert(
                severity="info",
                title=f"{suite.name}: all {len(report.results)} checks passed",
                details={"params": report.params},
            )
        ]
    if alerts:
        router.send_all(alerts)
    return report


amonitor = run_in_worker_thread(
    monitor,
    name="amonitor",
    doc=""":func:`monitor` from async code (checks and notifiers run in a worker thread).

    Takes exactly the arguments of :func:`monitor`.

    Examples:
        >>> import anyio
        >>> from resilient_pipeline import checks
        >>> report = anyio.run(lambda: amonitor([checks.clicks_exceed_impressions()],
        ...                                     datasets={"rows": []}))
        >>> report.passed
        True
    """,
)
