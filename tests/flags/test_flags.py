"""Flags: layered sources, reloads on the injected clock, failures, events, flagged()."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest

from resilient_pipeline.events import subscribe
from resilient_pipeline.exceptions import ConfigurationError
from resilient_pipeline.flags import (
    Flag,
    FlagEvaluated,
    Flags,
    FlagSourceFailed,
    MemorySource,
)
from resilient_pipeline.testing import FakeClock, capture_events


class FlakySource:
    """A source whose next reads fail on demand, counting its reads."""

    where = "flaky"

    def __init__(self, flags: Mapping[str, object], *, reload_interval: float = 10.0) -> None:
        self.inner = MemorySource(flags)
        self.reload_interval: float | None = reload_interval
        self.failing = False
        self.reads = 0

    def load(self) -> Mapping[str, Flag]:
        self.reads += 1
        if self.failing:
            raise OSError("connection reset by peer")
        return self.inner.load()


def test_first_source_that_defines_a_flag_wins() -> None:
    """Sources are layered in order; a flag only a later source defines comes from it."""
    first = MemorySource({"beta": "off"})
    second = MemorySource({"beta": "on", "gamma": "on"})
    flags = Flags([first, second])
    assert [False, True] == [flags.enabled("beta", key="k"), flags.enabled("gamma", key="k")]
    first.remove_flag("beta")
    flags.reload()
    assert flags.enabled("beta", key="k")


def test_unknown_flag_gives_the_default() -> None:
    """A flag no source defines is the default, with reason 'unknown'."""
    event = Flags([], default=True).evaluate("no_such_flag", key="k")
    assert (True, "unknown") == (event.enabled, event.reason)


def test_mistyped_flag_name_is_an_error_not_the_default() -> None:
    """Evaluating a name that can never be a flag raises instead of answering the default."""
    with pytest.raises(ConfigurationError, match="snake_case"):
        Flags([]).enabled("New-Conversions")


@pytest.mark.parametrize(
    ("options", "option"),
    [({"sources": [object()]}, "sources"), ({"default": "yes"}, "default")],
)
def test_bad_options_are_refused(options: dict[str, object], option: str) -> None:
    """Sources must be flag sources and the default a bool."""
    with pytest.raises(ConfigurationError) as info:
        Flags(**options)  # type: ignore[arg-type]
    assert option == info.value.option


def test_sources_are_read_again_after_their_interval_only() -> None:
    """A change shows after reload_interval on the injected clock, not before."""
    clock = FakeClock()
    source = FlakySource({"beta": "on"}, reload_interval=10)
    flags = Flags([source], clock=clock)
    source.inner.set_flag("beta", enabled=False)
    clock.advance(9.9)
    assert flags.enabled("beta")
    assert 1 == source.reads
    clock.advance(0.1)
    assert not flags.enabled("beta")
    assert 2 == source.reads


def test_a_failing_source_keeps_its_last_good_flags_and_reports_once_per_interval() -> None:
    """A failed read emits FlagSourceFailed (secrets masked) and the last good flags stay."""
    clock = FakeClock()
    source = FlakySource({"beta": "on"}, reload_interval=10)
    flags = Flags([source], clock=clock)
    source.failing = True
    clock.advance(10)
    with capture_events() as events:
        answers = [flags.enabled("beta") for _ in range(5)]
    failures = [e for e in events if isinstance(e, FlagSourceFailed)]
    assert [True] * 5 == answers
    assert ["OSError: connection reset by peer"] == [e.error for e in failures]
    assert "flaky" == failures[0].source
    source.failing = False
    source.inner.set_flag("beta", enabled=False)
    clock.advance(10)
    assert not flags.enabled("beta")


def test_a_source_that_cannot_be_read_at_start_fails_construction() -> None:
    """Flags() reads every source once and raises what it could not read."""
    source = FlakySource({"beta": "on"})
    source.failing = True
    with pytest.raises(OSError, match="connection reset"):
        Flags([source])


def test_explicit_reload_raises_and_keeps_the_flags_in_use() -> None:
    """reload() reports a failing source to its caller; evaluations are unchanged."""
    source = FlakySource({"beta": "on"})
    flags = Flags([source])
    source.failing = True
    with pytest.raises(OSError):
        flags.reload()
    assert flags.enabled("beta")


def test_every_evaluation_emits_an_event_without_the_key() -> None:
    """FlagEvaluated carries flag, answer and reason, never the key."""
    flags = Flags([MemorySource({"beta": {"percentage": 0, "allow": ["secret-client"]}})])
    with capture_events() as events:
        flags.enabled("beta", key="secret-client")
        flags.enabled("beta", key="other")
    assert [
        FlagEvaluated(source="beta", flag="beta", enabled=True, reason="allow_list"),
        FlagEvaluated(source="beta", flag="beta", enabled=False, reason="percentage"),
    ] == events
    assert all("secret-client" not in str(e.fields()) for e in events)


def test_on_event_handlers_see_evaluations() -> None:
    """The object's own handlers get every evaluation."""
    seen: list[object] = []
    flags = Flags([MemorySource({"beta": "on"})], on_event=seen.append)
    flags.enabled("beta", key=1)
    assert [FlagEvaluated(source="beta", flag="beta", enabled=True, reason="percentage")] == seen


def test_evaluations_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The default log sink drops FlagEvaluated (a DEBUG event) at INFO."""
    flags = Flags([MemorySource({"beta": "50%"})])
    with caplog.at_level(logging.INFO, logger="resilient_pipeline"), subscribe(lambda e: None):
        for i in range(100):
            flags.enabled("beta", key=i)
    assert [] == [r for r in caplog.records if r.name.startswith("resilient_pipeline")]


def test_nothing_is_delivered_when_nobody_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without subscribers (and DEBUG off) evaluation skips event delivery entirely."""
    import resilient_pipeline.flags._flags as module

    delivered: list[object] = []
    monkeypatch.setattr(module, "emit", lambda event, local=(): delivered.append(event))
    flags = Flags([MemorySource({"beta": "50%"})])
    flags.enabled("beta", key="k")
    assert [] == delivered
    with subscribe(lambda e: None):
        flags.enabled("beta", key="k")
    assert 1 == len(delivered)
    flags.enabled("beta", key="k")  # the subscription is gone: quiet again
    assert 1 == len(delivered)


def test_evaluations_are_logged_at_debug_only_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    """With DEBUG on for resilient_pipeline.flags, each evaluation is one DEBUG record."""
    flags = Flags([MemorySource({"beta": "off"})])
    with caplog.at_level(logging.DEBUG, logger="resilient_pipeline.flags"):
        flags.enabled("beta", key="k")
    assert [(logging.DEBUG, "flag 'beta' evaluated: off (kill_switch)")] == [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "resilient_pipeline.flags"
    ]


def test_bucket_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many distinct keys never grow the per-flag bucket cache past its bound."""
    import resilient_pipeline.flags._flags as module

    monkeypatch.setattr(module, "_CACHE_SIZE", 100)
    flag = Flag(name="beta", percentage=50)
    flags = Flags([MemorySource([flag])])
    answers = [flags.enabled("beta", key=i) for i in range(1_000)]
    assert [flag.evaluate(i)[0] for i in range(1_000)] == answers
    assert len(flags._table["beta"].buckets) <= 100


def test_snapshot_and_get_show_the_flags_in_use() -> None:
    """get() and snapshot() return the winning definitions."""
    flags = Flags([MemorySource({"beta": "25%"}), MemorySource({"beta": "on", "gamma": "off"})])
    assert {
        "beta": Flag(name="beta", percentage=25),
        "gamma": Flag(name="gamma", percentage=0, enabled=False),
    } == flags.snapshot()
    assert flags.get("nope") is None


# -- flagged -----------------------------------------------------------------------


def v1(client_id: str, day: str = "d") -> str:
    return f"v1:{client_id}:{day}"


def v2(client_id: str, day: str = "d") -> str:
    return f"v2:{client_id}:{day}"


def qa_flags() -> Flags:
    return Flags([MemorySource({"new_endpoint": {"percentage": 0, "allow": ["qa"]}})])


def test_flagged_picks_new_for_keys_that_are_on() -> None:
    """The key comes from the named argument, positional or keyword."""
    fetch = qa_flags().flagged("new_endpoint", old=v1, new=v2, key="client_id")
    assert ["v2:qa:x", "v1:ab:x", "v2:qa:d"] == [
        fetch("qa", "x"),
        fetch("ab", day="x"),
        fetch(client_id="qa"),
    ]
    assert "v1" == fetch.__name__


def test_flagged_as_a_decorator_of_the_old_path() -> None:
    """Without old=, flagged decorates the old function."""

    @qa_flags().flagged("new_endpoint", new=v2, key=lambda client_id, day="d": client_id)
    def fetch(client_id: str, day: str = "d") -> str:
        return "old"

    assert ["v2:qa:d", "old"] == [fetch("qa"), fetch("zz")]


def test_flagged_follows_a_rollback() -> None:
    """After the flag is switched off everyone takes the old path."""
    source = MemorySource({"new_endpoint": "on"})
    flags = Flags([source])
    fetch = flags.flagged("new_endpoint", old=v1, new=v2, key="client_id")
    assert "v2:a:d" == fetch("a")
    source.set_flag("new_endpoint", enabled=False)
    flags.reload()
    assert "v1:a:d" == fetch("a")


def test_flagged_refuses_a_key_that_is_not_an_argument() -> None:
    """key= must name a parameter of the old function."""
    with pytest.raises(ConfigurationError, match="client") as info:
        qa_flags().flagged("new_endpoint", old=v1, new=v2, key="client")
    assert "key" == info.value.option


def test_flagged_refuses_mixing_sync_and_async() -> None:
    """old and new must both be sync or both async."""

    async def av2(client_id: str, day: str = "d") -> str:
        return "v2"

    with pytest.raises(ConfigurationError, match="async"):
        qa_flags().flagged("new_endpoint", old=v1, new=av2, key="client_id")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_flagged_async() -> None:
    """Async old and new functions are awaited (asyncio and trio)."""

    async def aold(client_id: str) -> str:
        return "old"

    async def anew(client_id: str) -> str:
        return "new"

    fetch = qa_flags().flagged("new_endpoint", old=aold, new=anew, key="client_id")
    assert ["new", "old"] == [await fetch("qa"), await fetch(client_id="zz")]


@pytest.mark.anyio
async def test_areload_reads_sources_in_a_worker_thread() -> None:
    """areload() applies a changed source."""
    source = MemorySource({"beta": "off"})
    flags = Flags([source])
    source.set_flag("beta", percentage=100)
    await flags.areload()
    assert flags.enabled("beta")


def test_threads_evaluating_during_reloads_see_whole_definitions() -> None:
    """Evaluations racing refreshes get the old or the new flag's answer, never a mix or error."""
    import threading

    source = MemorySource({"beta": "on"}, reload_interval=0)  # re-read on every evaluation
    flags = Flags([source])
    valid = {
        FlagEvaluated(source="beta", flag="beta", enabled=True, reason="percentage"),
        FlagEvaluated(source="beta", flag="beta", enabled=False, reason="kill_switch"),
    }
    seen: set[FlagEvaluated] = set()
    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            for i in range(2_000):
                seen.add(flags.evaluate("beta", key=i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for i in range(200):
        source.set_flag("beta", enabled=bool(i % 2), percentage=100)
    for thread in threads:
        thread.join(timeout=30)
    assert [] == errors
    assert seen <= valid
