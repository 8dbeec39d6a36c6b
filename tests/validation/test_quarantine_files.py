"""JSONLQuarantine on disk: torn lines, the OS file lock, and processes sharing one file."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from resilient_pipeline import JSONLQuarantine
from resilient_pipeline.exceptions import QuarantineError
from resilient_pipeline.testing import capture_events
from resilient_pipeline.validation import QuarantineLinesSkipped, QuarantineRecord
from tests.helpers.quarantine_workers import record, spawn

TIMEOUT = 60


@pytest.fixture
def sink(tmp_path: Path) -> JSONLQuarantine:
    """A JSONL quarantine in a fresh directory."""
    return JSONLQuarantine(tmp_path / "q.jsonl")


def skipped(events: list[object]) -> list[QuarantineLinesSkipped]:
    """The QuarantineLinesSkipped events among ``events``."""
    return [e for e in events if isinstance(e, QuarantineLinesSkipped)]


TORN = [
    b'{"record": {"id": "x", "sou',  # cut mid-line
    '{"record": {"id": "é'.encode()[:-1],  # cut inside a UTF-8 character
]


@pytest.mark.parametrize("torn", TORN)
def test_a_torn_last_line_is_reported_and_the_next_append_is_read(
    sink: JSONLQuarantine, torn: bytes
) -> None:
    """A crash mid-write damages only its own line: every record before and after is read."""
    sink.put([record("a", 1), record("b", 2)])
    with open(sink.path, "ab") as file:  # the crash: half a line, no newline
        file.write(torn)
    with capture_events() as events:
        assert ["a", "b"] == [r.id for r in sink.records()]
    assert [(3,)] == [e.lines for e in skipped(events)]
    sink.put([record("c", 3)])
    sink.put([record("d", 4)])
    with capture_events() as events:
        assert ["a", "b", "c", "d"] == [r.id for r in sink.records()]
    [event] = skipped(events)
    assert ((3,), str(sink.path), str(sink.path)) == (event.lines, event.source, event.kept_in)
    assert torn == sink.path.read_bytes().split(b"\n")[2]  # kept, byte for byte
    assert "x" not in event.message().replace(str(sink.path), "")  # line numbers, no content


def test_compact_moves_damaged_lines_aside_byte_for_byte(sink: JSONLQuarantine) -> None:
    """compact keeps live records, moves unreadable lines to <path>.corrupt, and says so."""
    sink.put([record("a", 1)])
    with open(sink.path, "ab") as file:
        file.write(b"garbage\n")
    sink.put([record("b", 2), record("c", 3)])
    sink.discard(["b"])
    with open(sink.path, "ab") as file:
        file.write(b'{"record": {"id"')
    with capture_events() as events:
        sink.compact()
    corrupt = sink.path.with_name("q.jsonl.corrupt")
    assert [((2, 6), str(corrupt))] == [(e.lines, e.kept_in) for e in skipped(events)]
    assert b'garbage\n{"record": {"id"\n' == corrupt.read_bytes()
    with capture_events() as events:
        assert ["a", "c"] == [r.id for r in sink.records()]
    assert [] == skipped(events)
    assert 2 == len(sink.path.read_text(encoding="utf-8").splitlines())


def test_a_discarded_id_can_be_quarantined_again(sink: JSONLQuarantine) -> None:
    """A discard removes the records written before it, not a later record with the same id."""
    sink.put([record("a", 1)])
    assert 1 == sink.discard(["a"])
    sink.put([record("a", 2)])
    assert [{"n": 2}] == [r.row for r in sink.records()]


def test_a_record_from_a_newer_version_is_not_treated_as_damage(sink: JSONLQuarantine) -> None:
    """Skipping (and compacting away) records a newer version wrote would hide them: refuse."""
    sink.put([record("a", 1)])
    line = sink.path.read_text(encoding="utf-8").replace('"format":2', '"format":3')
    sink.path.write_text(line, encoding="utf-8")
    with pytest.raises(QuarantineError, match="upgrade"):
        sink.records()
    with pytest.raises(QuarantineError):
        sink.compact()
    assert line == sink.path.read_text(encoding="utf-8")


def test_the_lock_is_reentrant_and_shared_by_sinks_on_one_file(sink: JSONLQuarantine) -> None:
    """Inside atomic() the owner reads and writes; another thread's append comes after it."""
    other = JSONLQuarantine(sink.path)  # a second sink on the same file: the same lock
    started = threading.Event()

    def append() -> None:
        started.set()
        other.put([record("t", 9)])

    with sink.atomic():
        sink.put([record("a", 1)])
        thread = threading.Thread(target=append)
        thread.start()
        assert started.wait(TIMEOUT)
        assert ["a"] == [r.id for r in sink.claim()]
        assert 1 == sink.discard(["a"])
    thread.join(TIMEOUT)
    assert ["t"] == [r.id for r in sink.records()]
    lines = [json.loads(line) for line in sink.path.read_text(encoding="utf-8").splitlines()]
    # the other thread's record comes after the discard: it waited for atomic() to end
    assert ["a", ["a"], "t"] == [
        line["record"]["id"] if "record" in line else line["discard"] for line in lines
    ]


def finish(proc: subprocess.Popen[str]) -> str:
    """Wait for a worker; its stdout (it must succeed)."""
    out, err = proc.communicate(timeout=TIMEOUT)
    assert 0 == proc.returncode, err
    return out


@pytest.mark.slow
def test_appends_from_other_processes_survive_compaction(tmp_path: Path) -> None:
    """Two processes append 150 records each while a third compacts: each survives once."""
    path, stop = tmp_path / "q.jsonl", tmp_path / "stop"
    JSONLQuarantine(path).put([record("seed", 0)])
    compactor = spawn("compact", str(path), str(stop))
    assert compactor.stdout is not None
    assert "ready" == compactor.stdout.readline().strip()  # compacting from now on
    appenders = [spawn("append", str(path), prefix, "150") for prefix in ("p", "q")]
    for proc in appenders:
        finish(proc)
    stop.touch()
    finish(compactor)
    expected = ["seed"] + [f"{p}-{i}" for p in ("p", "q") for i in range(150)]
    with capture_events() as events:
        ids = [r.id for r in JSONLQuarantine(path).records()]
    assert sorted(expected) == sorted(ids)  # every record, none twice
    assert [] == skipped(events)  # no torn or interleaved line
    assert [f"p-{i}" for i in range(150)] == [i for i in ids if i.startswith("p-")]  # in order


def test_records_keep_their_fields_through_compaction(sink: JSONLQuarantine) -> None:
    """compact rewrites records in the current format without changing them."""
    written = [QuarantineRecord("a", "s", {"t": (1, {"$date": "x"})}, (), 3.5), record("b", 2)]
    sink.put(written)
    sink.compact()
    assert written == sink.records()
