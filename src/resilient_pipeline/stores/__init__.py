"""Stores: where primitives keep state outside the object.

* :class:`SQLiteStore` (stdlib ``sqlite3``, the embedded default) and
  :class:`PostgresStore` (``psycopg`` 3; ``pip install 'resilient-pipeline[postgres]'``),
  imported lazily so this package never needs psycopg: the databases units of work
  and ``idempotent_upsert`` write to.
* :mod:`resilient_pipeline.stores.memory`: circuit-breaker state in this process (the default).
* :mod:`resilient_pipeline.stores.redis`: circuit-breaker state shared across processes
  (``pip install 'resilient-pipeline[redis]'``, imported lazily).

Example:
    >>> from resilient_pipeline.stores import SQLiteStore
    >>> SQLiteStore(":memory:").dialect
    'sqlite'
"""

from __future__ import annotations

from .postgres import PostgresStore
from .sqlite import SQLiteStore

__all__ = ["PostgresStore", "SQLiteStore"]
