"""Databases: stores, units of work and idempotent upserts (SQLite embedded, PostgreSQL).

``SQLiteStore`` (stdlib ``sqlite3``) and ``PostgresStore`` (``psycopg`` 3,
``pip install 'resilient-pipeline[postgres]'``, imported lazily) implement
``Store``. ``unit_of_work`` commits everything or nothing;
``idempotent_upsert`` writes rows so that writing them twice changes nothing.
``quote_identifier`` is the one place identifiers are validated and quoted.

Examples:
    >>> from resilient_pipeline.storage import SQLiteStore, idempotent_upsert
    >>> store = SQLiteStore(":memory:")
    >>> store.dialect
    'sqlite'
    >>> store.close()
"""

from __future__ import annotations

from ._batch import Batch, TableInfo, UpsertResult
from ._postgres import PostgresStore
from ._protocols import Dialect, Params, Store, StoreSession
from ._sql import quote_identifier, validate_identifier
from ._sqlite import SQLiteStore
from ._transaction import AsyncTransaction, Transaction, is_concurrent_ddl
from ._uow import UnitOfWork, unit_of_work
from ._upsert import RowsUpserted, aidempotent_upsert, idempotent_upsert

__all__ = [
    "AsyncTransaction",
    "Batch",
    "Dialect",
    "Params",
    "PostgresStore",
    "RowsUpserted",
    "SQLiteStore",
    "Store",
    "StoreSession",
    "TableInfo",
    "Transaction",
    "UnitOfWork",
    "UpsertResult",
    "aidempotent_upsert",
    "idempotent_upsert",
    "is_concurrent_ddl",
    "quote_identifier",
    "unit_of_work",
    "validate_identifier",
]
