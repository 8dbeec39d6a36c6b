"""Shared fixtures: anyio backends, hypothesis profiles, the real PostgreSQL and Redis servers.

Service tests use the servers on this machine. Where one is unreachable they
skip and say why; under ``CI=true`` an unreachable service fails instead, so
CI can never go green by skipping them.

Hypothesis draws new examples on every CI run (no ``derandomize``), so CI keeps
exploring; the header of each run names the profile and how to replay a run
with ``--hypothesis-seed``, and a failure prints its ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from resilient_pipeline.storage import Store

IN_CI = os.environ.get("CI") == "true"
HYPOTHESIS_PROFILE = "ci" if IN_CI else "default"

settings.register_profile("default", deadline=None, print_blob=True)
settings.register_profile(
    "ci", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(HYPOTHESIS_PROFILE)

POSTGRES_DSN = os.environ.get("RP_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what a test's code did to logging (the collector's CLI quiets the library's loggers).

    Without this, one in-process run of the collector left ``resilient_pipeline.retry``
    at CRITICAL, and a later test that reads the library's log lines saw none.
    """
    root = logging.getLogger()
    handlers, level, factory = list(root.handlers), root.level, logging.getLogRecordFactory()
    loggers = {
        name: (logger.level, logger.propagate, list(logger.handlers))
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.setLogRecordFactory(factory)
    for name, (logger_level, propagate, logger_handlers) in loggers.items():
        logger = logging.getLogger(name)
        logger.setLevel(logger_level)
        logger.propagate = propagate
        logger.handlers[:] = logger_handlers


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """In CI, draw this run's hypothesis seed here (before hypothesis reads it), so it is known."""
    if IN_CI and config.getoption("hypothesis_seed", default=None) is None:
        config.option.hypothesis_seed = random.SystemRandom().randrange(2**32)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Name the hypothesis profile and how to replay this run's examples."""
    seed = config.getoption("hypothesis_seed", default=None)
    if seed is not None:
        how = f"replay this run with --hypothesis-seed={seed}"
    else:
        how = (
            "random examples; a failure prints @reproduce_failure(...) to replay it, and"
            " --hypothesis-seed=N fixes the seed of every test"
        )
    return [f"hypothesis profile {HYPOTHESIS_PROFILE!r}: {how}"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test on asyncio and on trio."""
    return str(request.param)


def unavailable(service: str, reason: str) -> None:
    """Skip (on a laptop) or fail (in CI) a test whose service is unreachable."""
    message = f"{service} is not reachable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: service tests must not be skipped)", pytrace=False)
    pytest.skip(message)


def _port_open(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc}"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of the real PostgreSQL server (``RP_TEST_POSTGRES_DSN`` overrides)."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        unavailable("PostgreSQL", f"psycopg is not installed ({exc})")
        raise
    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        unavailable("PostgreSQL", str(exc).strip())
    return POSTGRES_DSN


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh, uniquely named schema, dropped after the test (tests may run in parallel)."""
    import psycopg

    schema = f"rp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis server (``RP_TEST_REDIS_URL`` overrides)."""
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        unavailable("Redis", f"redis is not installed ({exc})")
        raise
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", str(exc))
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix; every key under it is deleted after the test."""
    import redis

    prefix = f"rp-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every store backend, empty: a SQLite file, or PostgreSQL on a fresh schema.

    ``copy_threshold=3`` sends batches of three rows or more through PostgreSQL's
    COPY path, so small test batches cover both write paths.
    """
    from resilient_pipeline.storage import PostgresStore, SQLiteStore

    store: Store
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "store.db")
    else:
        store = PostgresStore(
            request.getfixturevalue("postgres_dsn"),
            schema=request.getfixturevalue("postgres_schema"),
            copy_threshold=3,
        )
    try:
        yield store
    finally:
        store.close()
