"""Quarantine sinks: a JSONL file, or a table in a SQLite or PostgreSQL store."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from resilient_pipeline._core import Event, add_note, emit
from resilient_pipeline.exceptions import ConfigurationError, QuarantineError, StoreError
from resilient_pipeline.storage import (
    Store,
    Transaction,
    is_concurrent_ddl,
    unit_of_work,
    validate_identifier,
)

from ._codec import FORMAT
from ._quarantine import QuarantineRecord, dumps

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the lock only covers this process
    fcntl = None  # type: ignore[assignment]

__all__ = ["JSONLQuarantine", "QuarantineLinesSkipped", "SQLQuarantine"]


@attrs.frozen(kw_only=True)
class QuarantineLinesSkipped(Event):
    """A JSONL quarantine has lines it cannot read; they were skipped, and kept.

    Usually a write torn by a crash (the process died mid-line). Every other
    record is still read; the damaged lines stay in the file, and
    :meth:`JSONLQuarantine.compact` moves them to a ``.corrupt`` file beside
    it, so nothing is lost and you can recover them by hand. The event names
    line numbers only, never their content (rows may hold secrets).

    Attributes:
        source: The quarantine file.
        lines: The numbers (from 1) of the lines skipped, in that file.
        kept_in: Where those lines are now: the file itself, or its ``.corrupt`` file.
    """

    logger_name = "resilient_pipeline.validation"
    level = logging.WARNING
    template = "{source}: skipped unreadable line(s) {lines}; kept in {kept_in}"

    lines: tuple[int, ...]
    kept_in: str

    def message(self) -> str:
        """A one-line description, the line numbers comma-separated."""
        numbers = ", ".join(map(str, self.lines))
        return f"{self.source}: skipped unreadable line(s) {numbers}; kept in {self.kept_in}"


class _FileLock:
    """An exclusive OS lock (``flock``) on a file, re-entrant within one process.

    One per lock file and process (see :func:`_file_lock`): threads queue on the
    ``RLock``, processes on ``flock``; the outermost holder opens the lock file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> _FileLock:
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                fd = self._open()
                try:
                    if fcntl is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            try:  # a read-only directory: an existing lock file still serves (flock reads)
                return os.open(self.path, os.O_RDONLY)
            except OSError:
                add_note(exc, f"the quarantine's lock file {self.path} cannot be created")
                raise exc from None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)  # closing the file releases the flock
        finally:
            self._thread_lock.release()


_LOCKS: dict[str, _FileLock] = {}
_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> _FileLock:
    """The one lock object of this process for ``path``, however many sinks point at it."""
    key = os.path.realpath(path)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = _FileLock(key)
        return lock


def _fsync_directory(path: Path) -> None:
    """Make a rename in ``path``'s directory durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


@attrs.frozen
class _Contents:
    """What the file holds, by line number: records, discards, and lines that cannot be read."""

    records: list[tuple[int, QuarantineRecord]]
    discarded: dict[str, int]  # id -> the last line that discarded it
    damaged: list[tuple[int, bytes]]

    def live(self, source: str | None = None) -> list[QuarantineRecord]:
        """Records not discarded *after* they were written (an id may be put again)."""
        return [
            r
            for number, r in self.records
            if self.discarded.get(r.id, 0) < number and (source is None or r.source == source)
        ]


def _parse(raw: bytes) -> tuple[str, Any]:
    """One line: ``("record", dict)`` or ``("discard", [ids])``; ``ValueError`` if damaged."""
    entry = json.loads(raw.decode("utf-8"))
    if isinstance(entry, dict) and len(entry) == 1:
        ids = entry.get("discard")
        if isinstance(ids, list) and all(isinstance(i, str) for i in ids):
            return "discard", ids
        record = entry.get("record")
        if isinstance(record, dict):
            return "record", record
    raise ValueError("not a quarantine line")


@attrs.define(eq=False)
class JSONLQuarantine:
    """Quarantined rows in a JSON Lines file: one record per line, append-only.

    Discarding a record appends a ``{"discard": [ids]}`` line instead of
    rewriting the file; :meth:`compact` rewrites the file without discarded
    records (atomically, through a temporary file). Every read and write
    holds an exclusive OS lock (``flock`` on ``<path>.lock``, created beside
    the file), so processes sharing the file neither interleave lines nor lose
    an append to a concurrent :meth:`compact`, and a :func:`replay` holds it
    from reading to discarding (each record is replayed once).

    A crash mid-write can tear the last line. The next append starts on a
    fresh line, so only that line is damaged: reads skip it and report it
    (the :class:`QuarantineLinesSkipped` event, logged as a warning), it stays
    in the file, and :meth:`compact` moves it to ``<path>.corrupt``. A record
    written by a newer version of the library raises
    :class:`~resilient_pipeline.QuarantineError` instead of being skipped.

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

    @property
    def _lock(self) -> _FileLock:
        return _file_lock(self.path.with_name(self.path.name + ".lock"))

    def _append(self, lines: Sequence[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        with self._lock, open(self.path, "a+b") as file:
            end = file.seek(0, os.SEEK_END)
            if end:
                file.seek(end - 1)
                if file.read(1) != b"\n":
                    # The last line was torn by a crash: do not glue this write to it.
                    data = b"\n" + data
            file.write(data)
            file.flush()
            os.fsync(file.fileno())

    def _load(self) -> _Contents:
        """Read the file (the caller holds the lock)."""
        contents = _Contents([], {}, [])
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return contents
        for number, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                kind, value = _parse(raw)
                if kind == "discard":
                    contents.discarded.update(dict.fromkeys(value, number))
                    continue
                version = value.get("format", 1)
                if type(version) is int and version > FORMAT:
                    newer = value  # not damage: from_json names the format below
                else:
                    contents.records.append((number, QuarantineRecord.from_json(value)))
                    continue
            except (ValueError, RecursionError):  # damaged: reported by the caller
                contents.damaged.append((number, raw))
                continue
            QuarantineRecord.from_json(newer)  # raises QuarantineError: upgrade to read it
        return contents

    def _report(self, contents: _Contents, kept_in: Path) -> None:
        if contents.damaged:
            lines = tuple(number for number, _ in contents.damaged)
            emit(QuarantineLinesSkipped(source=str(self.path), lines=lines, kept_in=str(kept_in)))

    def put(self, records: Sequence[QuarantineRecord]) -> None:
        """Append the records."""
        self._append([dumps({"record": record.to_json()}) for record in records])

    def records(self, *, source: str | None = None) -> list[QuarantineRecord]:
        """Every record not discarded (from ``source`` only, if given), oldest first.

        Lines that cannot be read are skipped and reported (:class:`QuarantineLinesSkipped`).
        """
        with self._lock:
            contents = self._load()
        self._report(contents, self.path)
        return contents.live(source)

    def claim(self, *, source: str | None = None) -> list[QuarantineRecord]:
        """:meth:`records`, for :func:`replay`: inside :meth:`atomic` no other process can
        take them (the file lock is held until ``atomic()`` ends)."""
        return self.records(source=source)

    def discard(self, ids: Iterable[str]) -> int:
        """Mark records as gone; return how many of ``ids`` were in quarantine."""
        wanted = list(dict.fromkeys(ids))
        with self._lock:
            live = {r.id for r in self._load().live()}
            found = [i for i in wanted if i in live]
            if found:
                self._append([dumps({"discard": found})])
        return len(found)

    def compact(self) -> None:
        """Rewrite the file with only the records still in quarantine.

        Unreadable lines are moved, byte for byte, to ``<path>.corrupt``
        (appended) before the file is replaced, and reported.
        """
        corrupt = self.path.with_name(self.path.name + ".corrupt")
        with self._lock:
            contents = self._load()
            if not self.path.exists():
                return
            if contents.damaged:
                with open(corrupt, "ab") as file:
                    file.write(b"".join(raw + b"\n" for _, raw in contents.damaged))
                    file.flush()
                    os.fsync(file.fileno())
            temporary = self.path.with_name(self.path.name + ".tmp")
            with open(temporary, "wb") as file:
                live = contents.live()
                text = "".join(dumps({"record": r.to_json()}) + "\n" for r in live)
                file.write(text.encode("utf-8"))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
            _fsync_directory(self.path)
        self._report(contents, corrupt)

    def atomic(self) -> contextlib.AbstractContextManager[object]:
        """Holds the file lock: a replay's read, write and discard exclude other processes."""
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
                # An object, as jsonb would unwrap a bare string; "format" says how to decode.
                envelope = dumps({"row": data["row"], "format": data["format"]})
                issues = dumps(data["issues"])
                params.append(
                    (data["id"], data["source"], data["quarantined_at"], envelope, issues)
                )
            tx.executemany(sql, params)

    def _select(self, tx: Transaction, source: str | None, *, lock: bool) -> list[Any]:
        where, params = "", [source]
        if source is None:
            params.clear()
        else:
            where = f" WHERE source = {tx.placeholder}"
        # SQLite needs no row locks: the unit of work holds the database's write lock.
        locking = " FOR UPDATE SKIP LOCKED" if lock and tx.dialect == "postgres" else ""
        return tx.fetchall(
            "SELECT id, source, quarantined_at, row_data, issues "  # noqa: S608 -- quoted
            f"FROM {tx.table(self.table)}{where} ORDER BY seq{locking}",
            params,
        )

    def _decode(self, rows: list[Any]) -> list[QuarantineRecord]:
        records = []
        for id_, source, at, row_data, issues in rows:
            try:
                envelope = _loads(row_data)
                data = {
                    "format": envelope.get("format", 1),
                    "id": id_,
                    "source": source,
                    "quarantined_at": at,
                    "row": envelope["row"],
                    "issues": _loads(issues),
                }
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
                raise QuarantineError(
                    f"quarantine record {id_!r} in table {self.table!r} cannot be read",
                    record=id_,
                ) from None
            records.append(QuarantineRecord.from_json(data))
        return records

    def records(self, *, source: str | None = None) -> list[QuarantineRecord]:
        """Every record still in quarantine (from ``source`` only, if given), oldest first."""
        with self._tx("quarantine records") as tx:
            rows = self._select(tx, source, lock=False)
        return self._decode(rows)

    def claim(self, *, source: str | None = None) -> list[QuarantineRecord]:
        """:meth:`records`, reserved for the caller until the unit of work ends.

        :func:`~resilient_pipeline.replay` calls it inside :meth:`atomic`. On
        PostgreSQL the rows are locked (``FOR UPDATE SKIP LOCKED``): a
        concurrent replay skips them instead of replaying them too. On SQLite
        the unit of work already holds the database's write lock
        (``BEGIN IMMEDIATE``), so a concurrent replay waits, then finds them gone.
        Outside a unit of work the reservation ends at once.

        Examples:
            >>> from resilient_pipeline import SQLiteStore, unit_of_work
            >>> sink = SQLQuarantine(SQLiteStore(":memory:"))
            >>> with sink.atomic():
            ...     sink.claim(source="api")
            []
        """
        with self._tx("quarantine claim") as tx:
            rows = self._select(tx, source, lock=True)
        return self._decode(rows)

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
