"""Stores: the databases units of work and ``idempotent_upsert`` write to.

* :class:`SQLiteStore` (stdlib ``sqlite3``, the embedded default).
* :class:`PostgresStore` (``psycopg`` 3; ``pip install 'resilient-pipeline[postgres]'``),
  imported lazily so this package never needs psycopg.

Example:
    >>> from resilient_pipeline.stores import SQLiteStore
    >>> SQLiteStore(":memory:").dialect
    'sqlite'
"""

from __future__ import annotations

from .postgres import PostgresStore
from .sqlite import SQLiteStore

__all__ = ["PostgresStore", "SQLiteStore"]
