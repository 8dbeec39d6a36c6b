"""The Celery engine: the task's options, and a real fleet (RabbitMQ, PostgreSQL, Redis).

The fleet is four ``celery worker`` processes (three ``--pool=solo``, one
``--pool=prefork`` with one child) on a queue of this test run's own. Its proofs:

* four workers collect the fake ad API under a 20% fault mix: every partition
  equals the API's ground truth or is reported in the results, never both,
  none is collected twice, no lease is lost; later runs collect exactly what
  was reported, and the tables equal the truth;
* a solo worker, or a prefork child, SIGKILLed mid-fetch: its task is
  redelivered, and the partitions the dead worker held are taken over once
  their lease ends (never before) before the run's results come back; the
  table is exact;
* a run delivered twice at once, and once more after, fetches and writes each
  partition once."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from celery import Celery
from hypothesis import given
from hypothesis import strategies as st

from examples.kpi_collector.demo import truth_differences
from examples.kpi_collector.fakeapi import DEMO_TOKENS, FAULT_KINDS, FakeAdsAPI, Faults, GroundTruth
from examples.kpi_collector.settings import KNOWN_PLATFORMS, TOKEN_ENV, Settings
from examples.kpi_collector.suite import open_store, prepare
from resilient_pipeline import ConfigurationError, PartitionLedger, unit_of_work
from resilient_pipeline.engines import WorkResult
from resilient_pipeline.engines.celery import dispatch, register
from resilient_pipeline.storage import PostgresStore, Store
from tests.conftest import unavailable
from tests.engines import jobs
from tests.engines.celery_app import BACKEND_ENV, BROKER_ENV, QUEUE_ENV, make_app

ROOT = Path(__file__).resolve().parents[2]
AMQP_URL = os.environ.get(BROKER_ENV, "amqp://guest:guest@127.0.0.1:5672//")
EXAMPLE = "resilient_pipeline.engines._job:_example_job"
NUMBERS = "tests.engines.jobs:numbers_job"
COLLECTOR = "examples.kpi_collector.jobs:collector_job"
WORKERS = 4


def eager_app() -> Celery:
    """An app that runs tasks in the caller (no broker), with the task registered."""
    app = Celery("eager-tests", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True
    register(app)
    return app


# --------------------------------------------------------------- options, no broker
def test_register_sets_the_settings_that_make_redelivery_safe() -> None:
    """acks_late + reject_on_worker_lost (a killed worker's task comes back), JSON only."""
    app = Celery("options", broker="memory://")
    task = register(app, name="jobs.collect")
    assert ("jobs.collect", True, True, "json") == (
        task.name,
        task.acks_late,
        task.reject_on_worker_lost,
        task.serializer,
    )
    assert "jobs.collect" in app.tasks
    assert "jobs.collect" not in Celery("another", broker="memory://").tasks


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"slots": 0}, "slots"),
        ({"slots": 2, "chunks": 2, "keys": ["1"]}, "chunks"),
        ({"chunks": 2}, "chunks"),
        ({"keys": "123"}, "keys"),
        ({"limit": 0}, "limit"),
        ({"concurrency": 1.5}, "concurrency"),
        ({"run_id": ""}, "run_id"),
        ({"params": {"since": dt.date(2026, 11, 1)}}, "params"),
        ({"params": {"token": "EAAB1234567890abcdefghij"}}, "params"),
    ],
)
def test_dispatch_names_the_offending_option(options: dict[str, Any], option: str) -> None:
    """A bad option fails before anything is sent, naming the option."""
    with pytest.raises(ConfigurationError) as caught:
        dispatch(eager_app(), EXAMPLE, **options)
    assert option == caught.value.option


def test_dispatch_refuses_a_secret_and_never_shows_it() -> None:
    """A DSN password in the params is refused; the error shows it masked."""
    with pytest.raises(ConfigurationError) as caught:
        dispatch(eager_app(), NUMBERS, params={"dsn": "postgresql://etl:hunter2@db/kpi"})
    assert ("params", False) == (caught.value.option, "hunter2" in str(caught.value))


def test_a_malformed_reference_and_timeout_are_refused_by_name() -> None:
    """``ref`` without a colon, and a non-positive timeout, name themselves."""
    app = eager_app()
    with pytest.raises(ConfigurationError) as caught:
        dispatch(app, "no-colon")
    assert "ref" == caught.value.option
    run = dispatch(app, EXAMPLE)
    with pytest.raises(ConfigurationError) as caught:
        run.results(timeout=0)
    assert "timeout" == caught.value.option


@given(
    keys=st.lists(st.integers(0, 999), min_size=1, max_size=12, unique=True),
    chunks=st.integers(1, 6),
)
def test_chunks_cover_every_key_once(keys: list[int], chunks: int) -> None:
    """``chunks=n``: at most n tasks, none empty, each key in exactly one of them."""
    run = dispatch(eager_app(), EXAMPLE, keys=keys, chunks=chunks, run_id="r")
    results = run.results(timeout=10)
    assert min(chunks, len(keys)) == len(results)
    per_task = [{key for key, _, _ in r.collected} for r in results]
    assert sorted(str(k) for k in keys) == sorted(key for chunk in per_task for key in chunk)
    sizes = [len(chunk) for chunk in per_task]
    assert min(sizes) >= 1
    assert max(sizes) - min(sizes) <= 1
    assert {"r"} == {r.run_id for r in results}


def test_slots_each_run_the_whole_job_under_one_run_id() -> None:
    """``slots=3``: three tasks with the same keys and run id (eager: each its own ledger)."""
    run = dispatch(eager_app(), EXAMPLE, slots=3, limit=1)
    results = run.results(timeout=10)
    assert [1, 1, 1] == [r.counts["new"] for r in results]
    assert {run.run_id} == {r.run_id for r in results}
    assert 3 == len(set(run.task_ids))


@pytest.mark.parametrize("redelivered", [True, False])
@pytest.mark.parametrize(("dead", "waited"), [(1, 3.0), (0, 0.0)])
def test_a_task_takes_over_what_a_dead_worker_left_leased(
    redelivered: bool, dead: int, waited: float
) -> None:
    """Redelivered or not, a task runs at once; a partition of its share a dead worker holds is
    waited out on the ledger's clock (one lease here, no real sleep) and taken over."""
    task = register(Celery("redelivery", broker="memory://"))
    task.push_request(delivery_info={"redelivered": redelivered})
    try:
        data = task.run("tests.engines.jobs:clocked_job", params={"lease": 3.0, "dead": dead})
    finally:
        task.pop_request()
    result = WorkResult.from_dict(data)
    assert (2, dead, True) == (result.counts["new"], result.counts["recovered"], result.ok)
    assert waited == pytest.approx(sum(jobs.CLOCKS[-1].sleeps), abs=0.01)


# --------------------------------------------------------------- the fleet
@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The real RabbitMQ broker (``RP_TEST_AMQP_URL`` overrides)."""
    from kombu import Connection

    try:
        with Connection(AMQP_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        unavailable("RabbitMQ", f"{type(exc).__name__}: {exc}")
    return AMQP_URL


@attrs.define
class Fleet:
    """Celery worker processes on a queue of their own, and the app that feeds them.

    Three solo-pool workers (one process each: a kill drops its broker connection) and one
    prefork worker with one child (a killed child is a lost worker its parent reports).
    """

    app: Celery
    queue: str
    env: dict[str, str]
    logs: Path
    pools: tuple[str, ...] = ("solo", "solo", "solo", "prefork")
    workers: dict[int, tuple[subprocess.Popen[str], Path]] = attrs.Factory(dict)
    started: int = 0

    def start(self, slot: int) -> None:
        self.started += 1
        name = f"w{self.started}"
        log = self.logs / f"{name}.log"
        command = [
            *(sys.executable, "-m", "celery", "-A", "tests.engines.celery_app", "worker"),
            *(f"--pool={self.pools[slot]}", "--concurrency=1", "-n", f"{name}-{self.queue}@%h"),
            *("-Q", self.queue, "-l", os.environ.get("RP_TEST_CELERY_LOGLEVEL", "INFO")),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ]
        with log.open("w") as out:  # the child keeps its own copy
            worker = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # its own process group: a pool's children die with it
            )
        self.workers[slot] = (worker, log)

    def ensure(self) -> None:
        """A live, consuming worker in every slot (a dead one is replaced)."""
        for slot in range(len(self.pools)):
            if slot not in self.workers or self.workers[slot][0].poll() is not None:
                self.start(slot)
        deadline = time.monotonic() + 30
        for worker, log in self.workers.values():
            while "ready." not in log.read_text():
                assert worker.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.05)

    def pids(self, pool: str) -> set[int]:
        """The processes that run tasks in workers of ``pool``: solo workers, prefork children."""
        pids = set()
        for slot, (worker, _) in self.workers.items():
            if worker.poll() is not None or self.pools[slot] != pool:
                continue
            if pool == "solo":
                pids.add(worker.pid)
            else:
                children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text()
                pids.update(int(pid) for pid in children.split())
        return pids

    def stop(self) -> None:
        for worker, _ in self.workers.values():
            with contextlib.suppress(ProcessLookupError):  # a warm shutdown waits for tasks
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        with self.app.connection_for_write() as conn:
            conn.default_channel.queue_delete(self.queue)

    def problems(self) -> str:
        """The workers' tracebacks, to show when a test fails."""
        logs = (p.read_text() for p in sorted(self.logs.glob("w*.log")))
        return "\n".join(text[-3000:] for text in logs if "Traceback" in text)


@pytest.fixture(scope="module")
def fleet(
    amqp_url: str, redis_url: str, postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """Four solo-pool workers on a fresh queue, for the whole module."""
    queue = f"rp-test-{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            BROKER_ENV: amqp_url,
            BACKEND_ENV: redis_url,
            QUEUE_ENV: queue,
            jobs.DSN_ENV: postgres_dsn,
            # the fake API's tokens: a job reads them from the environment, never the params
            **{TOKEN_ENV[platform]: DEMO_TOKENS[platform] for platform in KNOWN_PLATFORMS},
        }
    )
    fleet = Fleet(
        app=make_app(amqp_url, redis_url, queue),
        queue=queue,
        env=env,
        logs=tmp_path_factory.mktemp("celery"),
    )
    try:
        fleet.ensure()
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture
def workers(fleet: Fleet) -> Fleet:
    """The fleet with four live workers (one a test killed is replaced)."""
    fleet.ensure()
    return fleet


def the_days(start: dt.date, days: int) -> list[str]:
    return [(start + dt.timedelta(days=n)).isoformat() for n in range(days)]


def numbers(store: Store) -> dict[tuple[str, str], tuple[int, int]]:
    """The numbers table: (key, day) -> (value, pid of the writer)."""
    with unit_of_work(store) as tx:
        rows = tx.fetchall(f"SELECT key, day, value, pid FROM {tx.table('numbers')}")
    return {(key, day): (int(value), int(pid)) for key, day, value, pid in rows}


def spans_of(path: Path) -> dict[str, list[tuple[float, float, int]]]:
    spans: dict[str, list[tuple[float, float, int]]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            span = json.loads(line)
            spans.setdefault(span["partition"], []).append(
                (span["start"], span["end"], span["pid"])
            )
    return spans


def never_two_at_once(spans: dict[str, list[tuple[float, float, int]]]) -> list[str]:
    """Partitions two workers fetched at overlapping times."""
    both = []
    for partition, times in spans.items():
        for (_, end, pid), (start, _, other) in itertools.pairwise(sorted(times)):
            if pid != other and start < end:
                both.append(partition)
    return both


@attrs.frozen
class NumbersRun:
    """A numbers job's parameters on a fresh schema, and its truth."""

    store: Store
    params: dict[str, Any]
    spans: Path

    @property
    def truth(self) -> dict[tuple[str, str], int]:
        days = the_days(dt.date.fromisoformat(self.params["start"]), self.params["days"])
        return {(k, d): jobs.value_of(k, d) for k in self.params["keys"] for d in days}


@pytest.fixture
def numbers_run(postgres_dsn: str, postgres_schema: str, tmp_path: Path) -> Iterator[NumbersRun]:
    """4 keys x 10 days of the numbers job in this test's schema, planned, table created."""
    store = PostgresStore(postgres_dsn, schema=postgres_schema)
    keys, start, days = ["1", "2", "3", "4"], "2026-11-01", 10
    end = the_days(dt.date.fromisoformat(start), days)[-1]
    jobs.prepare(store, keys, start, end)
    spans = tmp_path / "spans.jsonl"
    params = {
        "schema": postgres_schema,
        "keys": keys,
        "start": start,
        "end": end,
        "spans": str(spans),
    }
    try:
        yield NumbersRun(store=store, params={**params, "days": days}, spans=spans)
    finally:
        store.close()


def job_params(run: NumbersRun, **changes: Any) -> dict[str, Any]:
    return {k: v for k, v in run.params.items() if k != "days"} | changes


def ledger_of(run: NumbersRun) -> dict[tuple[str, str], Any]:
    ledger = PartitionLedger(run.store)
    start, end = run.params["start"], run.params["end"]
    return {
        (r.partition.key, r.partition.period): r for r in ledger.records(jobs.SOURCE, start, end)
    }


def owner_pid(record: Any) -> int:
    """The process holding a ledger record's lease (``host:pid:random``)."""
    return int(str(record.lease_owner).split(":")[1])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_killed_workers_task_is_redelivered_and_takes_its_partitions_over(
    workers: Fleet, numbers_run: NumbersRun, pool: str
) -> None:
    """SIGKILL a solo worker (its connection drops) or a prefork child (its parent reports a
    lost worker) mid-fetch: the task comes back; its partitions are taken over once their
    lease ends; exact."""
    lease = 2.0
    params = job_params(numbers_run, lease=lease, pause=0.05)
    run = dispatch(workers.app, NUMBERS, params=params, slots=WORKERS)
    deadline = time.monotonic() + 20
    while sum(len(s) for s in spans_of(numbers_run.spans).values()) < 8:
        assert time.monotonic() < deadline, workers.problems()
        time.sleep(0.02)
    candidates = workers.pids(pool)
    victim = 0
    while not victim:  # a worker of that pool holding a partition now: kill it mid-fetch
        assert time.monotonic() < deadline, workers.problems()
        running = [r for r in ledger_of(numbers_run).values() if r.status == "running"]
        victim = next((owner_pid(r) for r in running if owner_pid(r) in candidates), 0)
        time.sleep(0.01)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    held = {
        k: r
        for k, r in ledger_of(numbers_run).items()
        if r.status == "running" and owner_pid(r) == victim
    }
    results = run.results(timeout=30)

    assert WORKERS == len(results), "the killed worker's task came back"
    assert victim not in {int(r.worker.rsplit(":", 1)[1]) for r in results}
    assert [] == [r for r in results if not r.ok]
    assert numbers_run.truth == {k: v for k, (v, _) in numbers(numbers_run.store).items()}
    records = ledger_of(numbers_run)
    assert {"succeeded"} == {r.status for r in records.values()}
    assert held, "the victim held no partition when it died"
    assert len(held) == sum(r.counts["recovered"] for r in results)
    spans = spans_of(numbers_run.spans)
    for key, record in held.items():
        assert records[key].crashes >= 1
        # taken over only once the dead worker's lease had run out
        again = [start for start, _, pid in spans["/".join(key)] if pid != victim]
        assert [] != again, key
        assert min(again) >= record.lease_expires, (key, killed_at)
    assert [] == never_two_at_once(spans)
    # each partition collected once: by the victim before it died (its result is lost with
    # it) or by a worker that reported it
    before_death = [k for k, (_, pid) in numbers(numbers_run.store).items() if pid == victim]
    collected = [tuple(c[:2]) for r in results for c in r.collected]
    assert sorted(numbers_run.truth) == sorted(before_death + collected)


@pytest.mark.postgres
def test_a_run_delivered_twice_writes_nothing_twice(
    workers: Fleet, numbers_run: NumbersRun
) -> None:
    """The same run sent twice at once, then again once done: each partition written once."""
    params = job_params(numbers_run, pause=0.01)
    first = dispatch(workers.app, NUMBERS, params=params, slots=2)
    twice = dispatch(workers.app, NUMBERS, params=params, slots=2, run_id=first.run_id)
    results = first.results(timeout=30) + twice.results(timeout=30)
    table = numbers(numbers_run.store)
    late = dispatch(workers.app, NUMBERS, params=params, slots=2, run_id=first.run_id)
    late_results = late.results(timeout=30)

    assert [True] * 4 == [r.ok for r in results]
    collected = [tuple(c[:2]) for r in results for c in r.collected]
    assert sorted(numbers_run.truth) == sorted(collected)
    assert len(numbers_run.truth) == sum(r.counts["new"] for r in results)
    assert [0, 0] == [sum(r.counts.values()) for r in late_results]
    assert numbers_run.truth == {k: v for k, (v, _) in table.items()}
    assert table == numbers(numbers_run.store)
    assert [] == never_two_at_once(spans_of(numbers_run.spans))
    assert len(numbers_run.truth) == sum(len(s) for s in spans_of(numbers_run.spans).values())


@pytest.mark.postgres
def test_failed_partitions_are_reported_in_the_results(
    workers: Fleet, numbers_run: NumbersRun
) -> None:
    """Partitions that fail upstream come back in ``failed``; the rest is exact; chunks."""
    broken = ["2/2026-11-03", "4/2026-11-10"]
    params = job_params(numbers_run, fail=broken)
    run = dispatch(workers.app, NUMBERS, params=params, keys=["1", "2", "3", "4"], chunks=4)
    results = run.results(timeout=30)
    failed = sorted(f"{key}/{day}" for r in results for key, day, _, _ in r.failed)
    assert broken == failed
    assert [["1"], ["2"], ["3"], ["4"]] == [sorted({c[0] for c in r.collected}) for r in results]
    truth = {k: v for k, v in numbers_run.truth.items() if "/".join(k) not in broken}
    assert truth == {k: v for k, (v, _) in numbers(numbers_run.store).items()}
    assert {"failed"} == {ledger_of(numbers_run)[tuple(b.split("/"))].status for b in broken}


@pytest.mark.postgres
def test_a_task_that_raises_fails_the_results_with_its_error(
    workers: Fleet, numbers_run: NumbersRun
) -> None:
    """A job the worker cannot build (a parameter its factory does not take): the worker's
    ConfigurationError, naming the parameter, comes back to the caller."""
    params = job_params(numbers_run, colour="blue")
    run = dispatch(workers.app, NUMBERS, params=params, slots=2)
    with pytest.raises(ConfigurationError, match=r"params=.*colour"):
        run.results(timeout=30)
    assert ["FAILURE", "FAILURE"] == [r.state for r in run.group.results]
    assert {} == numbers(numbers_run.store)


def test_results_time_out_with_the_builtin_error(fleet: Fleet) -> None:
    """No worker consumes this queue: ``results`` raises TimeoutError, naming the run."""
    run = dispatch(fleet.app, EXAMPLE, queue=f"{fleet.queue}-nobody", run_id="lonely")
    try:
        with pytest.raises(TimeoutError, match="run lonely: 0 of 1 tasks"):
            run.results(timeout=0.3)
    finally:
        with fleet.app.connection_for_write() as conn:
            conn.default_channel.queue_delete(f"{fleet.queue}-nobody")


# --------------------------------------------------------------- the reference collector
CLIENTS = 16
DAYS = 30  # the full month: 960 partitions (about 21 s on a quiet machine)
END = dt.date(2026, 12, 2)
HANGLESS = tuple(k for k in FAULT_KINDS if k != "timeout")  # a hang only slows the run down
Key = tuple[str, str, str]  # (platform, client, day)


def in_schema(dsn: str, schema: str) -> str:
    """``dsn`` whose unqualified tables live in ``schema`` (the collector has no schema option)."""
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"


def wrong_days(store: Store, truth: GroundTruth, config: Settings) -> set[Key]:
    """Partitions whose rows differ from the API's truth, value by value (months aside:
    a job writes days; the monthly aggregation runs once the fleet is done)."""
    wrong = set()
    for diff in truth_differences(store, truth, config):
        platform, client, period = diff.split(" ", 1)[0].rstrip(":").split("/")
        if len(period) == 10:
            wrong.add((platform, client, period))
    return wrong


def fleet_run(fleet: Fleet, params: dict[str, Any]) -> list[WorkResult]:
    """Both platforms' jobs, four tasks each, and their results."""
    runs = [
        dispatch(fleet.app, COLLECTOR, params={**params, "platform": p}, slots=WORKERS)
        for p in KNOWN_PLATFORMS
    ]
    return [r for run in runs for r in run.results(timeout=120)]


@pytest.mark.slow
@pytest.mark.postgres
def test_four_workers_collect_the_flaky_api_exactly_or_report_what_they_could_not(
    workers: Fleet, postgres_dsn: str, postgres_schema: str
) -> None:
    """The collector's job, 2 platforms x 16 clients x 30 days, 20% faults, four workers: each
    partition exact or reported, none collected twice; later runs collect what was reported."""
    truth = GroundTruth(seed=12)
    faults = Faults(rate=0.2, seed=27, kinds=HANGLESS, retry_after=0)  # each fault: first ask
    db = in_schema(postgres_dsn, postgres_schema)
    start = END - dt.timedelta(days=DAYS - 1)
    config = Settings(db=db, clients=tuple(range(1, CLIENTS + 1)), end=END, days=DAYS)
    every = {
        (p, str(c), d)
        for p in KNOWN_PLATFORMS
        for c in config.clients
        for d in the_days(start, DAYS)
    }
    store = open_store(db)
    try:
        prepare(store, KNOWN_PLATFORMS)  # once, before the workers race to create it
        with FakeAdsAPI(truth, faults) as api:
            params = {
                "base_url": api.base_url,
                "clients": f"1-{CLIENTS}",
                "start": start.isoformat(),
                "end": END.isoformat(),
                "db": db,
                "concurrency": 2,
                "retry_delay": 0.0,
                "fetch_timeout": 2.0,
                "rate_limit": 1000.0,
                "adaptive_quota": False,
                "breaker_open": 0.2,
            }
            results = fleet_run(workers, params)
            injected = sum(api.injected.values())
            wrong = wrong_days(store, truth, config)
            ledger = PartitionLedger(store)
            states = {
                (p, r.partition.key, r.partition.period): r
                for p in KNOWN_PLATFORMS
                for r in ledger.records(p, start, END)
            }
            # Run the fleet again while something is reported (the faults hit first asks only;
            # a page never asked in a run, its breaker open, may meet its fault in the next).
            reruns: list[tuple[set[Key], set[Key], set[Key]]] = []  # (missing, collected, failed)
            missing = {(r.source, key, day) for r in results for key, day, _, _ in r.failed}
            while missing and len(reruns) < 3:
                again = fleet_run(workers, params)
                got = {(r.source, key, day) for r in again for key, day, _ in r.collected}
                failed = {(r.source, key, day) for r in again for key, day, _, _ in r.failed}
                reruns.append((missing, got, failed))
                missing = failed
            wrong_at_last = wrong_days(store, truth, config)
            succeeded_at_last = {
                (p, r.partition.key, r.partition.period)
                for p in KNOWN_PLATFORMS
                for r in ledger.records(p, start, END)
                if r.status == "succeeded"
            }
    finally:
        store.close()
    reported = {(r.source, key, day) for r in results for key, day, _, _ in r.failed}
    collected = Counter((r.source, key, day) for r in results for key, day, _ in r.collected)

    assert injected > 0.1 * len(every), "the fault mix did not bite"
    assert reported, "no partition failed: the proof of reporting proves nothing"
    assert [] == [r.errors for r in results if r.errors], workers.problems()
    # each partition exact, or reported by the worker that gave up on it; never both
    assert set() == wrong - reported
    assert every == set(collected) | reported
    assert set() == set(collected) & reported
    assert set(collected) == {k for k, r in states.items() if r.status == "succeeded"}
    # no partition collected twice, none taken from a live worker, no lease lost or crashed
    assert {} == {k: n for k, n in collected.items() if n > 1}
    assert [0] * len(results) == [r.counts["lost"] for r in results]
    assert 0 == sum(r.crashes for r in states.values())
    assert len({r.worker for r in results if r.collected}) > 1, "one worker did all the work"
    # each later run takes exactly what the one before reported; then the tables are the truth
    for before, got, failed in reruns:
        assert before == got | failed
        assert set() == got & failed
    assert set() == missing, reruns
    assert (set(), every) == (wrong_at_last, succeeded_at_last)
