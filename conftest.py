"""Doctest hygiene for src/ and docs/: close every SQLite store an example opens.

Examples stay short (``store = SQLiteStore(":memory:")`` with no ``close()``),
but Python 3.13 reports unclosed sqlite3 connections as ResourceWarnings, which
``filterwarnings = error`` turns into failures of whichever test runs next. So
doctests close the stores they opened when they end, instead of leaving them to
the garbage collector.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _close_doctest_stores(request: pytest.FixtureRequest) -> Iterator[None]:
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    from resilient_pipeline.storage import SQLiteStore

    opened: list[SQLiteStore] = []
    original = SQLiteStore.__attrs_post_init__

    def recording(self: SQLiteStore) -> None:
        original(self)
        opened.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SQLiteStore, "__attrs_post_init__", recording)
        yield
    for store in opened:
        store.close()
