"""Routing alerts to notifiers by severity, with deduplication and a rate limit.

The decisions (is this a duplicate? is the rate limit reached?) are made
under one lock from the clock's time; delivery happens outside it. A failed
delivery is emitted as :class:`AlertDeliveryFailed` (logged at CRITICAL with
the full alert text) and then raised as :class:`AlertDeliveryError`, so it is
never swallowed.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, Protocol, TypeAlias

import anyio.to_thread
import attrs

from resilient_pipeline._core import (
    Clock,
    EventHandler,
    describe_error,
    emit,
    normalize_handlers,
    number,
    resolve_clock,
)
from resilient_pipeline.exceptions import AlertDeliveryError, ConfigurationError

from ._alert import (
    Alert,
    AlertDeliveryFailed,
    AlertSent,
    AlertSuppressed,
    Notifier,
    Severity,
    check_severity,
    severity_rank,
)

__all__ = ["AlertLog", "Alerter", "AlerterStatistics", "Delivery", "MemoryAlertLog", "Route"]

Status: TypeAlias = Literal["sent", "duplicate", "rate_limited", "no_route", "failed"]


class AlertLog(Protocol):
    """Remembers which alert keys were sent, so a duplicate within a window is skipped.

    ``deliver_once`` calls ``deliver`` unless ``key`` was recorded less than
    ``window`` seconds before ``now``, and records ``key`` only if ``deliver``
    returns: a failed delivery is sent again next time. The default keeps
    keys in memory; :class:`~resilient_pipeline.alerting.StoreAlertLog` keeps them in
    the database (the idempotency-key record), shared by every process.
    """

    def deliver_once(
        self, key: str, *, window: float, now: float, deliver: Callable[[], None]
    ) -> bool:
        """Run ``deliver`` unless ``key`` is recent; ``True`` if it ran."""
        ...


@attrs.define(eq=False)
class MemoryAlertLog:
    """An in-process :class:`AlertLog` (the default): a dict of key → time sent.

    Examples:
        >>> log = MemoryAlertLog()
        >>> log.deliver_once("k", window=60, now=0.0, deliver=lambda: None)
        True
        >>> log.deliver_once("k", window=60, now=30.0, deliver=lambda: None)
        False
    """

    _sent: dict[str, float] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def deliver_once(
        self, key: str, *, window: float, now: float, deliver: Callable[[], None]
    ) -> bool:
        """Run ``deliver`` unless ``key`` was sent within ``window`` seconds of ``now``."""
        with self._lock:
            last = self._sent.get(key)
            if last is not None and now - last < window:
                return False
            # Reserve it while delivering, so a concurrent duplicate is skipped too.
            self._sent[key] = now
        try:
            deliver()
        except BaseException:
            with self._lock:
                if last is None:
                    self._sent.pop(key, None)
                else:
                    self._sent[key] = last
            raise
        return True


@attrs.frozen
class Route:
    """Send alerts whose severity is at least ``min_severity`` to ``notifier``.

    Examples:
        >>> from resilient_pipeline import LoggingNotifier
        >>> Route(LoggingNotifier(), min_severity="error").accepts("warning")
        False
    """

    notifier: Notifier
    min_severity: Severity = attrs.field(
        default="info", kw_only=True, validator=lambda _i, _a, v: check_severity(v, "min_severity")
    )

    def accepts(self, severity: Severity) -> bool:
        """Whether an alert of ``severity`` goes to this route's notifier."""
        return severity_rank(severity) >= severity_rank(self.min_severity)


@attrs.frozen
class Delivery:
    """What happened to one alert.

    Attributes:
        status: ``"sent"``, ``"duplicate"``, ``"rate_limited"``, ``"no_route"``
            or ``"failed"`` (only with ``raise_on_failure=False``).
        notifiers: The notifiers that delivered it.
        failures: ``"notifier: reason"`` for each one that could not.
    """

    alert: Alert
    status: Status
    notifiers: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()


@attrs.frozen
class AlerterStatistics:
    """Counts since the alerter was built.

    Attributes:
        sent: Alerts delivered (to every routed notifier).
        duplicates: Alerts skipped as duplicates within the window.
        rate_limited: Alerts skipped by the rate limit.
        failed: Alerts that at least one notifier could not deliver.
    """

    sent: int
    duplicates: int
    rate_limited: int
    failed: int


def _routes(value: Iterable[Route | Notifier]) -> tuple[Route, ...]:
    routes = tuple(item if isinstance(item, Route) else Route(item) for item in value)
    if not routes:
        raise ConfigurationError.for_option("routes", value, "must name at least one notifier")
    for route in routes:
        if not callable(getattr(route.notifier, "send", None)):
            raise ConfigurationError.for_option("routes", route.notifier, "is not a Notifier")
    return routes


@attrs.define(eq=False)
class Alerter:
    """Routes alerts by severity; skips duplicates and floods; never loses a failure.

    Args:
        routes: :class:`Route` objects (or bare notifiers, which get every alert).
        dedup_window: Seconds during which an alert with the same ``key`` is not
            re-sent (default one day; ``0`` disables deduplication).
        rate_limit: ``(alerts, seconds)``: at most that many alerts per sliding
            window; the rest are skipped and counted, and the next alert sent
            carries ``details["suppressed_alerts"]``. ``None`` disables it.
        alert_log: Where sent keys are remembered (default: in memory).
        raise_on_failure: Raise :class:`AlertDeliveryError` when a notifier
            fails (default). The failure is logged at CRITICAL either way.
        clock: Where time comes from.
        name: The name in events.
        on_event: Handlers for this alerter's events.

    Examples:
        >>> from resilient_pipeline.testing import MemoryNotifier
        >>> pager, chat = MemoryNotifier(name="pager"), MemoryNotifier(name="chat")
        >>> alerter = Alerter([Route(chat), Route(pager, min_severity="critical")])
        >>> alerter.send(Alert(severity="error", title="late")).notifiers
        ('chat',)
        >>> alerter.send(Alert(severity="error", title="late")).status
        'duplicate'
    """

    routes: tuple[Route, ...] = attrs.field(converter=_routes)
    dedup_window: float = attrs.field(default=86_400.0, kw_only=True)
    rate_limit: tuple[int, float] | None = attrs.field(default=(20, 3_600.0), kw_only=True)
    alert_log: AlertLog = attrs.field(factory=MemoryAlertLog, kw_only=True)
    raise_on_failure: bool = attrs.field(default=True, kw_only=True)
    clock: Clock | None = attrs.field(default=None, kw_only=True)
    name: str = attrs.field(default="alerter", kw_only=True)
    on_event: tuple[EventHandler, ...] = attrs.field(
        default=(), kw_only=True, converter=normalize_handlers
    )
    _recent: deque[float] = attrs.field(factory=deque, init=False, repr=False)
    _suppressed: int = attrs.field(default=0, init=False, repr=False)
    _counts: dict[str, int] = attrs.field(factory=dict, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        number(ge=0).check("dedup_window", self.dedup_window)
        if self.rate_limit is not None:
            limit: object = self.rate_limit
            ok = (
                isinstance(limit, tuple)
                and len(limit) == 2
                and type(limit[0]) is int
                and limit[0] >= 1
                and type(limit[1]) in (int, float)
                and math.isfinite(limit[1])
                and limit[1] > 0
            )
            if not ok:
                raise ConfigurationError.for_option(
                    "rate_limit", self.rate_limit, "must be (alerts >= 1, seconds > 0) or None"
                )

    def statistics(self) -> AlerterStatistics:
        """Counts of sent, duplicate, rate-limited and failed alerts."""
        with self._lock:
            get = self._counts.get
            return AlerterStatistics(
                sent=get("sent", 0),
                duplicates=get("duplicate", 0),
                rate_limited=get("rate_limited", 0),
                failed=get("failed", 0),
            )

    def _count(self, status: Status) -> None:
        with self._lock:
            self._counts[status] = self._counts.get(status, 0) + 1

    def _suppress(self, alert: Alert, reason: Status) -> Delivery:
        self._count(reason)
        emit(
            AlertSuppressed(
                source=self.name,
                reason=reason,
                severity=alert.severity,
                title=alert.title,
                key=alert.key,
            ),
            self.on_event,
        )
        return Delivery(alert, reason)

    def _admit(self, now: float) -> int | None:
        """Take a rate-limit slot: the count suppressed before it, or ``None`` if full."""
        with self._lock:
            if self.rate_limit is None:
                return 0
            limit, per = self.rate_limit
            while self._recent and now - self._recent[0] >= per:
                self._recent.popleft()
            if len(self._recent) >= limit:
                self._suppressed += 1
                return None
            self._recent.append(now)
            suppressed, self._suppressed = self._suppressed, 0
            return suppressed

    def send(self, alert: Alert) -> Delivery:
        """Route ``alert`` to its notifiers, unless it is a duplicate or over the rate limit.

        Raises:
            AlertDeliveryError: A notifier failed (after the others were tried).
        """
        routes = [route for route in self.routes if route.accepts(alert.severity)]
        if not routes:
            return self._suppress(alert, "no_route")
        clock = resolve_clock(self.clock)
        delivered: list[str] = []
        failures: list[tuple[str, Exception]] = []

        def deliver() -> None:
            suppressed = self._admit(clock.monotonic())
            if suppressed is None:
                raise _RateLimited
            outgoing = alert
            if suppressed:
                details = {**alert.details, "suppressed_alerts": suppressed}
                outgoing = attrs.evolve(alert, details=details)
            for route in routes:
                self._deliver(route.notifier, outgoing, delivered, failures)
            if failures:
                # Not recorded as sent: the next attempt re-sends it.
                raise failures[0][1]

        try:
            sent = self.alert_log.deliver_once(
                f"alert:{alert.key}", window=self.dedup_window, now=clock.time(), deliver=deliver
            )
        except _RateLimited:
            return self._suppress(alert, "rate_limited")
        except Exception as exc:
            if not failures:  # the alert log itself failed (database down)
                failures.append((type(self.alert_log).__name__, exc))
                self._fail(self.alert_log_name, alert, exc)
            self._count("failed")
            reasons = tuple(f"{name}: {describe_error(error)}" for name, error in failures)
            if self.raise_on_failure:
                raise AlertDeliveryError(
                    f"{alert.title!r} could not be delivered: {'; '.join(reasons)}",
                    notifier=failures[0][0],
                    title=alert.title,
                ) from failures[0][1]
            return Delivery(alert, "failed", tuple(delivered), reasons)
        if not sent:
            return self._suppress(alert, "duplicate")
        self._count("sent")
        return Delivery(alert, "sent", tuple(delivered))

    @property
    def alert_log_name(self) -> str:
        """The alert log's name in events."""
        return type(self.alert_log).__name__

    def _fail(self, notifier: str, alert: Alert, error: Exception) -> None:
        emit(
            AlertDeliveryFailed(
                source=self.name,
                notifier=notifier,
                severity=alert.severity,
                title=alert.title,
                text=alert.text(),
                error=describe_error(error),
            ),
            self.on_event,
        )

    def _deliver(
        self,
        notifier: Notifier,
        alert: Alert,
        delivered: list[str],
        failures: list[tuple[str, Exception]],
    ) -> None:
        name = str(getattr(notifier, "name", type(notifier).__name__))
        try:
            notifier.send(alert)
        except Exception as exc:
            failures.append((name, exc))
            self._fail(name, alert, exc)
            return
        delivered.append(name)
        emit(
            AlertSent(
                source=self.name,
                notifier=name,
                severity=alert.severity,
                title=alert.title,
                key=alert.key,
            ),
            self.on_event,
        )

    async def asend(self, alert: Alert) -> Delivery:
        """:meth:`send` from async code; notifiers run in a worker thread."""
        return await anyio.to_thread.run_sync(self.send, alert)

    def send_all(self, alerts: Sequence[Alert]) -> list[Delivery]:
        """Send each alert; raise the first delivery failure after trying all of them."""
        deliveries: list[Delivery] = []
        first: AlertDeliveryError | None = None
        for alert in alerts:
            try:
                deliveries.append(self.send(alert))
            except AlertDeliveryError as exc:  # noqa: PERF203 -- every alert gets its chance
                first = first or exc
                deliveries.append(Delivery(alert, "failed", (), (str(exc),)))
        if first is not None:
            raise first
        return deliveries


class _RateLimited(Exception):
    """Raised inside ``deliver`` so the alert log records nothing."""
