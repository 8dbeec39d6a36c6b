"""Flags shared by every worker: a table in a SQLite or PostgreSQL store, or a Redis hash.

Both hold one JSON object per flag (the fields of a file's table), so an
operator can roll a change out or back for every worker at once with
``set_flag``; each worker sees it within its ``reload_interval``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from resilient_pipeline._core import describe_error, non_empty_str
from resilient_pipeline.exceptions import ConfigurationError, MissingDependencyError, StoreError
from resilient_pipeline.storage import Store, is_concurrent_ddl, unit_of_work, validate_identifier

from ._flag import Flag, check_name, loads_json, parse_flag
from ._sources import check_interval, make_flag

__all__ = ["RedisSource", "StoreSource"]

_DDL = {
    "sqlite": "CREATE TABLE IF NOT EXISTS {table} "
    "(name TEXT PRIMARY KEY NOT NULL, spec TEXT NOT NULL)",
    "postgres": "CREATE TABLE IF NOT EXISTS {table} (name text PRIMARY KEY, spec text NOT NULL)",
}


def _decode(name: object, spec: object, *, where: str) -> Flag:
    """One stored row or hash field as a flag; bad JSON names the flag and where."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    if isinstance(spec, bytes):
        spec = spec.decode("utf-8", "replace")
    text = str(name)
    try:
        value = loads_json(str(spec))
    except ValueError as exc:
        raise ConfigurationError(
            f"flag {text!r} in {where}: {spec!r} is not a JSON object ({exc})",
            option="spec",
            value=spec,
        ) from None
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"flag {text!r} in {where}: {spec!r} is not a JSON object", option="spec", value=spec
        )
    return parse_flag(text, value, where=where)


def _encode(flag: Flag) -> str:
    return json.dumps(flag.to_dict(), sort_keys=True)


class StoreSource:
    """Flags in a table of a :class:`~resilient_pipeline.storage.Store` (SQLite or PostgreSQL).

    The table (``name`` primary key, ``spec`` a JSON object) is created on
    first use. Every worker reading the same table sees a ``set_flag`` within
    its ``reload_interval``: the way to roll a change back everywhere at once.

    Args:
        store: The store.
        table: The table's name (in the store's schema).
        reload_interval: Seconds between reads of the table.

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> store = SQLiteStore(":memory:")
        >>> source = StoreSource(store)
        >>> source.set_flag("new_conversions_endpoint", percentage=10)
        >>> source.load()["new_conversions_endpoint"].percentage
        10
        >>> source.set_flag("new_conversions_endpoint", enabled=False)  # roll back
        >>> source.load()["new_conversions_endpoint"].enabled
        False
        >>> store.close()
    """

    __slots__ = ("_ready", "reload_interval", "store", "table")

    def __init__(
        self, store: Store, *, table: str = "rp_feature_flags", reload_interval: float | None = 5.0
    ) -> None:
        if not isinstance(store, Store):
            raise ConfigurationError.for_option("store", store, "must be a Store")
        self.store = store
        self.table = validate_identifier(table, option="table")
        self.reload_interval = check_interval(reload_interval)
        self._ready = False

    @property
    def where(self) -> str:
        """``store table <name>``."""
        return f"store table {self.table}"

    def _ensure(self, tx: Any) -> None:
        if self._ready:
            return
        try:
            with tx.savepoint():
                tx.execute(_DDL[tx.dialect].format(table=tx.table(self.table)))
        except StoreError as exc:
            if not is_concurrent_ddl(exc):  # another worker created it first: fine
                raise
        self._ready = True

    def load(self) -> Mapping[str, Flag]:
        """Every flag in the table."""
        with unit_of_work(self.store, name="flags") as tx:
            self._ensure(tx)
            table = tx.table(self.table)  # validated and quoted
            rows = tx.fetchall(f"SELECT name, spec FROM {table} ORDER BY name")  # noqa: S608
        return {str(name): _decode(name, spec, where=self.where) for name, spec in rows}

    def set_flag(
        self,
        name: str,
        *,
        percentage: float | None = None,
        enabled: bool = True,
        allow: Iterable[object] = (),
        deny: Iterable[object] = (),
    ) -> None:
        """Define or replace one flag for every worker (``enabled=False`` is the kill switch).

        ``percentage`` is needed unless ``enabled=False``. The flag is checked
        before anything is written.
        """
        flag = make_flag(name, percentage, enabled, allow, deny, where=self.where)
        with unit_of_work(self.store, name="flags") as tx:
            self._ensure(tx)
            p = tx.placeholder
            tx.execute(
                f"INSERT INTO {tx.table(self.table)} (name, spec) VALUES ({p}, {p}) "  # noqa: S608
                "ON CONFLICT (name) DO UPDATE SET spec = excluded.spec",
                (flag.name, _encode(flag)),
            )

    def remove_flag(self, name: str) -> None:
        """Delete one flag (workers fall back to later sources, then the default)."""
        check_name(name)
        with unit_of_work(self.store, name="flags") as tx:
            self._ensure(tx)
            table, p = tx.table(self.table), tx.placeholder
            tx.execute(f"DELETE FROM {table} WHERE name = {p}", (name,))  # noqa: S608

    def __repr__(self) -> str:
        return f"StoreSource(table={self.table!r})"


def _redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise MissingDependencyError(
            package="redis", extra="redis", feature="Flags in Redis"
        ) from exc
    return redis


class RedisSource:
    """Flags in a Redis hash (field: the flag's name, value: a JSON object).

    Args:
        url: A ``redis://`` URL (a client is made from it), or give ``client``.
        client: A sync ``redis.Redis``.
        key: The hash's key.
        reload_interval: Seconds between reads of the hash.

    Examples:
        ```python
        from resilient_pipeline.flags import Flags, RedisSource

        shared = RedisSource("redis://localhost:6379/0")
        flags = Flags([shared])
        shared.set_flag("new_conversions_endpoint", enabled=False)  # every worker, within 5 s
        ```
    """

    __slots__ = ("client", "key", "reload_interval")

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        key: str = "resilient-pipeline:flags",
        reload_interval: float | None = 5.0,
    ) -> None:
        redis = _redis()
        if (url is None) == (client is None):
            raise ConfigurationError.for_option(
                "client", client, "give exactly one of url or client"
            )
        if url is not None:
            if not isinstance(url, str):
                raise ConfigurationError.for_option("url", type(url).__name__, "must be a str")
            try:
                client = redis.Redis.from_url(url)
            except ValueError:
                # The message may quote the URL, password and all: say what kind of problem only.
                raise ConfigurationError(
                    "url is invalid: not a redis://, rediss:// or unix:// URL", option="url"
                ) from None
        elif not isinstance(client, redis.Redis):
            raise ConfigurationError.for_option(
                "client", type(client).__name__, "must be a sync redis.Redis"
            )
        self.client = client
        self.key = non_empty_str().check("key", key)
        self.reload_interval = check_interval(reload_interval)

    @property
    def where(self) -> str:
        """``redis hash <key>``."""
        return f"redis hash {self.key}"

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        redis = _redis()
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise StoreError(f"{self.where}: {what} failed ({describe_error(exc)})") from exc

    def load(self) -> Mapping[str, Flag]:
        """Every flag in the hash."""
        raw = self._call("HGETALL", self.client.hgetall, self.key)
        flags = {}
        for name, spec in sorted(raw.items()):
            flag = _decode(name, spec, where=self.where)
            flags[flag.name] = flag
        return flags

    def set_flag(
        self,
        name: str,
        *,
        percentage: float | None = None,
        enabled: bool = True,
        allow: Iterable[object] = (),
        deny: Iterable[object] = (),
    ) -> None:
        """Define or replace one flag for every worker (``enabled=False`` is the kill switch)."""
        flag = make_flag(name, percentage, enabled, allow, deny, where=self.where)
        self._call("HSET", self.client.hset, self.key, flag.name, _encode(flag))

    def remove_flag(self, name: str) -> None:
        """Delete one flag (workers fall back to later sources, then the default)."""
        self._call("HDEL", self.client.hdel, self.key, check_name(name))

    def __repr__(self) -> str:
        return f"RedisSource(key={self.key!r})"
