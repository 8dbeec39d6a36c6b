"""Hypothesis strategies (and the shapes they fit) shared by more than one test module."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from resilient_pipeline.alerting import SEVERITIES, Severity

__all__ = ["UPSERT_COLUMNS", "UPSERT_DDL", "UPSERT_KEY", "severities", "upsert_rows"]

#: The table the upsert rows fit: a two-column key ``(k, p)``, a value and a nullable column.
UPSERT_DDL = (
    "CREATE TABLE {t} (k INTEGER NOT NULL, p TEXT NOT NULL, v INTEGER, n INTEGER"
    ", PRIMARY KEY (k, p))"
)
UPSERT_KEY = ("k", "p")
UPSERT_COLUMNS = ("k", "p", "v", "n")

#: Batches of rows for ``UPSERT_DDL`` with unique keys; small ranges so batches overlap.
upsert_rows: st.SearchStrategy[list[dict[str, Any]]] = st.lists(
    st.fixed_dictionaries(
        {
            "k": st.integers(0, 6),
            "p": st.sampled_from(["meta", "google"]),
            "v": st.integers(0, 3),
            "n": st.none() | st.integers(-2, 2),
        }
    ),
    max_size=12,
).map(lambda rows: list({(r["k"], r["p"]): r for r in rows}.values()))  # unique keys

#: Every severity an alert or a check may carry.
severities: st.SearchStrategy[Severity] = st.sampled_from(SEVERITIES)
