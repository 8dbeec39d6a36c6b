"""Sources: environment, files reloaded on change, a store table and Redis shared by workers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from resilient_pipeline.exceptions import ConfigurationError, StoreError
from resilient_pipeline.flags import (
    EnvSource,
    FileSource,
    Flag,
    Flags,
    FlagSourceFailed,
    RedisSource,
    StoreSource,
)
from resilient_pipeline.storage import unit_of_work
from resilient_pipeline.testing import FakeClock, capture_events

if TYPE_CHECKING:
    from resilient_pipeline.storage import Store


# -- environment --------------------------------------------------------------------


def test_env_syntax(monkeypatch: pytest.MonkeyPatch) -> None:
    """on/off/true/false, N% and a JSON object, names lower-cased."""
    monkeypatch.setenv("RP_FLAG_NEW_CONVERSIONS_ENDPOINT", "25%")
    monkeypatch.setenv("RP_FLAG_LEGACY", "OFF")
    monkeypatch.setenv("RP_FLAG_FAST_PATH", "true")
    monkeypatch.setenv("RP_FLAG_BETA", '{"percentage": 0.5, "allow": ["qa"], "deny": [7]}')
    loaded = EnvSource().load()
    assert {
        "new_conversions_endpoint": Flag(name="new_conversions_endpoint", percentage=25),
        "legacy": Flag(name="legacy", percentage=0, enabled=False),
        "fast_path": Flag(name="fast_path", percentage=100),
        "beta": Flag(name="beta", percentage=0.5, allow=["qa"], deny=["7"]),
    } == {
        name: flag
        for name, flag in loaded.items()
        if name in {"new_conversions_endpoint", "legacy", "fast_path", "beta"}
    }


@pytest.mark.parametrize(
    ("variable", "value", "match"),
    [
        ("RP_FLAG_BETA", "25", "'25' is not a flag value"),
        ("RP_FLAG_BETA", "maybe", "'maybe' is not a flag value"),
        ("RP_FLAG_BETA", "abc%", "is not a flag value"),
        ("RP_FLAG_BETA", "150%", "percentage=150.0 is invalid"),
        ("RP_FLAG_BETA", "nan%", "percentage=nan is invalid"),
        ("RP_FLAG_BETA", '{"percentage": 10, "alow": []}', "unknown field"),
        ("RP_FLAG_BETA", '{"allow": ["qa"]}', "percentage is missing"),
        ("RP_FLAG_BETA", "{not json", "is not a flag value"),
        ("RP_FLAG_BETA", '{"percentage": 10, "percentage": 100}', "'percentage' appears twice"),
        ("RP_FLAG_BE-TA", "on", "snake_case"),
    ],
)
def test_env_bad_values_name_the_flag_and_variable(variable: str, value: str, match: str) -> None:
    """Unknown syntax is a ConfigurationError naming the flag and the variable."""
    with pytest.raises(ConfigurationError, match=match) as info:
        Flags([EnvSource(environ={variable: value})])
    flag = variable.removeprefix("RP_FLAG_").lower()
    assert str(info.value).startswith(f"flag {flag!r} in {variable}: ")


def test_env_same_flag_twice_is_an_error() -> None:
    """Two variables that differ only in case name one flag: refused, not one silently lost."""
    with pytest.raises(ConfigurationError, match="RP_FLAG_BETA and by RP_FLAG_beta"):
        Flags([EnvSource(environ={"RP_FLAG_BETA": "on", "RP_FLAG_beta": "off"})])


def test_env_is_read_again_on_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the environment is read at start and on reload()."""
    monkeypatch.setenv("RP_FLAG_BETA", "on")
    flags = Flags([EnvSource()])
    monkeypatch.setenv("RP_FLAG_BETA", "off")
    assert flags.enabled("beta")
    flags.reload()
    assert not flags.enabled("beta")


# -- files ---------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    """Replace the file atomically, as the docs advise."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_toml_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    """The file is checked every reload_interval; a new version applies after it."""
    path = tmp_path / "flags.toml"
    write(path, '[flags]\nbeta = "on"\ngamma = { percentage = 0, allow = ["qa"] }\n')
    clock = FakeClock()
    flags = Flags([FileSource(path, reload_interval=5)], clock=clock)
    assert [True, True, False] == [
        flags.enabled("beta"),
        flags.enabled("gamma", key="qa"),
        flags.enabled("gamma", key="x"),
    ]
    write(path, 'beta = "off"\n')
    clock.advance(4.9)
    assert flags.enabled("beta")
    clock.advance(0.1)
    assert [False, False] == [flags.enabled("beta"), flags.enabled("gamma", key="qa")]


def test_json_file(tmp_path: Path) -> None:
    """JSON files hold the same structure."""
    path = tmp_path / "flags.json"
    write(path, json.dumps({"flags": {"beta": {"percentage": 100, "deny": ["x"]}}}))
    flags = Flags([FileSource(path)])
    assert [True, False] == [flags.enabled("beta", key="y"), flags.enabled("beta", key="x")]


def test_json_file_with_a_flag_twice_is_refused(tmp_path: Path) -> None:
    """json.loads would keep the last "beta" silently; the source refuses the file."""
    path = tmp_path / "flags.json"
    write(path, '{"beta": "on", "beta": "off"}')
    with pytest.raises(ConfigurationError, match="'beta' appears twice"):
        Flags([FileSource(path)])


def test_broken_file_keeps_the_last_good_flags(tmp_path: Path) -> None:
    """A file that stops parsing is reported; its last good flags stay until it is fixed."""
    path = tmp_path / "flags.toml"
    write(path, 'beta = "on"\n')
    clock = FakeClock()
    flags = Flags([FileSource(path, reload_interval=1)], clock=clock)
    write(path, 'beta = "on\n')
    clock.advance(1)
    with capture_events() as events:
        assert flags.enabled("beta")
    (failed,) = [e for e in events if isinstance(e, FlagSourceFailed)]
    assert str(path) == failed.source
    assert "not valid TOML" in failed.error
    write(path, 'beta = "off"\n')
    clock.advance(1)
    assert not flags.enabled("beta")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("beta = 25\n", "25 is not a flag value"),
        ("beta = { percentage = 10, percent = 5 }\n", "unknown field"),
        ("beta = { percentage = 101 }\n", "percentage=101 is invalid"),
        ("beta = { percentage = true }\n", "percentage=True is invalid"),
        ('Beta = "on"\n', "snake_case"),
    ],
)
def test_bad_file_names_the_flag_and_the_file(tmp_path: Path, text: str, match: str) -> None:
    """Bad content fails at start with the flag and the file's path."""
    path = tmp_path / "flags.toml"
    write(path, text)
    with pytest.raises(ConfigurationError, match=match) as info:
        Flags([FileSource(path)])
    assert f" in {path}: " in str(info.value)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    """A missing file names its path; an unknown suffix needs format=."""
    with pytest.raises(ConfigurationError, match="cannot read it"):
        Flags([FileSource(tmp_path / "nope.toml")])
    with pytest.raises(ConfigurationError) as info:
        FileSource(tmp_path / "flags.yaml")
    assert "format" == info.value.option


# -- shared sources: rollback across workers ------------------------------------------


def test_store_rollback_reaches_every_worker_after_its_ttl(any_store: Store) -> None:
    """Two workers on one table: set_flag on one reaches the other after reload_interval."""
    clock = FakeClock()
    operator = StoreSource(any_store)
    operator.set_flag("new_endpoint", percentage=100, allow=["qa"])
    worker_a = Flags([StoreSource(any_store, reload_interval=5)], clock=clock)
    worker_b = Flags([StoreSource(any_store, reload_interval=5)], clock=clock)
    assert [True, True] == [
        worker_a.enabled("new_endpoint", key="c"),
        worker_b.enabled("new_endpoint", key="c"),
    ]

    operator.set_flag("new_endpoint", percentage=0)
    clock.advance(4.9)
    assert worker_b.enabled("new_endpoint", key="c")
    clock.advance(0.1)
    assert [False, False] == [
        worker_a.enabled("new_endpoint", key="c"),
        worker_b.enabled("new_endpoint", key="c"),
    ]

    operator.remove_flag("new_endpoint")
    clock.advance(5)
    assert "unknown" == worker_a.evaluate("new_endpoint", key="c").reason
    assert {} == operator.load()


def test_store_bad_row_names_the_flag_and_table(any_store: Store) -> None:
    """A row whose spec is not a valid flag fails with the flag and the table."""
    source = StoreSource(any_store, table="my_flags")
    source.set_flag("beta", percentage=10)
    with unit_of_work(any_store) as tx:
        tx.execute(
            f"UPDATE {tx.table('my_flags')} SET spec = {tx.placeholder}",
            ('{"percentage": 10, "enabled": "no"}',),
        )
    with pytest.raises(ConfigurationError, match=r"flag 'beta' in store table my_flags: enabled="):
        Flags([source])


def test_store_refuses_bad_table_and_bad_set_flag(any_store: Store) -> None:
    """The table name is validated and quoted; set_flag checks before writing."""
    with pytest.raises(ConfigurationError) as info:
        StoreSource(any_store, table="bad\u202ename")
    assert "table" == info.value.option
    odd = StoreSource(any_store, table='flags"; DROP TABLE rp_once; --')
    odd.set_flag("beta", percentage=10)
    assert {"beta": Flag(name="beta", percentage=10)} == odd.load()
    source = StoreSource(any_store)
    with pytest.raises(ConfigurationError, match="percentage"):
        source.set_flag("beta", percentage=float("nan"))
    assert {} == source.load()


@pytest.mark.redis
def test_redis_rollback_reaches_every_worker_after_its_ttl(
    redis_url: str, redis_prefix: str
) -> None:
    """Two workers on one hash: a kill switch set by the operator applies after the TTL."""
    key = f"{redis_prefix}flags"
    clock = FakeClock()
    operator = RedisSource(redis_url, key=key)
    operator.set_flag("new_endpoint", percentage=50)
    workers = [
        Flags([RedisSource(redis_url, key=key, reload_interval=2)], clock=clock) for _ in range(2)
    ]
    keys = [f"client-{i}" for i in range(200)]
    expected = [Flag(name="new_endpoint", percentage=50).evaluate(k)[0] for k in keys]
    assert [expected, expected] == [
        [w.enabled("new_endpoint", key=k) for k in keys] for w in workers
    ]

    operator.set_flag("new_endpoint", enabled=False)
    clock.advance(2)
    assert [[False] * 200] * 2 == [
        [w.enabled("new_endpoint", key=k) for k in keys] for w in workers
    ]


@pytest.mark.redis
def test_redis_bad_field_names_the_flag(redis_url: str, redis_prefix: str) -> None:
    """A hash field that is not a JSON object fails with the flag and the key."""
    import redis

    key = f"{redis_prefix}flags"
    redis.Redis.from_url(redis_url).hset(key, "beta", "25%%")
    with pytest.raises(ConfigurationError, match=rf"flag 'beta' in redis hash {key}"):
        Flags([RedisSource(redis_url, key=key)])


def test_redis_unreachable_is_a_store_error_without_the_password() -> None:
    """An unreachable Redis fails construction; the URL's password is never shown."""
    source = RedisSource("redis://:s3cret-pw@127.0.0.1:1/0")
    with pytest.raises(StoreError) as info:
        Flags([source])
    assert "s3cret-pw" not in str(info.value) + repr(source)


def test_redis_source_options() -> None:
    """Exactly one of url and client; a malformed URL does not echo it."""
    with pytest.raises(ConfigurationError):
        RedisSource()
    with pytest.raises(ConfigurationError) as info:
        RedisSource("http://user:s3cret-pw@host")
    assert "s3cret-pw" not in str(info.value)
