"""HealthRegistry: concurrency, per-check timeouts, abandoned probes, the cache, sync and async."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import anyio
import pytest

from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.health import HealthCheck, HealthOutcome, HealthRegistry
from resilient_pipeline.testing import FakeClock

# A hanging probe is waited on for this long: the timeout itself is the test's wait.
TIMEOUT = 0.2
# Generous upper bound on "returned within its timeout" on a loaded 2-core machine.
SLACK = 2.0


@pytest.fixture
def never() -> Iterator[threading.Event]:
    """An event nobody sets during the test; set afterwards so hung probe threads end."""
    event = threading.Event()
    yield event
    event.set()


class Counter:
    """A probe that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
            return f"call {self.calls}"


def test_sync_checks_run_concurrently() -> None:
    """Two probes that each wait for the other both pass: they run at the same time."""
    barrier = threading.Barrier(2, timeout=5)
    registry = HealthRegistry(
        [
            HealthCheck("a", lambda: str(barrier.wait()), timeout=5),
            HealthCheck("b", lambda: str(barrier.wait()), timeout=5),
        ]
    )
    report = registry.run()
    assert ["ok", "ok"] == [r.status for r in report.results]
    assert {"0", "1"} == {r.detail for r in report.results}


@pytest.mark.anyio
async def test_async_checks_run_concurrently_in_arun() -> None:
    """Async probes run as concurrent tasks: each waits for the other's signal."""
    first, second = anyio.Event(), anyio.Event()

    async def a() -> str:
        first.set()
        await second.wait()
        return "a"

    async def b() -> str:
        second.set()
        await first.wait()
        return "b"

    barrier = threading.Barrier(2, timeout=5)
    registry = HealthRegistry(
        [
            HealthCheck("a", a, timeout=5),
            HealthCheck("b", b, timeout=5),
            HealthCheck("t1", lambda: str(barrier.wait()), timeout=5),
            HealthCheck("t2", lambda: str(barrier.wait()), timeout=5),
        ]
    )
    report = await registry.arun()
    assert ["a", "b"] == [report.result("a").detail, report.result("b").detail]
    assert ["ok"] * 4 == [r.status for r in report.results]


def test_async_probe_from_sync_run_gets_its_own_loop() -> None:
    """run() awaits an async probe in an event loop of its own."""

    async def probe() -> HealthOutcome:
        await anyio.lowlevel.checkpoint()
        return HealthOutcome("degraded", "slow replica")

    report = HealthRegistry([HealthCheck("replica", probe)]).run()
    assert ("degraded", "slow replica") == (report.status, report.result("replica").detail)


def test_hanging_sync_probe_fails_within_its_timeout(never: threading.Event) -> None:
    """A probe that never returns is failing after its timeout; the other checks still report."""
    registry = HealthRegistry(
        [HealthCheck("hang", never.wait, timeout=TIMEOUT), HealthCheck("ok", lambda: "fine")],
        cache_ttl=0,
    )
    started = time.perf_counter()
    report = registry.run()
    elapsed = time.perf_counter() - started
    hang = report.result("hang")
    assert ("failing", f"no answer within {TIMEOUT:g} s") == (hang.status, hang.detail)
    assert TIMEOUT <= hang.latency < SLACK
    assert elapsed < SLACK
    assert ("ok", "fine") == (report.result("ok").status, report.result("ok").detail)
    assert (503, "failing") == (report.http_status, report.status)


def test_a_hung_probe_is_not_started_again_until_it_returns() -> None:
    """While a timed-out probe still runs, later runs report it at once instead of piling up."""
    calls = Counter()
    release = threading.Event()

    def probe() -> str:
        calls()
        release.wait()
        return "back"

    registry = HealthRegistry([HealthCheck("hung-once", probe, timeout=TIMEOUT)], cache_ttl=0)
    try:
        assert "failing" == registry.run().status
        started = time.perf_counter()
        again = registry.run().result("hung-once")
        assert time.perf_counter() - started < TIMEOUT  # answered at once, no second wait
    finally:
        release.set()
    assert "failing" == again.status
    assert again.detail.startswith(f"no answer within {TIMEOUT:g} s (still running since")
    assert 1 == calls.calls
    # The abandoned thread ends once its call returns; the next run starts the probe anew.
    (thread,) = [
        t for t in threading.enumerate() if t.name == "resilient-pipeline health: hung-once"
    ]
    assert thread.daemon
    thread.join(5)
    report = registry.run()
    assert ("ok", "back", 2) == (report.status, report.result("hung-once").detail, calls.calls)


@pytest.mark.anyio
async def test_hanging_probes_fail_within_timeout_in_arun(never: threading.Event) -> None:
    """arun(): a hanging async probe is cancelled, a hanging sync one abandoned, both failing."""

    async def stuck() -> None:
        await anyio.Event().wait()

    registry = HealthRegistry(
        [
            HealthCheck("async", stuck, timeout=TIMEOUT),
            HealthCheck("sync", never.wait, timeout=TIMEOUT),
            HealthCheck("fine", lambda: None),
        ]
    )
    with anyio.fail_after(SLACK):
        report = await registry.arun()
    assert [("failing", f"no answer within {TIMEOUT:g} s")] * 2 == [
        (report.result(n).status, report.result(n).detail) for n in ("async", "sync")
    ]
    assert "ok" == report.result("fine").status
    assert report.result("async").latency >= TIMEOUT * 0.9


def test_probe_errors_are_failing_with_masked_detail() -> None:
    """A probe that raises is failing, its error the detail, passwords masked."""

    def probe() -> None:
        raise ConnectionError("redis://:hunter2@cache:6379/0 refused")

    result = HealthRegistry([HealthCheck("cache", probe)]).run().result("cache")
    assert ("failing", "ConnectionError: redis://:***@cache:6379/0 refused") == (
        result.status,
        result.detail,
    )


def test_a_sync_probe_returning_a_coroutine_is_failing_and_closed() -> None:
    """A plain function handing back a coroutine is a mistake reported, not a leak."""

    async def coro() -> None:
        return None

    def probe() -> object:
        return coro()

    result = HealthRegistry([HealthCheck("c", probe)]).run().result("c")
    assert (
        "failing",
        "the probe returned a coroutine; expected None, a str or a HealthOutcome",
    ) == (
        result.status,
        result.detail,
    )


def test_non_critical_failure_degrades_but_stays_ready() -> None:
    """A failing check made with critical=False leaves the service ready, degraded."""

    def down() -> None:
        raise OSError("down")

    report = HealthRegistry([HealthCheck("optional", down, critical=False)]).run()
    assert ("degraded", True, 200) == (report.status, report.ready, report.http_status)
    assert "failing" == report.result("optional").status


def test_cache_ttl_with_injected_clock() -> None:
    """A report is reused until cache_ttl has passed on the registry's clock."""
    clock = FakeClock()
    calls = Counter()
    registry = HealthRegistry([HealthCheck("c", calls)], cache_ttl=5.0, clock=clock)
    first = registry.run()
    clock.advance(4.999)
    assert first is registry.run()
    assert 1 == calls.calls
    clock.advance(0.001)
    second = registry.run()
    assert (2, "call 2") == (calls.calls, second.result("c").detail)
    assert second is not first
    assert clock.time() == second.checked_at
    assert registry.run(fresh=True) is not second
    assert 3 == calls.calls


@pytest.mark.anyio
async def test_cache_is_shared_by_run_and_arun() -> None:
    """arun() reuses a report run() made, and the other way round."""
    clock = FakeClock()
    calls = Counter()
    registry = HealthRegistry([HealthCheck("c", calls)], cache_ttl=1.0, clock=clock)
    first = await anyio.to_thread.run_sync(registry.run)
    assert first is await registry.arun()
    clock.advance(1.0)
    second = await registry.arun()
    assert second is registry.run()
    assert 2 == calls.calls


def test_zero_ttl_never_caches_and_add_invalidates() -> None:
    """cache_ttl=0 runs every time; adding a check drops a cached report."""
    calls = Counter()
    uncached = HealthRegistry([HealthCheck("c", calls)], cache_ttl=0)
    uncached.run()
    uncached.run()
    assert 2 == calls.calls
    cached = HealthRegistry([HealthCheck("c", calls)], cache_ttl=60, clock=FakeClock())
    cached.run()
    cached.add(HealthCheck("d", lambda: None))
    assert ["c", "d"] == [r.name for r in cached.run().results]
    assert 4 == calls.calls


def test_decorator_names_the_check_after_the_function() -> None:
    """@registry.check() adds the function under its own name, keeping it callable."""
    registry = HealthRegistry()

    @registry.check(timeout=0.5, critical=False)
    def disk_space() -> str:
        return "41% used"

    assert "41% used" == disk_space()
    (check,) = registry.checks
    assert ("disk_space", 0.5, False) == (check.name, check.timeout, check.critical)


@pytest.mark.parametrize(
    ("build", "option", "value"),
    [
        (lambda: HealthCheck("", lambda: None), "name", ""),
        (lambda: HealthCheck("c", "not callable"), "probe", "not callable"),  # type: ignore[arg-type]
        (lambda: HealthCheck("c", lambda: None, timeout=0), "timeout", 0),
        (lambda: HealthCheck("c", lambda: None, timeout=float("inf")), "timeout", float("inf")),
        (lambda: HealthCheck("c", lambda: None, critical=1), "critical", 1),  # type: ignore[arg-type]
        (lambda: HealthRegistry(cache_ttl=-1), "cache_ttl", -1),
        (lambda: HealthRegistry(["c"]), "checks", "c"),  # type: ignore[list-item]
    ],
)
def test_bad_options_name_themselves(build: object, option: str, value: object) -> None:
    """Invalid options fail at construction with a ConfigurationError naming them."""
    with pytest.raises(ConfigurationError) as info:
        build()  # type: ignore[operator]
    assert (option, value) == (info.value.option, info.value.value)


def test_duplicate_names_are_refused_and_nothing_is_added() -> None:
    """A second check with a taken name is refused; the registry keeps what it had."""
    registry = HealthRegistry([HealthCheck("db", lambda: None)])
    with pytest.raises(ConfigurationError, match="unique") as info:
        registry.add(HealthCheck("cache", lambda: None), HealthCheck("db", lambda: None))
    assert ["db"] == info.value.value
    assert ["db"] == [c.name for c in registry.checks]
