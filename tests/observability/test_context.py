"""Bound context: on every event and log line of a unit of work, in retries, threads and tasks."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import pickle
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from resilient_pipeline import (
    ConfigurationError,
    PartitionLedger,
    SQLiteStore,
    backfill,
    retry_with_backoff,
)
from resilient_pipeline.events import Event
from resilient_pipeline.observability import JsonFormatter, bind_context, bound_context
from resilient_pipeline.retry import RetryScheduled
from resilient_pipeline.testing import FakeClock, capture_events

RUN = {"run_id": "r42", "source": "meta_ads", "partition_key": "act_1", "attempt": 1}


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """JSON log lines of the library and of an `etl` logger, at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger("resilient_pipeline"), logging.getLogger("etl")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stream
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def flaky(failures: int) -> Any:
    state = {"calls": 0}

    def fn() -> str:
        state["calls"] += 1
        logging.getLogger("etl").info("attempt %d", state["calls"])
        if state["calls"] <= failures:
            raise OSError("reset")
        return "ok"

    return fn


def test_retry_events_and_lines_carry_the_bound_fields(json_lines: io.StringIO) -> None:
    """Each retry event, and the user's own lines inside each attempt, carry the context."""
    fetch = retry_with_backoff(base_delay=0, clock=FakeClock(), name="fetch")(flaky(2))
    with capture_events() as events, bind_context(**RUN):
        assert "ok" == fetch()
    assert [RUN] * 4 == [dict(e.context) for e in events]  # 2 scheduled, succeeded, finished
    logged = lines(json_lines)
    # 3 user lines, 2 RetryScheduled, RetrySucceeded, CallFinished (DEBUG)
    assert 7 == len(logged)
    assert [RUN] * len(logged) == [line["context"] for line in logged]
    assert "fetch" == logged[1]["source"]  # the event's own source is kept apart


def test_nothing_leaks_out_of_the_block() -> None:
    """Leaving the block restores the outer fields; events after it carry none."""
    fetch = retry_with_backoff(base_delay=0, clock=FakeClock(), name="fetch")(flaky(1))
    with bind_context(run_id="outer"):
        with bind_context(run_id="inner", partition_key="p"):
            assert {"run_id": "inner", "partition_key": "p"} == bound_context()
        assert {"run_id": "outer"} == bound_context()
    with capture_events() as events:
        fetch()
    assert [{}] * len(events) == [dict(e.context) for e in events]


def test_context_is_not_part_of_equality_and_survives_pickling() -> None:
    """Events compare by their fields; the context travels with a pickled event."""
    plain = RetryScheduled(source="f", attempt=1, delay=0.0, error="x", retry_after=None)
    with bind_context(run_id="r1"):
        bound = RetryScheduled(source="f", attempt=1, delay=0.0, error="x", retry_after=None)
    assert plain == bound
    assert {"run_id": "r1"} == pickle.loads(pickle.dumps(bound)).context
    assert "context" not in bound.fields()
    assert "run_id" not in repr(bound)


def test_secrets_are_masked_when_bound() -> None:
    """A secret-named field, or a secret inside a value, never reaches an event."""
    with bind_context(api_token="abc123", url="https://x/?access_token=abc123"):
        event = Event(source="s")
    assert {"api_token": "***", "url": "https://x/?access_token=***"} == dict(event.context)
    with (
        pytest.raises(ConfigurationError, match="field names must be identifiers"),
        bind_context(**{"not a name": 1}),
    ):
        pass


@pytest.mark.anyio
async def test_worker_threads_and_tasks_inherit_the_context(json_lines: io.StringIO) -> None:
    """anyio worker threads and task-group tasks see the fields bound around them."""
    seen: list[dict[str, object]] = []

    def in_thread() -> None:
        logging.getLogger("etl").info("in a worker thread")
        seen.append(bound_context())

    async def in_task(key: str) -> None:
        with bind_context(partition_key=key):
            await anyio.to_thread.run_sync(in_thread)

    with bind_context(run_id="r1"):
        await anyio.to_thread.run_sync(in_thread)
        async with anyio.create_task_group() as tg:
            tg.start_soon(in_task, "a")
            tg.start_soon(in_task, "b")
    expected = [
        {"run_id": "r1"},
        {"run_id": "r1", "partition_key": "a"},
        {"run_id": "r1", "partition_key": "b"},
    ]
    assert expected[0] == seen[0]
    assert sorted(expected[1:], key=str) == sorted(seen[1:], key=str)
    assert sorted(map(str, expected)) == sorted(str(line["context"]) for line in lines(json_lines))


@pytest.mark.anyio
async def test_async_retry_events_carry_the_context() -> None:
    """An async retried call, in one task, emits every event with the task's fields."""
    state = {"calls": 0}

    @retry_with_backoff(base_delay=0, clock=FakeClock(), name="afetch")
    async def afetch() -> str:
        state["calls"] += 1
        if state["calls"] == 1:
            raise OSError("reset")
        return "ok"

    async def run(key: str, out: list[Event]) -> None:
        with bind_context(partition_key=key):
            with capture_events() as events:
                await afetch()
            out.extend(e for e in events if e.source == "afetch")

    collected: list[Event] = []
    await run("k1", collected)
    assert ["k1"] * len(collected) == [e.context["partition_key"] for e in collected]
    assert 3 == len(collected)


def test_backfill_binds_run_source_partition_and_attempt(json_lines: io.StringIO) -> None:
    """A backfill's fetch (in a worker thread) and its events carry run, source, key and attempt."""
    ledger = PartitionLedger(SQLiteStore(":memory:"))
    inside: list[dict[str, object]] = []

    def fetch(partition: Any) -> list[dict[str, object]]:
        inside.append(bound_context())
        return [{"spend": 1.0}]

    with capture_events() as events:
        backfill(
            ledger,
            source="meta_ads",
            keys=["act_1", "act_2"],
            start=dt.date(2026, 11, 28),
            end=dt.date(2026, 11, 28),
            fetch=fetch,
            write=lambda tx, partition, rows: None,
            progress=False,
            run_id="run-7",
            concurrency=1,
        )
    expected = [
        {
            "run_id": "run-7",
            "source": "meta_ads",
            "partition_key": key,
            "period": "2026-11-28",
            "attempt": 1,
        }
        for key in ("act_1", "act_2")
    ]
    assert expected == sorted(inside, key=lambda c: str(c["partition_key"]))
    collected = [e for e in events if type(e).__name__ == "PartitionCollected"]
    assert expected == sorted(
        (dict(e.context) for e in collected), key=lambda c: str(c["partition_key"])
    )
    finished = [e for e in events if type(e).__name__ == "BackfillFinished"]
    assert [{"run_id": "run-7", "source": "meta_ads"}] == [dict(e.context) for e in finished]
