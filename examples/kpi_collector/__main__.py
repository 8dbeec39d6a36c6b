"""``python -m examples.kpi_collector [demo|collect|backfill|aggregate|check|report] ...``."""

from __future__ import annotations

from .cli import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    raise SystemExit(main())
