"""The reference daily ad-KPI collector (run it with ``python -m examples.kpi_collector``)."""
