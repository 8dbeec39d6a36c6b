"""PostgreSQL connections: one killed while idle is replaced; a DSN's password never shows."""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from resilient_pipeline import PostgresStore, idempotent_upsert, unit_of_work
from resilient_pipeline._cli import main
from resilient_pipeline.exceptions import ConfigurationError, TransientStoreError
from resilient_pipeline.storage import UpsertResult

pytestmark = pytest.mark.postgres


def backend_pid(store: PostgresStore) -> int:
    """The server process of the connection a unit of work gets."""
    with unit_of_work(store) as tx:
        row = tx.fetchone("SELECT pg_backend_pid()")
    assert row is not None
    return int(row[0])


def terminate(dsn: str, pid: int) -> None:
    """Kill a server process and wait (up to 10 s) until it is gone."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        row = admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone()
    assert row is not None
    assert row[0] is True


@pytest.fixture(params=["dsn", "pool"])
def store(request: pytest.FixtureRequest, postgres_dsn: str, postgres_schema: str) -> Iterator[Any]:
    """A store with a single connection: its own (a DSN), or a ConnectionPool's."""
    if request.param == "dsn":
        s = PostgresStore(postgres_dsn, schema=postgres_schema, max_connections=1)
        yield s
        s.close()
        return
    with ConnectionPool(postgres_dsn, min_size=1, max_size=1, open=True) as pool:
        yield PostgresStore(pool, schema=postgres_schema)


def test_a_connection_killed_while_idle_is_replaced(
    store: PostgresStore, postgres_dsn: str
) -> None:
    """pg_terminate_backend on the idle pooled connection: the next unit of work still succeeds."""
    with unit_of_work(store) as tx:
        tx.execute(f"CREATE TABLE {tx.table('t')} (id integer PRIMARY KEY)")
    first = backend_pid(store)
    assert first == backend_pid(store)  # one connection, reused
    terminate(postgres_dsn, first)
    assert UpsertResult(1, 0, 0) == idempotent_upsert(store, "t", [{"id": 1}], key="id")
    second = backend_pid(store)
    assert first != second
    with unit_of_work(store) as tx:
        assert [(1,)] == tx.fetchall(f"SELECT id FROM {tx.table('t')}")


# The password holds '@', '/' and a space; none of its pieces may ever show.
PIECES = ("Sekr3t", "Hunter2", "Pa55", "W0rdZ")
PASSWORD = "Sekr3t@Hunter2/Pa55 W0rdZ"
MALFORMED = [
    f"postgresql://app:{PASSWORD}@127.0.0.1:1/db",
    "postgresql://app:Sekr3t@Hunter2@127.0.0.1:1/db",
    "postgresql://app:Sekr3t/Hunter2@127.0.0.1:1/db",
    "postgresql://app:Sekr3t?Hunter2/Pa55@127.0.0.1:1/db",
    "postgresql://app:Sekr3t%zzHunter2@127.0.0.1:1/db",
    "postgresql://app:Sekr3tHunter2@[::1:1/db",
    "postgresql://app:Sekr3t/Hunter2",
    "host=127.0.0.1 port=1 password=Sekr3t Hunter2 dbname=x",
    "host=127.0.0.1 port=1 password='Sekr3t Hunter2' dbname",
    f"host=127.0.0.1 port=1 password='{PASSWORD}",
]
UNREACHABLE = [
    "postgresql://app:Sekr3t%40Hunter2%2FPa55%20W0rdZ@127.0.0.1:1/db?connect_timeout=2",
    f"host=127.0.0.1 port=1 user=app password='{PASSWORD}' dbname=x connect_timeout=2",
    "postgresql://app@127.0.0.1:1/db?password=Sekr3t%40Hunter2&sslpassword=Pa55W0rdZ",
]


def everything_shown(exc: BaseException) -> str:
    """What an error can show: its text, attributes, whole chain, and logging.exception output."""
    shown = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        shown += [str(current), repr(current), repr(vars(current))]
        shown += [str(n) for n in getattr(current, "__notes__", [])]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    stream = io.StringIO()
    logger = logging.getLogger("rp-test-secrets")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        raise exc
    except BaseException:
        logger.exception("the store failed")
    finally:
        logger.removeHandler(handler)
    shown.append(stream.getvalue())
    assert "the store failed" in shown[-1]
    return "\n".join(shown)


def assert_hidden(text: str) -> None:
    """No piece of the password in ``text``."""
    assert [] == [piece for piece in PIECES if piece in text]


@pytest.mark.parametrize("dsn", MALFORMED)
def test_a_malformed_dsn_is_refused_without_showing_it(dsn: str) -> None:
    """A DSN libpq cannot parse, or would misread, is refused naming target; no password shows."""
    with pytest.raises(ConfigurationError) as info:
        PostgresStore(dsn, timeout=2)
    assert "target" == info.value.option
    assert_hidden(everything_shown(info.value))


@pytest.mark.parametrize("dsn", UNREACHABLE)
def test_a_dsn_password_never_shows(dsn: str) -> None:
    """Repr, StoreError, its chained cause and logging.exception output hide the password."""
    store = PostgresStore(dsn, timeout=2)
    assert "***" in repr(store)
    assert_hidden(repr(store))
    with pytest.raises(TransientStoreError) as info, unit_of_work(store):
        pass
    assert info.value.__cause__ is not None
    assert_hidden(everything_shown(info.value))
    store.close()


@pytest.mark.parametrize("dsn", [d for d in MALFORMED + UNREACHABLE if "://" in d])
def test_the_cli_never_prints_the_password(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``gaps --db <dsn>``: the error on stderr hides the password."""
    argv = ["gaps", "--db", dsn, "--source", "s", "--keys", "a"]
    code = main([*argv, "--start", "2026-11-01", "--end", "2026-11-02"], out=io.StringIO())
    assert 0 != code
    captured = capsys.readouterr()
    assert "error" in captured.err
    assert_hidden(captured.err + captured.out)
