"""Quarantine sinks: a JSONL file, or a table in a SQLite or PostgreSQL store."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from resilient_pipeline._core import add_note
from resilient_pipeline.exceptions import ConfigurationError, StoreError
from resilient_pipeline.storage import (
    Store,
    Transaction,
    is_concurrent_ddl,
    unit_of_work,
    validate_identifier,
)

from ._quarantine import QuarantineRecord, dumps

__all__ = ["JSONLQuarantine", "SQLQuarantine"]


@attrs.define(eq=False)
class JSONLQuarantine:
    """Quarantined rows in a JSON Lines file: one record per line, append-only.

    Discarding a record appends a ``{"discard": [ids]}`` line instead of
    rewriting the file, so a crash can at worst tear the last line, which is
    ignored when read; :meth:`compact` rewrites the file without discarded
    records (atomically, through a temporary file). Each write is one
    ``write()`` on a file opened for appending, so processes appending to the
    same file do not interleave lines.

    Args:
        path: The file (created on first write; its directory must exist).

    Examples:
        >>> import tempfile, pathlib
        >>> from resilient_pipeline import Field, Validator, quarantine
        >>> sink = JSONLQuarantine(pathlib.Path(tempfile.mkdtemp()) / "quarantine.jsonl")
        >>> bad = Validator(fields={"n": Field(int)}).partition([{"n": "7"}])
        >>> _ = quarantine(sink, bad, source="api")
        >>> [(r.source, r.row, r.issues[0].rule) for r in sink.records()]
        [('api', {'n': '7'}, 'type')]
    """

    path: Path = attrs.field(converter=Path)
    _lock: threading.RLock = attrs.field(factory=threading.RLock, init=False, repr=False)

    def _append(self, lines: Sequence[str]) -> None:
        text = "".join(line + "\n" for line in lines)
        with self._lock, open(self.path, "a", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())

    def _read(self) -> tuple[list[QuarantineRecord], set[str]]:
        records: list[QuarantineRecord] = []
        discarded: set[str] = set()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return records, discarded
        lines = text.split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                if number == len(lines):  # a write torn by a crash: it never happened
                    break
                add_note(exc, f"in {self.path}, line {number}")
                raise
            if "discard" in entry:
                discarded.update(entry["discard"])
            else:
                records.append(QuarantineRecord.from_json(entry["record"]))
        return records, discarded

    def put(self, records: Sequence[QuarantineRecord]) -> None:
        """Append the records."""
        self._append([dumps({"record": record.to_json()}) for record in records])

    def records(self, *, source: str | None = None) -> list[QuarantineRecord]:
        """Every record not discarded (from ``source`` only, if given), oldest first."""
        with self._lock:
            records, discarded = self._read()
        return [
            r for r in records if r.id not in discarded and (source is None or r.source == source)
        ]

    def discard(self, ids: Iterable[str]) -> int:
        """Mark records as gone; return how many of ``ids`` were in quarantine."""
        wanted = list(dict.fromkeys(ids))
        with self._lock:
            live = {r.id for r in self.records()}
            found = [i for i in wanted if i in live]
            if found:
                self._append([dumps({"discard": found})])
        return len(found)

    def compact(self) -> None:
        """Rewrite the file with only the records still in quarantine."""
        with self._lock:
            live = self.records()
            temporary = self.path.with_name(self.path.name + ".tmp")
            with open(temporary, "w", encoding="utf-8") as file:
                file.write("".join(dumps({"record": r.to_json()}) + "\n" for r in live))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)

    def atomic(self) -> contextlib.AbstractContextManager[object]:
        """Serialises replays in this process (a file has no transactions)."""
        return self._lock


# ``seq`` keeps insertion order (records written together share one timestamp).
_DDL = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS {table} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "id TEXT NOT NULL UNIQUE, source TEXT NOT NULL, quarantined_at REAL NOT NULL, "
        "row_data TEXT NOT NULL, issues TEXT NOT NULL)"
    ),
    "postgres": (
        "CREATE TABLE IF NOT EXISTS {table} (seq bigint GENERATED ALWAYS AS IDENTITY "
        "PRIMARY KEY, id text NOT NULL UNIQUE, source text NOT NULL, "
        "quarantined_at double precision NOT NULL, row_data jsonb NOT NULL, "
        "issues jsonb NOT NULL)"
    ),
}
_CHUNK = 500  # ids per DELETE: well under SQLite's limit of bound parameters
_INDEX = "CREATE INDEX IF NOT EXISTS {index} ON {table} (source, seq)"


def _loads(value: Any) -> Any:
    """psycopg returns jsonb already parsed; SQLite returns the text."""
    return json.loads(value) if isinstance(value, str) else value


@attrs.define(eq=False)
class SQLQuarantine:
    """Quarantined rows in a table of a SQLite or PostgreSQL store.

    The table (created on first use) has the columns ``seq``, ``id``, ``source``,
    ``quarantined_at``, ``row_data`` and ``issues`` (``jsonb`` on PostgreSQL,
    JSON text on SQLite), so it can be queried with plain SQL too. Writes run
    in a unit of work, joining the one already open in this thread (as a
    savepoint): quarantining and saving the valid rows can commit together.

    Args:
        store: A :class:`~resilient_pipeline.SQLiteStore` or
            :class:`~resilient_pipeline.PostgresStore`.
        table: The table name (checked and quoted, qualified with the store's schema).

    Examples:
        >>> from resilient_pipeline import Field, SQLiteStore, Validator, quarantine
        >>> sink = SQLQuarantine(SQLiteStore(":memory:"))
        >>> bad = Validator(fields={"n": Field(int)}).partition([{"n": None}])
        >>> _ = quarantine(sink, bad, source="api")
        >>> [str(i) for r in sink.records(source="api") for i in r.issues]
        ['n: is required (got None) [required]']
    """

    store: Store
    table: str = attrs.field(default="rp_quarantine", kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.store, Store):
            raise ConfigurationError.for_option("store", self.store, "must be a Store")
        validate_identifier(self.table, option="table")

    @contextlib.contextmanager
    def _tx(self, name: str) -> Iterator[Transaction]:
        with unit_of_work(self.store, name=name) as tx:
            table = tx.table(self.table)
            ready: set[str] = self.store.cache.setdefault("quarantine_tables", set())
            if table not in ready:
                self._create(tx, table)
                # Only once committed: a rollback would take the new table with it.
                tx.after_commit(lambda: ready.add(table))
            yield tx

    def _create(self, tx: Transaction, table: str) -> None:
        index = tx.quote(f"{self.table[:40]}_by_source")
        try:
            with tx.savepoint():
                tx.execute(_DDL[tx.dialect].format(table=table))
                tx.execute(_INDEX.format(index=index, table=table))
        except StoreError as exc:
            if not is_concurrent_ddl(exc):  # another session created it first
                raise

    def put(self, records: Sequence[QuarantineRecord]) -> None:
        """Insert the records (all or none)."""
        with self._tx("quarantine") as tx:
            ph = tx.placeholder
            json_ph = f"CAST({ph} AS jsonb)" if tx.dialect == "postgres" else ph
            sql = (
                f"INSERT INTO {tx.table(self.table)} "  # noqa: S608 -- identifiers quoted
                f"(id, source, quarantined_at, row_data, issues) "
                f"VALUES ({ph}, {ph}, {ph}, {json_ph}, {json_ph})"
            )
            params = []
            for record in records:
                data = record.to_json()
                envelope = dumps({"row": data["row"]})  # jsonb would unwrap a bare string
                issues = dumps(data["issues"])
                params.append(
                    (data["id"], data["source"], data["quarantined_at"], envelope, issues)
                )
            tx.executemany(sql, params)

    def records(self, *, source: str | None = None) -> list[QuarantineRecord]:
        """Every record still in quarantine (from ``source`` only, if given), oldest first."""
        with self._tx("quarantine records") as tx:
            where, params = "", [source]
            if source is None:
                params.clear()
            else:
                where = f" WHERE source = {tx.placeholder}"
            rows = tx.fetchall(
                "SELECT id, source, quarantined_at, row_data, issues "  # noqa: S608 -- quoted
                f"FROM {tx.table(self.table)}{where} ORDER BY seq",
                params,
            )
        return [
            QuarantineRecord.from_json(
                {
                    "id": id_,
                    "source": source_,
                    "quarantined_at": at,
                    "row": _loads(row)["row"],
                    "issues": _loads(issues),
                }
            )
            for id_, source_, at, row, issues in rows
        ]

    def discard(self, ids: Iterable[str]) -> int:
        """Delete the records with these ids; return how many were deleted."""
        wanted = list(dict.fromkeys(ids))
        deleted = 0
        with self._tx("quarantine discard") as tx:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ", ".join([tx.placeholder] * len(chunk))
                sql = f"DELETE FROM {tx.table(self.table)} WHERE id IN ({marks})"  # noqa: S608
                deleted += tx.execute(sql, chunk)
        return deleted

    def atomic(self) -> contextlib.AbstractContextManager[object]:
        """One unit of work: an upsert into the same store and the discard commit together."""
        return unit_of_work(self.store, name="quarantine replay")
