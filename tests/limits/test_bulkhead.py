"""Tests for ``Bulkhead``: limits, queueing, rejection, threads, asyncio and trio."""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilient_pipeline import Bulkhead, ConfigurationError
from resilient_pipeline.exceptions import BulkheadFullError, DeadlineExceededError
from resilient_pipeline.limits import BulkheadRejected, BulkheadStatistics, deadline_scope
from resilient_pipeline.limits._bulkhead import _Waiter
from resilient_pipeline.testing import FakeClock, capture_events


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"max_concurrent": -1}, "max_concurrent"),
        ({"max_concurrent": 1.5}, "max_concurrent"),
        ({"max_concurrent": 1, "max_waiting": -1}, "max_waiting"),
        ({"max_concurrent": 1, "wait_timeout": -1}, "wait_timeout"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, object], option: str) -> None:
    """Invalid limits are refused at construction, naming the option."""
    with pytest.raises(ConfigurationError) as info:
        Bulkhead(**options)  # type: ignore[arg-type]
    assert option == info.value.option


def test_full_bulkhead_rejects_at_once_with_an_event() -> None:
    """Beyond the slots and the queue a caller is rejected at once, with BulkheadRejected."""
    bulkhead = Bulkhead(max_concurrent=1, name="api")
    with bulkhead, capture_events() as events, pytest.raises(BulkheadFullError) as info:
        bulkhead.acquire()
    assert (0.0, 1) == (info.value.waited, info.value.max_concurrent)
    assert [(1, 0, 0.0)] == [
        (e.in_flight, e.waiting, e.waited) for e in events if isinstance(e, BulkheadRejected)
    ]
    assert BulkheadStatistics(1, 0, 0, 0, 1, 1) == bulkhead.statistics()


def test_slot_is_released_when_the_function_raises() -> None:
    """A failing call gives its slot back."""
    bulkhead = Bulkhead(max_concurrent=1)

    @bulkhead
    def fetch() -> None:
        raise OSError

    for _ in range(3):
        with pytest.raises(OSError):
            fetch()
    assert 0 == bulkhead.statistics().in_flight


def test_zero_wait_timeout_never_queues() -> None:
    """With wait_timeout=0 a queue place is useless, so callers are rejected at once."""
    bulkhead = Bulkhead(max_concurrent=1, max_waiting=5, wait_timeout=0)
    with bulkhead, pytest.raises(BulkheadFullError):
        bulkhead.acquire()


def test_queued_thread_gets_the_released_slot() -> None:
    """A queued thread gets the slot as soon as it is released."""
    bulkhead = Bulkhead(max_concurrent=1, max_waiting=1)
    got = threading.Event()
    bulkhead.acquire()

    def waiter() -> None:
        with bulkhead:
            got.set()

    worker = threading.Thread(target=waiter)
    worker.start()
    while bulkhead.statistics().waiting == 0:
        assert worker.is_alive()
        threading.Event().wait(0.001)
    assert not got.is_set()
    bulkhead.release()
    worker.join(5)
    assert got.is_set()
    assert BulkheadStatistics(1, 1, 0, 0, 2, 0) == bulkhead.statistics()


def test_queued_caller_stops_at_the_shared_deadline() -> None:
    """A queued caller whose shared deadline runs out raises DeadlineExceededError."""
    bulkhead = Bulkhead(max_concurrent=1, max_waiting=1)
    with (
        bulkhead,
        deadline_scope(0.001, clock=FakeClock()),
        pytest.raises(DeadlineExceededError),
    ):
        bulkhead.acquire()
    assert 0 == bulkhead.statistics().waiting


def test_threads_never_exceed_the_limit() -> None:
    """Many threads through one bulkhead never have more than max_concurrent inside."""
    bulkhead = Bulkhead(max_concurrent=3, max_waiting=20)
    lock = threading.Lock()
    inside, peak = [0], [0]

    @bulkhead
    def work() -> None:
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        threading.Event().wait(0.001)
        with lock:
            inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert peak[0] <= 3
    assert BulkheadStatistics(3, 20, 0, 0, 12, 0) == bulkhead.statistics()


@pytest.mark.anyio
async def test_tasks_never_exceed_the_limit() -> None:
    """Many tasks (asyncio and trio) never have more than max_concurrent inside."""
    bulkhead = Bulkhead(max_concurrent=3, max_waiting=20)
    inside, peak = [0], [0]

    @bulkhead
    async def work() -> None:
        inside[0] += 1
        peak[0] = max(peak[0], inside[0])
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        inside[0] -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(work)
    assert 3 == peak[0]
    assert BulkheadStatistics(3, 20, 0, 0, 12, 0) == bulkhead.statistics()


@pytest.mark.anyio
async def test_slot_released_in_a_thread_wakes_a_task() -> None:
    """One bulkhead is shared by threads and tasks: a thread's release wakes a queued task."""
    bulkhead = Bulkhead(max_concurrent=1, max_waiting=1)
    bulkhead.acquire()
    done = []

    async def waiter() -> None:
        async with bulkhead:
            done.append(1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        while bulkhead.statistics().waiting == 0:
            await anyio.lowlevel.checkpoint()
        await anyio.to_thread.run_sync(bulkhead.release)
    assert [1] == done


@pytest.mark.anyio
async def test_cancelled_waiter_leaves_the_queue() -> None:
    """Cancelling a queued task removes it from the queue and keeps the counts right."""
    bulkhead = Bulkhead(max_concurrent=1, max_waiting=1)
    async with bulkhead, anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.aacquire)
        while bulkhead.statistics().waiting == 0:
            await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    assert BulkheadStatistics(1, 1, 0, 0, 1, 0) == bulkhead.statistics()


class BulkheadModel(RuleBasedStateMachine):
    """The bookkeeping core against a model: slots, FIFO queue, hand-over."""

    def __init__(self) -> None:
        super().__init__()
        self.bulkhead = Bulkhead(max_concurrent=2, max_waiting=2, wait_timeout=None)
        self.running = 0
        self.queued: list[_Waiter] = []
        self.woken: list[_Waiter] = []

    @rule()
    def enter(self) -> None:
        """A caller arrives: slot, queue place, or rejection, as the model says."""
        waiter_box: list[_Waiter] = []

        def make() -> _Waiter:
            waiter = _Waiter(lambda: self.woken.append(waiter))
            waiter_box.append(waiter)
            return waiter

        if self.running < 2 and not self.queued:
            assert self.bulkhead._enter(make) is None
            self.running += 1
        elif len(self.queued) < 2:
            waiter = self.bulkhead._enter(make)
            assert waiter_box == [waiter]
            self.queued.append(waiter_box[0])
        else:
            with pytest.raises(BulkheadFullError):
                self.bulkhead._enter(make)

    @precondition(lambda self: self.running > 0)
    @rule()
    def release(self) -> None:
        """A running call ends: its slot goes to the first queued caller, FIFO."""
        self.bulkhead.release()
        if self.queued:
            first = self.queued.pop(0)
            assert first is self.woken[-1]
            assert self.bulkhead._settle(first)
        else:
            self.running -= 1

    @precondition(lambda self: bool(self.queued))
    @rule(index=st.integers(min_value=0, max_value=1))
    def give_up(self, index: int) -> None:
        """A queued caller times out and leaves the queue."""
        waiter = self.queued.pop(min(index, len(self.queued) - 1))
        assert not self.bulkhead._settle(waiter)

    @invariant()
    def matches_the_model(self) -> None:
        """The statistics agree with the model and never exceed the limits."""
        stats = self.bulkhead.statistics()
        assert (self.running, len(self.queued)) == (stats.in_flight, stats.waiting)
        assert stats.in_flight <= 2


TestBulkheadModel = BulkheadModel.TestCase
