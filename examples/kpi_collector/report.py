"""The collector's report: one self-contained HTML page (inline CSS and SVG, no script).

It shows, from the database (and the run's summary when there is one):

* headline cards: this month's spend, partitions complete, checks, alerts, last collection;
* a client x day heatmap per platform, coloured by the partition's state in the
  ledger, with a glyph per state and a legend (colour is never the only cue);
* per-client monthly totals per platform (``campaign_summaries``);
* the partitions that need attention, with their last error;
* check results, the alerts sent with their actions, the run's statistics.

Every number carries ``data-*`` attributes with its raw value (``data-value``
is an integer; spend in micros), so tools and tests read exactly what the page
shows. Every value from the database is HTML-escaped.

Examples:
    >>> import datetime as dt, tempfile, pathlib
    >>> from resilient_pipeline import SQLiteStore
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
    >>> now = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.timezone.utc)
    >>> render_report(SQLiteStore(":memory:"), out, now=now) == out.resolve()
    True
    >>> page = out.read_text()
    >>> "<style>" in page, "src=" in page, "href=" in page, "<script" in page
    (True, False, False, False)
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from resilient_pipeline import PartitionLedger, __version__
from resilient_pipeline.exceptions import LedgerError
from resilient_pipeline.ledger import PartitionRecord
from resilient_pipeline.storage import Store

from . import repository as repo
from .report_style import CSS, STATES, UNKNOWN_STATE, State

__all__ = ["DEFAULT_PLATFORMS", "ReportData", "collect", "render_html", "render_report"]

DEFAULT_PLATFORMS = ("meta_ads", "google_ads")
PLATFORM_NAMES = {"meta_ads": "Meta Ads", "google_ads": "Google Ads"}
MAX_DAYS = 62
"""The heatmap shows at most this many days (the most recent)."""
MAX_ATTENTION = 40
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SHOWN_METRICS = (
    ("spend_micros", "Spend"),
    ("impressions", "Impressions"),
    ("clicks", "Clicks"),
    ("conversions", "Conversions"),
)
_STAT_COLUMNS = (
    ("collected", "Collected"),
    ("unchanged", "Unchanged"),
    ("restated", "Restated"),
    ("recovered", "Recovered"),
    ("failed", "Failed"),
    ("exhausted", "Exhausted"),
    ("rows_inserted", "Rows inserted"),
    ("rows_updated", "Rows updated"),
    ("rows_quarantined", "Rows quarantined"),
    ("retries", "Retries"),
    ("breaker_openings", "Breaker openings"),
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _platform_name(platform: str) -> str:
    return PLATFORM_NAMES.get(platform, platform)


def _client_order(key: str) -> tuple[int, int, str]:
    return (0, int(key), key) if key.isascii() and key.isdigit() else (1, 0, key)


def money(micros: int) -> str:
    """Micros as currency units with two decimals (exact; half to even).

    Examples:
        >>> money(12_345_678_900), money(15_000), money(5_000)
        ('12,345.68', '0.02', '0.00')
    """
    return f"{(Decimal(micros) / 1_000_000).quantize(Decimal('0.01')):,}"


def ago(seconds: float) -> str:
    """A duration as people say it.

    Examples:
        >>> ago(20), ago(600), ago(3 * 3600 + 60), ago(50 * 3600), ago(-5)
        ('just now', '10 min ago', '3 h ago', '2 days ago', 'in the future')
    """
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def _utc(value: float | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.fromtimestamp(value, dt.timezone.utc)


def _when(value: float | dt.datetime) -> str:
    return _utc(value).astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --------------------------------------------------------------------- data
@attrs.frozen
class ReportData:
    """Everything the page shows, read once from the database (and the run's summary).

    Attributes:
        cells: The ledger record of each (platform, client, day) shown; ``None``
            where the ledger has none (``missing``).
        stored: The (platform, client, day) partitions with a ``daily_kpi_data`` row.
        stale: (platform, month) pairs changed since they were last aggregated.
        ledger_error: Why the ledger could not be read, if it could not.
        truncated: Days left out of the heatmap (older than the last ``MAX_DAYS``).
    """

    generated_at: dt.datetime
    platforms: tuple[str, ...]
    clients: tuple[str, ...]
    days: tuple[str, ...]
    cells: dict[tuple[str, str, str], PartitionRecord | None]
    stored: frozenset[tuple[str, str, str]]
    totals: tuple[repo.MonthlyTotal, ...]
    stale: tuple[tuple[str, str], ...]
    summary: Any = None
    ledger_error: str | None = None
    truncated: int = 0

    def state(self, platform: str, client: str, day: str) -> str:
        """The state a cell is drawn in (``missing`` without a record)."""
        record = self.cells.get((platform, client, day))
        return "missing" if record is None else str(record.status)

    def last_collected(self, platform: str | None = None) -> float | None:
        """When the newest succeeded partition (of ``platform``) was written (epoch seconds)."""
        times = [
            r.updated_at
            for (p, _, _), r in self.cells.items()
            if r is not None and r.status == "succeeded" and r.updated_at is not None
            if platform is None or p == platform
        ]
        return max(times, default=None)


def _days_between(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def _iso(value: object) -> str | None:
    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    return value if isinstance(value, str) and _DAY.fullmatch(value) else None


def _records(
    ledger: PartitionLedger, platform: str, start: str | None, end: str | None
) -> tuple[list[PartitionRecord], str | None]:
    try:
        return ledger.records(platform, start, end), None
    except LedgerError as exc:  # a status this version of the library does not know
        return [], f"{platform}: {exc}"


def collect(
    store: Store,
    *,
    summary: Any = None,
    now: dt.datetime | None = None,
    platforms: Sequence[str] | None = None,
) -> ReportData:
    """Read what the report shows (see :func:`render_report` for the arguments).

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> collect(SQLiteStore(":memory:")).platforms
        ('meta_ads', 'google_ads')
    """
    repo.ensure_schema(store)
    daily = repo.daily_totals(store)
    names = list(platforms or DEFAULT_PLATFORMS)
    names += [s.platform for s in getattr(summary, "platforms", ()) or ()]
    names += [d.platform for d in daily]
    shown = tuple(dict.fromkeys(names))
    start, end = _iso(getattr(summary, "start", None)), _iso(getattr(summary, "end", None))
    ledger = PartitionLedger(store)
    records: list[PartitionRecord] = []
    errors = []
    for platform in shown:
        found, error = _records(ledger, platform, start, end)
        records += found
        errors += [error] if error else []
    ledger_error = "; ".join(errors) or None
    records = [r for r in records if _DAY.fullmatch(r.period)]
    stored = frozenset((d.platform, str(d.client_id), d.date) for d in daily)
    periods = sorted({r.period for r in records} | {d for _, _, d in stored})
    if start and end:
        days = _days_between(start, end)
    elif periods:
        days = _days_between(periods[0], periods[-1])
    else:
        days = []
    truncated = max(len(days) - MAX_DAYS, 0)
    days = days[truncated:]
    in_range = set(days)
    cells: dict[tuple[str, str, str], PartitionRecord | None] = {
        (r.source, r.key, r.period): r for r in records if r.period in in_range
    }
    clients = {key for _, key, _ in cells} | {c for _, c, d in stored if d in in_range}
    ordered = tuple(sorted(clients, key=_client_order))
    for platform in shown:
        for client in ordered:
            for day in days:
                cells.setdefault((platform, client, day), None)
    return ReportData(
        generated_at=_utc(now or dt.datetime.now(dt.timezone.utc)),
        platforms=shown,
        clients=ordered,
        days=tuple(days),
        cells=cells,
        stored=stored,
        totals=tuple(repo.monthly_totals(store)),
        stale=tuple(repo.stale_months(store)),
        summary=summary,
        ledger_error=ledger_error,
        truncated=truncated,
    )


# ------------------------------------------------------------------ writing
def render_report(
    store: Store,
    path: str | os.PathLike[str],
    *,
    summary: Any = None,
    now: dt.datetime | None = None,
    platforms: Sequence[str] | None = None,
) -> Path:
    """Write the report to ``path`` (atomically: a reader never sees half a page).

    Args:
        store: The collector's database.
        path: The HTML file to write (its folder is created).
        summary: The run's ``RunSummary`` (read through its attributes), for
            checks, alerts and run statistics; without it the page says so.
        now: The time the page says it was generated (default: now, UTC).
        platforms: Platforms to show even without data (default: Meta and Google).

    Returns:
        The absolute path written.
    """
    page = render_html(collect(store, summary=summary, now=now, platforms=platforms))
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# ---------------------------------------------------------------- rendering
def render_html(data: ReportData) -> str:
    """The page, as one string.

    Examples:
        >>> from resilient_pipeline import SQLiteStore
        >>> render_html(collect(SQLiteStore(":memory:"))).startswith("<!DOCTYPE html>")
        True
    """
    generated = _when(data.generated_at)
    body = "\n".join(
        [
            '<header class="page"><h1>Ad KPI collection report</h1>'
            f'<p>generated <time datetime="{_e(data.generated_at.isoformat())}">'
            f"{_e(generated)}</time>{_range_text(data)}</p></header>",
            _cards(data),
            _heatmaps(data),
            _attention(data),
            _monthly(data),
            _checks(data.summary),
            _alerts(data.summary),
            _run_stats(data.summary),
            f'<p class="muted">resilient-pipeline {_e(__version__)} · spend in the ad accounts\''
            " currency, from integer micros · times in UTC</p>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Ad KPI report · {_e(generated)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _range_text(data: ReportData) -> str:
    if not data.days:
        return ""
    return f" · days {_e(data.days[0])} to {_e(data.days[-1])} · {len(data.clients)} client(s)"


def _card(label: str, value: str, sub: str, tone: str = "", name: str = "") -> str:
    return (
        f'<div class="card {tone}" data-card="{_e(name)}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{value}</div><div class="sub">{sub}</div></div>'
    )


def _cards(data: ReportData) -> str:
    cards = []
    if data.totals:
        month = max(t.month for t in data.totals)
        spend = sum(t.spend_micros for t in data.totals if t.month == month)
        conversions = sum(t.conversions for t in data.totals if t.month == month)
        cards.append(
            _card(
                f"Spend · {dt.date.fromisoformat(month + '-01'):%B %Y}",
                f'<span data-metric="spend_micros" data-month="{_e(month)}" '
                f'data-value="{spend}">{money(spend)}</span>',
                f"{conversions:,} conversions, all clients and platforms",
                name="spend",
            )
        )
    states = Counter(data.state(*cell) for cell in data.cells)
    total, done = sum(states.values()), states["succeeded"]
    tone = "good" if done == total else ("bad" if states["exhausted"] else "warn")
    pct = f"{100 * done / total:.1f}%" if total else "—"
    open_states = ", ".join(f"{n} {s}" for s, n in sorted(states.items()) if s != "succeeded")
    cards.append(
        _card(
            "Partitions complete",
            f'<span data-value="{done}" data-total="{total}">{done:,} / {total:,}</span>',
            f"{pct}{' · ' + _e(open_states) if open_states else ''}",
            tone if total else "",
            name="partitions",
        )
    )
    checks = getattr(data.summary, "checks", None)
    if checks is not None:
        results = list(getattr(checks, "results", ()))
        failed = [r for r in results if getattr(r, "status", "") != "passed"]
        cards.append(
            _card(
                "Checks",
                f"{len(results) - len(failed)} of {len(results)} passed",
                f"{len(failed)} failed or errored" if failed else "all passed",
                "bad" if failed else "good",
                name="checks",
            )
        )
    if data.summary is not None:
        alerts = tuple(getattr(data.summary, "alerts", ()) or ())
        cards.append(
            _card(
                "Alerts",
                str(len(alerts)),
                _e(", ".join(f"{n} {s}" for s, n in Counter(a.severity for a in alerts).items()))
                or "none sent",
                "warn" if alerts else "good",
                name="alerts",
            )
        )
    last = data.last_collected()
    when = "never"
    sub = "no partition has succeeded yet"
    if last is not None:
        when = ago((data.generated_at - _utc(last)).total_seconds())
        sub = _e(_when(last))
    cards.append(_card("Last collected", _e(when), sub, name="last-collected"))
    return f'<div class="cards">{"".join(cards)}</div>'


# Heatmap geometry (SVG user units).
_CELL, _STEP, _LEFT, _TOP = 14, 17, 62, 36
_MONTH_LABEL_COLUMNS = 4  # a month label needs about this many columns of room


def _heatmap(data: ReportData, platform: str) -> str:
    width = _LEFT + len(data.days) * _STEP + 4
    height = _TOP + len(data.clients) * _STEP + 2
    counts = Counter(data.state(platform, c, d) for c in data.clients for d in data.days)
    summary = ", ".join(f"{n} {s}" for s, n in counts.most_common())
    title_id = f"hm-{re.sub(r'[^a-z0-9]+', '-', platform.lower())}"
    parts = [
        f'<svg class="heatmap" data-platform="{_e(platform)}" role="img" '
        f'aria-labelledby="{_e(title_id)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{_e(title_id)}">{_e(_platform_name(platform))} partitions by client '
        f"and day: {_e(summary)}</title>",
        f'<text x="{_LEFT - 8}" y="{_TOP - 6}" text-anchor="end">client</text>',
    ]
    dates = [dt.date.fromisoformat(day) for day in data.days]
    starts = [i for i, date in enumerate(dates) if i == 0 or date.day == 1]
    for n, i in enumerate(starts):
        room = (starts[n + 1] if n + 1 < len(starts) else len(dates)) - i
        if room >= _MONTH_LABEL_COLUMNS:  # a month with a day or two shown stays unlabelled
            parts.append(
                f'<text class="month" x="{_LEFT + i * _STEP}" y="11">{dates[i]:%b %Y}</text>'
            )
    for i, date in enumerate(dates):
        x = _LEFT + i * _STEP + _CELL / 2
        weekend = ' class="weekend"' if date.weekday() >= 5 else ""
        parts.append(
            f'<text{weekend} x="{x}" y="{_TOP - 6}" text-anchor="middle">{date.day}</text>'
        )
    for j, client in enumerate(data.clients):
        y = _TOP + j * _STEP
        label = client if len(client) <= 8 else client[:7] + "…"
        parts.append(
            f'<text class="client" x="{_LEFT - 8}" y="{y + 11}" text-anchor="end">'
            f"<title>client {_e(client)}</title>{_e(label)}</text>"
        )
        for i, day in enumerate(data.days):
            parts.append(_cell(data, platform, client, day, _LEFT + i * _STEP, y))
    parts.append("</svg>")
    return "".join(parts)


def _cell(data: ReportData, platform: str, client: str, day: str, x: int, y: int) -> str:
    record = data.cells.get((platform, client, day))
    state = data.state(platform, client, day)
    look = STATES.get(state, UNKNOWN_STATE)
    tip = [f"client {client} · {day} · {state}"]
    rows = ""
    if record is not None:
        if record.row_count is not None:
            tip.append(f"{record.row_count} rows")
            rows = f' data-rows="{record.row_count}"'
        if record.attempts:
            tip.append(f"{record.attempts} failed attempt(s)")
        if record.last_error and state != "succeeded":
            tip.append(f"last error: {record.last_error}")
    stored = (platform, client, day) in data.stored
    tip.append("data stored" if stored else "no data stored")
    css = f"s-{state}" if state in STATES else "s-unknown"
    out = (
        f'<rect class="cell {css}" x="{x}" y="{y}" width="{_CELL}" height="{_CELL}" rx="3" '
        f'fill="{look.colour}" data-platform="{_e(platform)}" data-client="{_e(client)}" '
        f'data-day="{day}" data-state="{_e(state)}" data-stored="{str(stored).lower()}"{rows}>'
        f"<title>{_e(' · '.join(tip))}</title></rect>"
    )
    if look.glyph:
        out += (
            f'<text class="glyph" x="{x + _CELL / 2}" y="{y + 11}" text-anchor="middle" '
            f'style="fill: {look.text_colour}" aria-hidden="true">{look.glyph}</text>'
        )
    return out


def _swatch(look: State) -> str:
    glyph = (
        f'<text x="7" y="11" text-anchor="middle" font-size="11" font-weight="700" '
        f'fill="{look.text_colour}">{look.glyph}</text>'
        if look.glyph
        else ""
    )
    dash = ' stroke-dasharray="2 2" stroke="#90a4ae"' if look.label == "missing" else ""
    return (
        '<svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">'
        f'<rect x="0.5" y="0.5" width="13" height="13" rx="3" fill="{look.colour}" '
        f'stroke="rgba(0,0,0,0.15)"{dash}/>{glyph}</svg>'
    )


def _heatmaps(data: ReportData) -> str:
    head = (
        '<section id="completeness"><h2>Completeness by client and day</h2>'
        '<p class="lead">One square per partition (platform &times; client &times; day), in the '
        "state the ledger records. Hover a square for its rows and last error.</p>"
    )
    notes = ""
    if data.ledger_error:
        notes += f'<p class="note">The ledger could not be read fully: {_e(data.ledger_error)}</p>'
    if data.truncated:
        notes += f'<p class="note">Showing the last {len(data.days)} days; {data.truncated} older day(s) left out.</p>'  # noqa: E501
    if not data.days or not data.clients:
        return f'{head}{notes}<p class="muted">No partition recorded yet.</p></section>'
    blocks = []
    for platform in data.platforms:
        counts = Counter(data.state(platform, c, d) for c in data.clients for d in data.days)
        line = " · ".join(f"{n:,} {s}" for s, n in counts.most_common())
        blocks.append(
            f'<div class="heatmap-block"><h3>{_e(_platform_name(platform))} '
            f'<span class="muted">({_e(platform)})</span></h3>'
            f'<p class="counts">{_e(line)}</p>{_heatmap(data, platform)}</div>'
        )
    totals = Counter(data.state(*cell) for cell in data.cells)
    known = [*STATES, *sorted(s for s in totals if s not in STATES)]
    legend = "".join(
        f'<li data-state="{_e(s)}">{_swatch(STATES.get(s, UNKNOWN_STATE))}'
        f"<strong>{_e(s)}</strong> <span>{totals.get(s, 0):,}</span>"
        f'<span class="meaning">— {_e(STATES.get(s, UNKNOWN_STATE).meaning)}</span></li>'
        for s in known
    )
    return (
        f'{head}{notes}<div class="heatmaps">{"".join(blocks)}</div>'
        f'<ul class="legend" aria-label="legend">{legend}</ul></section>'
    )


def _attention(data: ReportData) -> str:
    open_cells = [
        (key, record)
        for key, record in sorted(data.cells.items(), key=lambda kv: (kv[0][2], kv[0][0]))
        if data.state(*key) != "succeeded"
    ]
    if not open_cells:
        return ""
    rows = []
    for (platform, client, day), record in open_cells[:MAX_ATTENTION]:
        state = data.state(platform, client, day)
        error = ""
        if record is not None and record.last_error:
            error = _e(record.last_error)  # the ledger's text already names the class
            if record.error_at is not None:
                error += f' <span class="muted">({_e(_when(record.error_at))})</span>'

        attempts = record.attempts if record is not None else 0
        rows.append(
            f'<tr data-platform="{_e(platform)}" data-client="{_e(client)}" data-day="{_e(day)}">'
            f"<td>{_e(day)}</td><td>{_e(_platform_name(platform))}</td><td>{_e(client)}</td>"
            f'<td><span class="badge {"error" if state == "exhausted" else "warning"}">'
            f'{_e(state)}</span></td><td class="num">{attempts}</td>'
            f'<td class="wrap">{error or "—"}</td></tr>'
        )
    more = len(open_cells) - MAX_ATTENTION
    more_text = f'<p class="muted">… and {more} more.</p>' if more > 0 else ""
    return (
        '<section id="attention"><h2>Partitions that need attention</h2>'
        f'<p class="lead">{len(open_cells)} partition(s) not collected. Failed ones are retried '
        "by the next run; exhausted ones need <code>python -m resilient_pipeline retry</code>."
        '</p><div class="table-wrap"><table><thead><tr><th>Day</th><th>Platform</th>'
        '<th>Client</th><th>State</th><th class="num">Attempts</th><th>Last error</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>{more_text}</section>"
    )


def _value_cell(value: int | None, attrs_: str, *, metric: str, first: bool) -> str:
    sep = " sep" if first else ""
    if value is None:
        return f'<td class="num zero{sep}" {attrs_} data-metric="{metric}">—</td>'
    shown = money(value) if metric == "spend_micros" else f"{value:,}"
    zero = " zero" if value == 0 else ""
    return (
        f'<td class="num{zero}{sep}" {attrs_} data-metric="{metric}" '
        f'data-value="{value}">{shown}</td>'
    )


def _metric(total: repo.MonthlyTotal, metric: str) -> int:
    return total.conversions if metric == "conversions" else int(getattr(total, metric))


def _month_table(data: ReportData, month: str) -> str:
    totals = {(t.platform, str(t.client_id)): t for t in data.totals if t.month == month}
    platforms = [p for p in data.platforms if any(k[0] == p for k in totals)]
    platforms += sorted({p for p, _ in totals} - set(platforms))
    clients = sorted({c for _, c in totals}, key=_client_order)
    span = len(_SHOWN_METRICS)
    group = "".join(
        f'<th class="sep" colspan="{span}" scope="colgroup">{_e(_platform_name(p))}</th>'
        for p in platforms
    )
    heads = "".join(
        f'<th class="num{" sep" if i == 0 else ""}" scope="col">{label}</th>'
        for _ in platforms
        for i, (_, label) in enumerate(_SHOWN_METRICS)
    )
    body = []
    for client in clients:
        cells = []
        for p in platforms:
            total = totals.get((p, client))
            where = f'data-client="{_e(client)}" data-platform="{_e(p)}" data-month="{_e(month)}"'
            for i, (metric, _) in enumerate(_SHOWN_METRICS):
                value = None if total is None else _metric(total, metric)
                cells.append(_value_cell(value, where, metric=metric, first=i == 0))
        body.append(f'<tr><th scope="row">{_e(client)}</th>{"".join(cells)}</tr>')
    foot = []
    for p in platforms:
        where = f'data-client="all" data-platform="{_e(p)}" data-month="{_e(month)}"'
        for i, (metric, _) in enumerate(_SHOWN_METRICS):
            value = sum(_metric(t, metric) for (q, _), t in totals.items() if q == p)
            foot.append(_value_cell(value, where, metric=metric, first=i == 0))
    label = dt.date.fromisoformat(f"{month}-01").strftime("%B %Y")
    stale = [p for p, m in data.stale if m == month]
    note = (
        f'<p class="note">Out of date for {_e(", ".join(stale))}: partitions changed since the '
        "last aggregation; run <code>python -m examples.kpi_collector aggregate</code>.</p>"
        if stale
        else ""
    )
    return (
        f'<h3 id="month-{_e(month)}">{_e(label)}</h3>{note}<div class="table-wrap">'
        f'<table class="totals" data-month="{_e(month)}"><thead><tr class="group">'
        f'<th rowspan="2" scope="col">Client</th>{group}</tr><tr>{heads}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody><tfoot><tr><th scope="row">All clients</th>'
        f"{''.join(foot)}</tr></tfoot></table></div>"
    )


def _monthly(data: ReportData) -> str:
    head = (
        '<section id="monthly-totals"><h2>Monthly totals per client</h2>'
        '<p class="lead">Sums of <code>campaign_summaries</code> per client, month and platform; '
        "conversions are calls + e-mails + reservations.</p>"
    )
    months = sorted({t.month for t in data.totals}, reverse=True)
    if not months:
        stale = ", ".join(f"{p} {m}" for p, m in data.stale)
        hint = f" Changed since the last aggregation: {_e(stale)}." if stale else ""
        return f'{head}<p class="muted">No monthly summaries yet.{hint}</p></section>'
    return head + "".join(_month_table(data, m) for m in months) + "</section>"


def _checks(summary: Any) -> str:
    head = '<section id="checks"><h2>Checks</h2>'
    report = getattr(summary, "checks", None)
    if report is None:
        return f'{head}<p class="muted">No checks ran with this report.</p></section>'
    rows = []
    for r in getattr(report, "results", ()):
        status = str(getattr(r, "status", "?"))
        mark = {"passed": "✓", "failed": "✗", "errored": "⚠"}.get(status, "?")
        count = getattr(r, "offending_count", 0)
        action = getattr(r, "action", "") if status != "passed" else ""
        rows.append(
            f'<tr data-check="{_e(r.name)}" data-status="{_e(status)}"><td>{_e(r.name)}</td>'
            f'<td><span class="badge {_e(status)}">{mark} {_e(status)}</span></td>'
            f"<td>{_e(getattr(r, 'severity', ''))}</td>"
            f'<td class="num">{count:,}</td><td class="wrap">{_e(getattr(r, "message", ""))}'
            f"{f'<span class=action>{_e(action)}</span>' if action else ''}</td></tr>"
        )
    return (
        f'{head}<div class="table-wrap"><table><thead><tr><th>Check</th><th>Result</th>'
        '<th>Severity</th><th class="num">Offending</th><th>Message and action</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _alerts(summary: Any) -> str:
    head = '<section id="alerts"><h2>Alerts sent</h2>'
    if summary is None:
        return f'{head}<p class="muted">No run summary: alerts are not known.</p></section>'
    alerts: Iterable[Any] = getattr(summary, "alerts", ()) or ()
    items = [
        f'<tr data-alert="{_e(a.key)}"><td><span class="badge {_e(a.severity)}">'
        f"{_e(a.severity)}</span></td><td><strong>{_e(a.title)}</strong>"
        f'<div class="wrap">{_e(a.message)}</div></td><td class="wrap">'
        f"{f'<span class=action>{_e(a.action)}</span>' if a.action else '—'}</td></tr>"
        for a in alerts
    ]
    if not items:
        return f'{head}<p class="muted">No alert was sent.</p></section>'
    return (
        f'{head}<div class="table-wrap"><table><thead><tr><th>Severity</th><th>Alert</th>'
        f"<th>Action</th></tr></thead><tbody>{''.join(items)}</tbody></table></div></section>"
    )


def _stat_cell(name: str, value: object) -> str:
    if isinstance(value, int):
        zero = " zero" if value == 0 else ""
        return f'<td class="num{zero}" data-stat="{name}" data-value="{value}">{value:,}</td>'
    return f'<td class="num zero" data-stat="{name}">{"—" if value is None else _e(value)}</td>'


def _run_stats(summary: Any) -> str:
    head = '<section id="run"><h2>Run statistics</h2>'
    if summary is None:
        return f'{head}<p class="muted">Rendered from the database alone (no run).</p></section>'
    started, finished = getattr(summary, "started_at", None), getattr(summary, "finished_at", None)
    lines = []
    if started is not None and finished is not None:
        seconds = (finished - started).total_seconds()
        lines.append(f"{_e(_when(started))} → {_e(_when(finished))} ({seconds:.1f} s)")
    code = getattr(summary, "exit_code", None)
    if code is not None:
        meaning = getattr(summary, "exit_meaning", "")
        tone = "passed" if code == 0 else "failed"
        lines.append(
            f'exit code <span class="badge {tone}" data-exit-code="{_e(code)}">{_e(code)}</span>'
            f" {_e(meaning)}"
        )
    heads = "".join(f'<th class="num">{label}</th>' for _, label in _STAT_COLUMNS)
    rows = []
    for stats in getattr(summary, "platforms", ()) or ():
        cells = "".join(_stat_cell(name, getattr(stats, name, None)) for name, _ in _STAT_COLUMNS)
        rows.append(
            f'<tr data-platform="{_e(stats.platform)}"><th scope="row" class="nowrap">'
            f"{_e(_platform_name(stats.platform))}</th>{cells}</tr>"
        )
    info = "".join(f"<p>{line}</p>" for line in lines)
    return (
        f'{head}{info}<div class="table-wrap"><table><thead><tr><th>Platform</th>{heads}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div></section>"
    )
