"""Named health checks, each with its own timeout, run concurrently and cached briefly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import attrs

from resilient_pipeline._core import (
    Clock,
    in_,
    is_async,
    non_empty_str,
    number,
    resolve_clock,
)
from resilient_pipeline.exceptions import ConfigurationError

from ._values import HealthOutcome, HealthReport, HealthResult, judge, timed_out
from ._worker import Pending, bounded

__all__ = ["HealthCheck", "HealthRegistry"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT = 1.0


def _probe(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise ConfigurationError.for_option(
            attribute.name, value, "must be a callable taking no arguments"
        )


@attrs.frozen
class HealthCheck:
    """A named probe with its own timeout.

    The probe takes no arguments; it is a plain function (run in a worker
    thread, abandoned if late) or an ``async def`` (cancelled if late). It
    returns ``None`` (ok), a ``str`` (ok, with that detail) or a
    :class:`HealthOutcome`; raising means ``failing``, with the error as the
    detail (secrets masked).

    Args:
        name: Unique within a registry; the key in ``/readyz``'s JSON.
        probe: The function that looks.
        timeout: Seconds to wait for the probe; a later answer is ``failing``.
        critical: Whether ``failing`` makes the service not ready
            (``/readyz`` answers 503). A non-critical check that fails
            makes the service ``degraded`` only.

    Examples:
        >>> check = HealthCheck("disk", lambda: "41% used", timeout=0.5)
        >>> check.name, check.timeout, check.critical
        ('disk', 0.5, True)
    """

    name: str = attrs.field(validator=non_empty_str(blank=False))
    probe: Callable[[], Any] = attrs.field(validator=_probe)
    timeout: float = attrs.field(
        default=DEFAULT_TIMEOUT, kw_only=True, validator=number(gt=0, finite=True)
    )
    critical: bool = attrs.field(default=True, kw_only=True, validator=in_(True, False))


def _checks(value: Iterable[HealthCheck]) -> tuple[HealthCheck, ...]:
    checks = tuple(value)
    for check in checks:
        if not isinstance(check, HealthCheck):
            raise ConfigurationError.for_option("checks", check, "must be HealthCheck objects")
    names = [check.name for check in checks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError.for_option("checks", duplicates, "check names must be unique")
    return checks


@attrs.define(eq=False)
class HealthRegistry:
    """The service's health checks, run together for ``/readyz``.

    Every check runs at the same time as the others, each bounded by its own
    timeout: a hanging server makes its check ``failing`` within that
    timeout and the run still returns. A plain probe runs in a daemon thread
    that is abandoned when late (it ends whenever its call returns; until
    then a later run reports the check ``failing`` at once instead of
    starting a second thread behind it). An ``async def`` probe is cancelled
    when late.

    A report is reused for ``cache_ttl`` seconds, so aggressive probes (a
    load balancer every second, several replicas of it) do not each reach
    the database; ``fresh=True`` runs the checks anyway.

    Args:
        checks: The checks, with unique names (more with :meth:`add`).
        cache_ttl: Seconds a report is reused (``0``: never).
        clock: Where the cache's time and ``checked_at`` come from. Latency
            and timeouts are always real time: a probe really blocks.

    Examples:
        >>> from resilient_pipeline.health import HealthOutcome
        >>> registry = HealthRegistry(cache_ttl=0)
        >>> @registry.check(timeout=0.5)
        ... def queue_depth() -> HealthOutcome:
        ...     return HealthOutcome("degraded", "1200 messages waiting")
        >>> report = registry.run()
        >>> report.status, report.http_status, report.result("queue_depth").detail
        ('degraded', 200, '1200 messages waiting')
    """

    checks: tuple[HealthCheck, ...] = attrs.field(default=(), converter=_checks)
    cache_ttl: float = attrs.field(default=1.0, kw_only=True, validator=number(ge=0, finite=True))
    clock: Clock | None = attrs.field(default=None, kw_only=True)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    _cache: tuple[float, HealthReport] | None = attrs.field(default=None, init=False, repr=False)
    _inflight: dict[str, Pending] = attrs.field(factory=dict, init=False, repr=False)

    # ------------------------------------------------------------ building
    def add(self, *checks: HealthCheck) -> None:
        """Add checks; a name already taken is a ``ConfigurationError`` (nothing is added).

        Examples:
            >>> registry = HealthRegistry()
            >>> registry.add(HealthCheck("a", lambda: None), HealthCheck("b", lambda: None))
            >>> [c.name for c in registry.checks]
            ['a', 'b']
        """
        with self._lock:
            self.checks = _checks((*self.checks, *checks))
            self._cache = None

    def check(
        self,
        name: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        critical: bool = True,
    ) -> Callable[[F], F]:
        """Decorator: add the function as a check (named after it unless ``name`` is given).

        Examples:
            >>> registry = HealthRegistry()
            >>> @registry.check("upstream", timeout=2.0, critical=False)
            ... async def upstream_reachable() -> str:
            ...     return "200 OK"
            >>> registry.checks[0].name, registry.checks[0].critical
            ('upstream', False)
        """

        def add(fn: F) -> F:
            self.add(
                HealthCheck(
                    name if name is not None else fn.__name__,
                    fn,
                    timeout=timeout,
                    critical=critical,
                )
            )
            return fn

        return add

    # ------------------------------------------------------------- running
    def _cached(self, clock: Clock, fresh: bool) -> HealthReport | None:
        cache = self._cache
        if fresh or cache is None:
            return None
        at, report = cache
        return report if clock.monotonic() - at < self.cache_ttl else None

    def _finish(self, results: list[HealthResult], clock: Clock) -> HealthReport:
        report = HealthReport(results=tuple(results), checked_at=clock.time())
        if self.cache_ttl > 0:
            self._cache = (clock.monotonic(), report)
        return report

    def _pending(self, check: HealthCheck) -> tuple[Pending, bool]:
        """This check's run in a worker thread: the one still in flight, or a new one.

        Returns the run and whether it is left over from an earlier, timed-out probe.
        """
        with self._lock:
            pending = self._inflight.get(check.name)
            if pending is not None and not pending.done:
                return pending, pending.remaining() <= 0
            pending = Pending(
                check.name, check.probe, check.timeout, run_async=is_async(check.probe)
            )
            self._inflight[check.name] = pending
            return pending, False

    def _settle(
        self, check: HealthCheck, pending: Pending, stale: bool, clock: Clock
    ) -> HealthResult:
        if not pending.done:
            answer: object = timed_out()
            if stale:
                answer = HealthOutcome(
                    "failing",
                    f"no answer within {check.timeout:g} s (still running "
                    f"since an earlier probe {pending.latency():.1f} s ago)",
                )
            return judge(
                check.name,
                check.critical,
                check.timeout,
                answer,
                None,
                pending.latency(),
                clock.time(),
            )
        return judge(
            check.name,
            check.critical,
            check.timeout,
            pending.answer,
            pending.error,
            pending.latency(),
            clock.time(),
        )

    def run(self, *, fresh: bool = False) -> HealthReport:
        """Run every check at once (or reuse a report younger than ``cache_ttl``).

        Returns within the largest check timeout, whatever the probes do.
        Safe to call from any thread, and from async code's worker threads;
        ``async def`` probes get an event loop of their own.
        """
        clock = resolve_clock(self.clock)
        cached = self._cached(clock, fresh)
        if cached is not None:
            return cached
        runs = [(check, *self._pending(check)) for check in self.checks]
        for _, pending, _ in runs:
            pending.wait(pending.remaining())
        return self._finish(
            [self._settle(check, pending, stale, clock) for check, pending, stale in runs], clock
        )

    async def arun(self, *, fresh: bool = False) -> HealthReport:
        """Async twin of :meth:`run` (asyncio or trio); the event loop is never blocked.

        ``async def`` probes run in this event loop, cancelled when late;
        plain probes run in worker threads, as with :meth:`run`.
        """
        import anyio
        import anyio.to_thread

        clock = resolve_clock(self.clock)
        cached = self._cached(clock, fresh)
        if cached is not None:
            return cached
        checks = self.checks
        results: list[HealthResult | None] = [None] * len(checks)

        async def one(index: int, check: HealthCheck) -> None:
            if is_async(check.probe):
                started = time.perf_counter()
                answer: object = None
                error: Exception | None = None
                try:
                    answer = await bounded(check.probe, check.timeout)
                except Exception as exc:
                    error = exc
                results[index] = judge(
                    check.name,
                    check.critical,
                    check.timeout,
                    answer,
                    error,
                    time.perf_counter() - started,
                    clock.time(),
                )
                return
            pending, stale = self._pending(check)
            # The wait is bounded by the timeout, so even this helper thread never hangs.
            await anyio.to_thread.run_sync(
                pending.wait, pending.remaining(), abandon_on_cancel=True
            )
            results[index] = self._settle(check, pending, stale, clock)

        async with anyio.create_task_group() as group:
            for index, check in enumerate(checks):
                group.start_soon(one, index, check)
        return self._finish([r for r in results if r is not None], clock)
