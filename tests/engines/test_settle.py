"""Settling a run: a dead worker's leases in the share waited out and taken over (fake clock)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_pipeline import PartitionLedger, SQLiteStore
from resilient_pipeline.engines import Job, arun_job, run_job
from resilient_pipeline.engines._settle import (
    POLL,
    TAKEOVERS,
    Leases,
    Look,
    Pass,
    Step,
    joined,
    next_step,
    settle,
    settling,
)
from resilient_pipeline.ledger import BackfillReport, Partition
from resilient_pipeline.testing import FakeClock
from tests.engines import jobs

CLOCKED = "tests.engines.jobs:clocked_job"


# --------------------------------------------------------------- the pure core
@pytest.mark.parametrize(
    ("watched", "held", "now", "expected"),
    [
        ({"a": 10.0}, {"a": 10.0}, 9.0, 0.5),  # not renewed yet: poll
        ({"a": 10.0}, {"a": 10.0}, 9.8, 0.2),  # ... until it ends
        ({"a": 10.0}, {"a": 10.0}, 10.0, 0.001),  # ends now: claimable just after
        ({"a": 10.0}, {"a": 10.0}, 10.5, 0.0),  # ended: take it over
        ({"a": 10.0}, {}, 9.0, None),  # released: nothing to wait for
        ({"a": 10.0}, {"a": 11.0}, 9.0, None),  # renewed: its worker lives
        ({"a": 10.0, "b": 10.0}, {"a": 11.0, "b": 10.0}, 9.0, 0.5),  # b still unrenewed
        ({"a": 10.0}, {"a": 12.0, "c": 8.0}, 9.0, 0.0),  # another lease ended meanwhile
        ({}, {}, 9.0, None),  # nothing held
    ],
)
def test_next_step_waits_only_for_unrenewed_leases(
    watched: dict[str, float], held: dict[str, float], now: float, expected: float | None
) -> None:
    """The wait's decision: run again, stop, or poll, from the leases seen and held now."""
    step = next_step(watched, held, now, 0.5)
    assert expected == (step if step is None else pytest.approx(step))


def pass_report(number: int, **fields: Any) -> BackfillReport:
    """The report of pass ``number``: it collected one partition of its own."""
    return BackfillReport(
        run_id="r", source="s", collected=((Partition("s", number, "2026-11-01"), "new"),), **fields
    )


def drive(
    looks: Iterable[Leases], *, lease: float = 3.0, errors: tuple[str, ...] = ()
) -> tuple[list[Step], BackfillReport]:
    """Run the flow to its end: each pass collects one partition, each look is the next given."""
    replies: Iterator[Leases] = iter(looks)
    flow = settling(lease=lease)
    steps: list[Step] = []
    try:
        step = next(flow)
        while True:
            steps.append(step)
            if isinstance(step, Pass):
                step = flow.send(pass_report(len(steps), errors=errors))
            else:
                step = flow.send(next(replies))
    except StopIteration as done:
        report: BackfillReport = done.value
    return steps, report


def test_nothing_held_is_one_pass_and_one_look() -> None:
    """No lease left in the share: the run is done after its pass."""
    steps, report = drive([Leases(held={}, now=5.0)])
    assert [Pass(), Look()] == steps
    assert 1 == report.count("new")


def test_an_unrenewed_lease_is_waited_out_and_taken_over() -> None:
    """A lease nobody renews: polled until past its end, then one more pass; then done."""
    dead = {"s/9/2026-11-01": 10.0}
    looks = [
        Leases(held=dead, now=9.0),
        Leases(held=dead, now=9.5),
        Leases(held=dead, now=10.0),
        Leases(held=dead, now=10.001),
        Leases(held={}, now=10.1),
    ]
    steps, report = drive(looks)
    assert [Pass(), Look(), Look(0.5), Look(0.5), Look(0.001), Pass(), Look()] == steps
    assert 2 == report.count("new")


def test_a_renewed_lease_belongs_to_a_live_worker_and_is_left_to_it() -> None:
    """A lease whose end moves: its worker lives; the run is done without another pass."""
    looks = [Leases(held={"a": 10.0}, now=9.0), Leases(held={"a": 10.5}, now=9.5)]
    steps, _ = drive(looks)
    assert [Pass(), Look(), Look(0.5)] == steps


def test_takeovers_are_bounded() -> None:
    """A lease that has always just ended (another worker dying each time): a bounded number
    of passes, then the run reports."""
    steps, report = drive(Leases(held={"a": 1.0}, now=2.0) for _ in range(100))
    assert 1 + TAKEOVERS == steps.count(Pass())
    assert 1 + TAKEOVERS == report.count("new")


def test_a_pass_that_stopped_early_is_reported_as_it_is() -> None:
    """The ledger unreachable during the pass: no look, the pass's errors stand."""
    steps, report = drive([], errors=("claiming a partition failed: down",))
    assert [Pass()] == steps
    assert ("claiming a partition failed: down",) == report.errors


def test_a_look_that_fails_ends_the_run_with_its_error() -> None:
    """The leases cannot be read: the pass's collections stand, the report says why it ended."""
    steps, report = drive([Leases(held={"a": 10.0}, now=9.0), Leases(now=9.5, error="gone")])
    assert [Pass(), Look(), Look(0.5)] == steps
    assert (1, ("gone",)) == (report.count("new"), report.errors)


leases = st.builds(
    Leases,
    held=st.dictionaries(st.sampled_from("abc"), st.floats(0, 20), max_size=3),
    now=st.floats(0, 20),
)


@given(st.lists(leases, max_size=30), st.floats(0.06, 60))
def test_the_flow_waits_briefly_and_passes_only_after_a_lease_ended(
    looks: list[Leases], lease: float
) -> None:
    """Whatever the ledger shows: every wait is short, a pass follows only a look that saw a
    lease past its end, and the passes are bounded."""
    flow = settling(lease=lease)
    step = next(flow)
    last: Leases | None = None
    passes = 1
    for look in looks:
        reply: BackfillReport | Leases = pass_report(passes) if isinstance(step, Pass) else look
        try:
            step = flow.send(reply)
        except StopIteration:
            break
        if isinstance(reply, Leases):
            last = reply
        if isinstance(step, Look):
            assert 0 <= step.after <= min(lease / 6, POLL)
        else:
            assert last is not None
            assert any(end < last.now for end in last.held.values())
            passes += 1
    assert passes <= 1 + TAKEOVERS


def test_joined_adds_the_passes_up() -> None:
    """Two passes of one run report as one."""
    first, then = pass_report(1, duration=1.0), pass_report(2, errors=("x",), duration=2.0)
    both = joined(first, attrs.evolve(then, recovered=(Partition("s", 2, "2026-11-01"),)))
    assert {"new": 2, "recovered": 1} == {k: both.counts()[k] for k in ("new", "recovered")}
    assert first.collected + then.collected == both.collected
    assert (("x",), 3.0) == (both.errors, both.duration)


# --------------------------------------------------------------- the drivers, on a fake clock
def test_run_job_takes_over_a_dead_workers_lease_once_it_ends() -> None:
    """A partition leased by a dead worker: run_job waits on the ledger's clock (no real sleep)
    until its lease has ended, then takes it over: both days collected, one recovered."""
    result = run_job(CLOCKED, params={"lease": 3.0, "dead": 1})
    clock = jobs.CLOCKS[-1]
    assert (2, 1, True) == (result.counts["new"], result.counts["recovered"], result.ok)
    assert 3.0 == pytest.approx(sum(clock.sleeps), abs=0.01)
    assert all(0 < s <= 0.5 for s in clock.sleeps)
    assert pytest.approx(sum(clock.sleeps)) == result.duration


@pytest.mark.parametrize("options", [{"settle": False}, {"limit": 5}])
def test_without_settling_the_dead_lease_is_left(options: dict[str, Any]) -> None:
    """settle=False, or a run with a limit (its share only): one pass, no wait."""
    result = run_job(CLOCKED, params={"lease": 3.0, "dead": 1}, **options)
    assert (1, 0, []) == (result.counts["new"], result.counts["recovered"], jobs.CLOCKS[-1].sleeps)


def test_nothing_leased_means_no_wait() -> None:
    """The usual run: nothing left leased, no sleep at all."""
    result = run_job(CLOCKED)
    assert (2, []) == (result.counts["new"], jobs.CLOCKS[-1].sleeps)


@pytest.mark.anyio
async def test_arun_job_takes_over_a_dead_workers_lease_too() -> None:
    """The async twin, on asyncio and trio: the same wait on the fake clock, the same takeover."""
    result = await arun_job(CLOCKED, params={"lease": 3.0, "dead": 2})
    assert (2, 2) == (result.counts["new"], result.counts["recovered"])
    assert 3.0 == pytest.approx(sum(jobs.CLOCKS[-1].sleeps), abs=0.01)


@attrs.define
class RenewingClock:
    """A fake clock; each sleep, a live worker renews its leases."""

    clock: FakeClock
    live: PartitionLedger | None = None
    held: list[Partition] = attrs.Factory(list)

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def time(self) -> float:
        return self.clock.time()

    def sleep(self, seconds: float, /) -> None:
        self.clock.sleep(seconds)
        if self.live is not None:
            assert [] == self.live.renew(self.held)

    async def asleep(self, seconds: float, /) -> None:
        self.sleep(seconds)


def test_a_lease_a_live_worker_renews_is_left_to_it() -> None:
    """A partition a live worker holds and renews: the run waits one poll, sees the renewal
    and returns, the partition still the live worker's."""
    clock = RenewingClock(FakeClock())
    store = SQLiteStore(":memory:")
    ledger = PartitionLedger(store, lease=3.0, clock=clock)
    job = Job(
        ledger=ledger,
        source="s",
        keys=["1"],
        start=dt.date(2026, 11, 1),
        end=dt.date(2026, 11, 2),
        fetch=lambda p: [],
        write=lambda tx, p, rows: None,
        options={"policies": ()},
    )
    clock.live = PartitionLedger(store, lease=3.0, clock=clock, worker_id="live:1:x")
    clock.live.plan("s", ["1"], dt.date(2026, 11, 1), dt.date(2026, 11, 2))
    clock.held = [
        c.partition for c in clock.live.claim_many("s", "2026-11-01", "2026-11-02", run_id="o")
    ]
    try:
        report = settle(job, job.run, keys=None)
        assert (1, [0.5]) == (report.count("new"), clock.clock.sleeps)
        running = [r for r in ledger.records("s") if r.status == "running"]
        assert ["live:1:x"] == [r.lease_owner for r in running]
    finally:
        store.close()
