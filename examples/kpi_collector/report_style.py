"""The report's look: inline CSS and the partition-state palette (colour, glyph and words).

Colours are the Okabe-Ito palette (told apart with the common colour-vision
deficiencies); every state also has a glyph and a label, so colour is never the
only cue.

Examples:
    >>> STATES["failed"].glyph, STATES["succeeded"].label
    ('!', 'succeeded')
"""

from __future__ import annotations

import attrs

__all__ = ["CSS", "STATES", "UNKNOWN_STATE", "State"]


@attrs.frozen
class State:
    """How a partition state is drawn and explained.

    Examples:
        >>> State("done", "#000", "", "collected").label
        'done'
    """

    label: str
    colour: str
    glyph: str
    meaning: str
    text_colour: str = "#ffffff"


STATES = {
    "succeeded": State("succeeded", "#009e73", "", "collected and stored"),
    "running": State("running", "#0072b2", "↻", "being collected now (leased by a worker)"),
    "pending": State(
        "pending", "#cfd8dc", "·", "planned, not collected yet", text_colour="#37474f"
    ),
    "failed": State("failed", "#e69f00", "!", "failed; the next run retries it", "#3b2500"),
    "exhausted": State("exhausted", "#d55e00", "\u00d7", "out of attempts: a person must retry it"),
    "missing": State("missing", "#ffffff", "", "never planned: no record in the ledger", "#607d8b"),
}
UNKNOWN_STATE = State("unknown", "#8e6bb5", "?", "a state this report does not know")

CSS = """
:root {
  color-scheme: light;
  --ink: #1f2933; --muted: #5f6b7a; --line: #e3e8ee; --bg: #f6f8fa; --card: #ffffff;
  --accent: #0072b2; --good: #00734f; --warn: #8a5a00; --bad: #b3261e;
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
        "Noto Sans", "DejaVu Sans", sans-serif;
}
main { max-width: 1280px; margin: 0 auto; padding: 28px 28px 56px; }
header.page { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 18px;
  margin-bottom: 20px; }
header.page h1 { font-size: 24px; margin: 0; letter-spacing: -0.01em; }
header.page p { margin: 0; color: var(--muted); }
h2 { font-size: 17px; margin: 0 0 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 20px 20px; margin: 18px 0; }
section > p.lead { margin: 0 0 12px; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 12px 16px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.04em; }
.card .value { font-size: 22px; font-weight: 650; margin-top: 2px;
  font-variant-numeric: tabular-nums; }
.card .sub { color: var(--muted); font-size: 12px; }
.card.good { border-left: 5px solid var(--good); }
.card.warn { border-left: 5px solid #e69f00; }
.card.bad { border-left: 5px solid var(--bad); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 0 0 6px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
thead th { background: #f0f3f6; font-size: 12px; color: #3e4c59; font-weight: 600;
  vertical-align: bottom; }
table.totals thead th { white-space: nowrap; }
thead tr.group th { text-align: center; border-bottom: 2px solid var(--line); font-size: 13px; }
tbody tr:nth-child(even) td, tbody tr:nth-child(even) th { background: #fafbfc; }
tfoot td, tfoot th { font-weight: 650; border-top: 2px solid #cbd2d9; border-bottom: none; }
td.num, th.num { text-align: right; }
td.num { white-space: nowrap; }
td.zero { color: #9aa5b1; }
th.sep, td.sep { border-left: 2px solid var(--line); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
  font-weight: 600; white-space: nowrap; border: 1px solid transparent; }
.badge.passed, .badge.info { background: #e3f4ee; color: #005c3f; border-color: #b5e0d1; }
.badge.failed, .badge.error, .badge.critical { background: #fde8e6; color: #8c1d18;
  border-color: #f5c2bd; }
.badge.errored, .badge.warning { background: #fff3d6; color: #6b4500; border-color: #f3d999; }
.muted { color: var(--muted); }
code, .action { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono",
  monospace; font-size: 12.5px; }
.action { display: block; white-space: pre-wrap; overflow-wrap: anywhere; background: #f4f6f8;
  border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; margin-top: 4px; }
.wrap { overflow-wrap: anywhere; }
.nowrap { white-space: nowrap; }
.note { background: #fff8e6; border: 1px solid #f3d999; border-radius: 8px; padding: 8px 12px;
  margin: 8px 0 12px; }
.heatmaps { display: flex; flex-wrap: wrap; gap: 18px 24px; }
.heatmap-block h3 { margin-top: 6px; }
.heatmap-block .counts { color: var(--muted); font-size: 12.5px; margin: 0 0 6px; }
svg.heatmap { display: block; max-width: 100%; height: auto; }
svg.heatmap text { font: 10px system-ui, "DejaVu Sans", sans-serif; fill: #52606d; }
svg.heatmap text.client { font-size: 11px; fill: #1f2933; }
svg.heatmap text.month { font-weight: 600; fill: #1f2933; }
svg.heatmap text.weekend { fill: #9aa5b1; }
svg.heatmap text.glyph { font-size: 11px; font-weight: 700; pointer-events: none; }
svg.heatmap rect.cell { stroke: rgba(0, 0, 0, 0.10); stroke-width: 1; }
svg.heatmap rect.cell.s-missing { stroke: #90a4ae; stroke-dasharray: 2 2; }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 6px 20px; padding: 0;
  margin: 10px 0 0; }
ul.legend li { display: flex; align-items: center; gap: 6px; }
ul.legend svg { flex: none; }
ul.legend .meaning { color: var(--muted); }
@media print {
  body { background: #fff; }
  section, .card { break-inside: avoid; border-color: #ccc; }
}
"""
