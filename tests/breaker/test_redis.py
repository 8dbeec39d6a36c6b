"""The Redis breaker store: batching, start-up reads, outages, and 8 real processes sharing it."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest

from resilient_pipeline import (
    CircuitBreaker,
    CircuitOpenError,
    ConfigurationError,
    ConsecutiveFailures,
    OpenDuration,
)
from resilient_pipeline.breaker import CallRejected, HalfOpen
from resilient_pipeline.testing import FakeClock

redis = pytest.importorskip("redis")

from resilient_pipeline.breaker._redis import CircuitStoreFailed, RedisBreakerStore  # noqa: E402
from tests.helpers import breaker_workers  # noqa: E402

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    """A sync client on the real server, counting the scripts it runs."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def scripts_run(client: Any) -> int:
    """How many EVALSHA calls the server has seen (all clients)."""
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def unreachable() -> Any:
    """A client for a port nobody listens on, without connection retries."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )


def fail() -> None:
    raise ConnectionError("down")


def test_closed_successes_cost_no_round_trip(client: Any, redis_prefix: str) -> None:
    """A thousand successes within sync_interval run one script (the start-up read)."""
    clock = FakeClock()
    store = RedisBreakerStore(client, prefix=redis_prefix, sync_interval=1.0)
    breaker = CircuitBreaker(name="ads", store=store, clock=clock)
    backend = breaker._backend
    backend.admit(clock)  # the start-up read
    before = backend._fetched
    for _ in range(1000):
        breaker.call(len, "x")
    assert before == backend._fetched
    assert 1001 == breaker.statistics().calls


def test_successes_are_flushed_with_the_next_round_trip(client: Any, redis_prefix: str) -> None:
    """Batched successes reach Redis and reset the shared consecutive count."""
    clock = FakeClock()
    store = RedisBreakerStore(client, prefix=redis_prefix, sync_interval=1.0)
    a = CircuitBreaker(name="ads", store=store, clock=clock, trip=ConsecutiveFailures(threshold=3))
    b = CircuitBreaker(name="ads", store=store, clock=clock, trip=ConsecutiveFailures(threshold=3))
    for _ in range(2):
        with pytest.raises(ConnectionError):
            a.call(fail)
    b.call(len, "x")
    assert 2 == a.statistics().consecutive_failures  # b's success is still local
    clock.advance(1.0)
    b.call(len, "x")  # stale cache: this call flushes
    assert 0 == a.statistics().consecutive_failures


def test_a_new_process_reads_the_shared_state_first(client: Any, redis_prefix: str) -> None:
    """A breaker created after the circuit opened rejects its very first call."""
    store = RedisBreakerStore(client, prefix=redis_prefix, sync_interval=60)
    CircuitBreaker(name="ads", store=store).force_open()
    newcomer = CircuitBreaker(name="ads", store=RedisBreakerStore(client, prefix=redis_prefix))
    with pytest.raises(CircuitOpenError):
        newcomer.call(len, "x")


@pytest.mark.parametrize(
    ("policy", "expected"), [("local", "ok"), ("reject", "rejected (unavailable)")]
)
def test_unreachable_redis_falls_back_by_policy(policy: str, expected: str) -> None:
    """An unreachable server: the local fallback or rejection, and one event per outage."""
    dead = unreachable()
    seen: list[object] = []
    store = RedisBreakerStore(dead, on_unavailable=policy)  # type: ignore[arg-type]
    breaker = CircuitBreaker(name="ads", store=store, clock=FakeClock(), on_event=seen.append)
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(breaker.call(lambda: "ok"))
        except CircuitOpenError as exc:
            outcomes.append(f"rejected ({exc.state})")
    assert [expected, expected] == outcomes
    assert [CircuitStoreFailed] == [type(e) for e in seen if not isinstance(e, CallRejected)]
    dead.close()


def test_local_fallback_still_trips(redis_prefix: str) -> None:
    """With Redis down, the in-process fallback still protects the upstream."""
    dead = unreachable()
    breaker = CircuitBreaker(
        name="ads",
        store=RedisBreakerStore(dead),
        clock=FakeClock(),
        trip=ConsecutiveFailures(threshold=2),
    )
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    with pytest.raises(CircuitOpenError):
        breaker.call(len, "x")
    dead.close()


def test_store_options_are_validated(client: Any) -> None:
    """Bad store options fail at construction, naming the option."""
    with pytest.raises(ConfigurationError) as info:
        RedisBreakerStore(client, on_unavailable="maybe")  # type: ignore[arg-type]
    assert "on_unavailable" == info.value.option
    with pytest.raises(ConfigurationError) as info:
        RedisBreakerStore(None)
    assert "client" == info.value.option


# ----------------------------------------------------------- eight real processes
def _context() -> Any:
    # forkserver: a clean interpreter (no inherited threads or sockets) that
    # imports the workers once, so eight processes start in a fraction of a second.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.helpers.breaker_workers"])
    return ctx


def _spawn(target: Any, *args: Any) -> list[Any]:
    ctx = _context()
    processes = [ctx.Process(target=target, args=args, daemon=True) for _ in range(8)]
    for process in processes:
        process.start()
    return processes


def _join(processes: list[Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.1))
        if process.is_alive():
            process.kill()
            pytest.fail("a worker process did not finish in time")
    assert [0] * len(processes) == [p.exitcode for p in processes]


@pytest.mark.slow
def test_eight_processes_never_run_more_trials_than_permits(
    redis_url: str, redis_prefix: str
) -> None:
    """Eight processes racing a half-open circuit: at most 2 trials at once, ever."""
    ctx = _context()
    opener = breaker_workers.make_breaker(redis_url, redis_prefix)
    opener.force_open()
    opener.reset()
    for _ in range(3):
        with pytest.raises(ConnectionError):
            opener.call(fail)
    start = ctx.Event()
    inflight, peak, probes = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Value("i", 0)
    processes = _spawn(
        breaker_workers.probe_worker, redis_url, redis_prefix, start, inflight, peak, probes
    )
    time.sleep(0.3)  # let the open period (0.2 s) pass while the workers start
    start.set()
    _join(processes)
    assert 2 == peak.value
    assert probes.value > 10


@pytest.mark.slow
def test_eight_processes_all_close_after_the_upstream_recovers(
    redis_url: str, redis_prefix: str
) -> None:
    """Every process ends closed once the shared upstream is healthy again."""
    ctx = _context()
    start, healthy, results = ctx.Event(), ctx.Value("i", 0), ctx.Queue()
    processes = _spawn(
        breaker_workers.recovery_worker, redis_url, redis_prefix, start, healthy, results
    )
    start.set()
    observer = breaker_workers.make_breaker(redis_url, redis_prefix)
    deadline = time.monotonic() + 15
    while observer.statistics().openings < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # wait until the workers tripped it and a trial failed too
    assert observer.statistics().openings >= 2
    healthy.value = 1
    states = [results.get(timeout=15) for _ in range(8)]
    _join(processes)
    assert ["closed"] * 8 == states


@pytest.mark.slow
def test_a_killed_probe_holder_does_not_wedge_the_breaker(
    redis_url: str, redis_prefix: str
) -> None:
    """SIGKILL the process holding the only permit: after permit_ttl another probe runs."""
    ctx = _context()
    breaker = breaker_workers.make_breaker(
        redis_url,
        redis_prefix,
        half_open=HalfOpen(permits=1, permit_ttl=0.5),
        open_duration=OpenDuration(seconds=0.01),
    )
    for _ in range(3):
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    time.sleep(0.05)
    holding = ctx.Event()
    victim = ctx.Process(
        target=breaker_workers.hung_probe_worker, args=(redis_url, redis_prefix, holding)
    )
    victim.start()
    assert holding.wait(15)
    victim.kill()
    victim.join(5)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(len, "x")
    assert "half_open" == info.value.state
    time.sleep(0.6)
    assert 1 == breaker.call(len, "x")
    assert "closed" == breaker.state
