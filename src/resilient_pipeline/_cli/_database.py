"""The database a command works on: opened read-only or for writing, its ledger checked."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from resilient_pipeline._core import redact
from resilient_pipeline.exceptions import ConfigurationError

if TYPE_CHECKING:
    from resilient_pipeline.ledger import PartitionLedger
    from resilient_pipeline.storage import Dialect, Store, StoreSession, Transaction

from ._common import _CannotRunError, _UsageError

# ------------------------------------------------------------------ the database


def _is_postgres(db: str) -> bool:
    """A URI, or a ``host=... dbname=...`` DSN that is not a file's name."""
    if db.startswith(("postgresql://", "postgres://")):
        return True
    return not os.path.exists(db) and any(f"{k}=" in db for k in ("host", "dbname", "user"))


@attrs.define(eq=False)
class _ReadOnlyStore:
    """A PostgreSQL store whose every transaction is READ ONLY: DDL and writes fail."""

    inner: Store
    once_table: str = attrs.field(init=False)
    cache: dict[str, Any] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.once_table, self.cache = self.inner.once_table, self.inner.cache

    @property
    def dialect(self) -> Dialect:
        return self.inner.dialect

    @property
    def schema(self) -> str | None:
        return self.inner.schema

    def connect(self) -> StoreSession:
        session = self.inner.connect()
        try:
            session.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        except BaseException:
            session.release()
            raise
        return session

    def close(self) -> None:
        self.inner.close()


def _open_store(args: argparse.Namespace, *, write: bool) -> Store:
    """The ``--db`` store; read-only unless ``write``. Never creates a SQLite file."""
    from resilient_pipeline.storage import PostgresStore, SQLiteStore

    db: str = args.db
    if not db.strip():
        raise _UsageError("--db is empty (an unset shell variable?)")
    if _is_postgres(db):
        store = PostgresStore(db, schema=args.schema)
        return store if write else _ReadOnlyStore(store)
    if args.schema is not None:
        raise _UsageError("--schema applies to PostgreSQL only; --db is a SQLite file")
    path = Path(db)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise _CannotRunError(
            f"no ledger here: {path} {what} (looked in {Path.cwd()}); nothing was created"
        )
    # Read-only even for writes at first: the ledger is checked before anything changes.
    return SQLiteStore(path) if write else SQLiteStore(path, read_only=True)


def _tables(tx: Transaction) -> list[str]:
    if tx.dialect == "postgres":
        rows = tx.fetchall(
            "SELECT table_name FROM information_schema.tables "  # noqa: S608 - placeholder only
            f"WHERE table_schema = coalesce({tx.placeholder}, current_schema()) ORDER BY 1",
            (tx.store.schema,),
        )
    else:
        rows = tx.fetchall("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
    return [str(r[0]) for r in rows]


def _columns(tx: Transaction, table: str) -> set[str]:
    if tx.dialect == "postgres":
        p = tx.placeholder
        rows = tx.fetchall(
            "SELECT column_name FROM information_schema.columns "  # noqa: S608 - placeholder only
            f"WHERE table_schema = coalesce({p}, current_schema()) AND table_name = {p}",
            (tx.store.schema, table),
        )
    else:
        rows = tx.fetchall("SELECT name FROM pragma_table_info(?)", (table,))
    return {str(r[0]) for r in rows}


def _ledger_columns() -> set[str]:
    from resilient_pipeline.ledger import PartitionRecord

    fields = {f.name for f in attrs.fields(PartitionRecord)} - {"partition"}
    return fields | {"source", "key", "period"}


def _check_ledger(store: Store, table: str, where: str) -> list[str]:
    """The sources in the ledger ``table``; :class:`_CannotRunError` if it is not there whole.

    Only queries: nothing is created, even on a database without a ledger.
    """
    from resilient_pipeline.storage import unit_of_work, validate_identifier

    try:
        validate_identifier(table, option="--table")
        validate_identifier(f"{table}_restatements", option="--table")
    except ConfigurationError as exc:
        raise _UsageError(str(exc)) from None
    with unit_of_work(store, name="cli.check_ledger") as tx:
        present = _tables(tx)
        if table not in present:
            shown = ", ".join(present[:12]) or "none"
            raise _CannotRunError(
                f"no ledger here: {where} has no table {table!r} (tables: {shown}); "
                "check --db, --schema and --table; nothing was created"
            )
        missing = sorted(_ledger_columns() - _columns(tx, table))
        if missing or f"{table}_restatements" not in present:
            lacking = ", ".join(missing) or f"the table {table}_restatements"
            raise _CannotRunError(
                f"the ledger {table!r} in {where} was made by an older version "
                f"(it lacks {lacking}); a read command never changes the database: "
                "run the collector (or retry/reset) once with this version to upgrade it"
            )
        rows = tx.fetchall(f"SELECT DISTINCT source FROM {tx.table(table)} ORDER BY 1")  # noqa: S608
    # Checked whole above: the ledger need not run its own CREATE ... IF NOT EXISTS.
    store.cache.setdefault("ledger_tables", set()).add(table)
    return [str(r[0]) for r in rows]


def _planned_keys(store: Store, table: str, source: str) -> list[str]:
    from resilient_pipeline.storage import unit_of_work

    with unit_of_work(store, name="cli.planned_keys") as tx:
        rows = tx.fetchall(
            f"SELECT DISTINCT key FROM {tx.table(table)} WHERE source = {tx.placeholder}",  # noqa: S608
            (source,),
        )
    return sorted(str(r[0]) for r in rows)


@contextmanager
def _opened_ledger(args: argparse.Namespace, *, write: bool) -> Iterator[PartitionLedger]:
    """The ledger of ``--db``/``--table`` for ``--source`` (checked to exist and to know it)."""
    from resilient_pipeline.ledger import PartitionLedger

    try:
        store = _open_store(args, write=write)
    except ConfigurationError as exc:  # a DSN libpq cannot parse, a bad --schema
        raise _UsageError(str(exc)) from None
    try:
        sources = _check_ledger(store, args.table, redact(args.db))
        if args.source not in sources:
            known = ", ".join(sources) or "none: the ledger is empty"
            raise _UsageError(
                f"unknown source {args.source!r}: no partition of it in the ledger "
                f"{args.table!r} (sources: {known})"
            )
        yield PartitionLedger(store, table=args.table)
    finally:
        store.close()
