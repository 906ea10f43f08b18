"""Templates and how things read on screen. Autoescaping is on for every template and string,
so a title, resource id or comment is always text, never markup.

Severity, status and SLA state each read as a word and a shape as well as a colour, so an
analyst who does not tell red from green loses nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from responder.assets.lineage import blast_rows
from responder.service.views import ClockView

SEVERITY = {  # name: (shape, label); colours are in app.css under .sev-<name>
    "critical": ("◆", "Critical"),
    "high": ("▲", "High"),
    "medium": ("■", "Medium"),
    "low": ("●", "Low"),
    "info": ("○", "Info"),
}
STATUS = {
    "open": ("●", "Open"),
    "acknowledged": ("◐", "Acknowledged"),
    "resolved": ("✔", "Resolved"),
    "false_positive": ("✖", "False positive"),
}
CLOCK = {
    "breached": ("⚠", "Breached"),
    "at_risk": ("◔", "At risk"),
    "on_track": ("◷", "On track"),
    "met": ("✔", "Met"),
}
STEP = {  # run and step statuses: a shape beside the word (all in DejaVu Sans)
    "completed": "✔",
    "failed": "✖",
    "denied": "✖",
    "cancelled": "✖",
    "undo_failed": "✖",
    "blocked_by_guard": "⊘",
    "waiting_approval": "‖",
    "waiting": "‖",
    "running": "▶",
    "pending": "…",
    "undoing": "↺",
    "undone": "↺",
    "skipped": "↷",
    "planned": "✎",
}


def duration(seconds: float) -> str:
    """`3d 4h`, `1h 5m`, `12m`, `40s`: the two largest units, seconds only under a minute."""
    total = int(abs(seconds))
    if total < 60:
        return f"{total}s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    parts = [(days, "d"), (hours, "h"), (rest // 60, "m")]
    first = next(i for i, (n, _) in enumerate(parts) if n)
    return " ".join(f"{n}{unit}" for n, unit in parts[first : first + 2] if n)


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return ""
    now = now or datetime.now(UTC)
    seconds = (now - value).total_seconds()
    return "just now" if abs(seconds) < 5 else f"{duration(seconds)} ago"


def when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock_text(clock: ClockView) -> str:
    """What a clock says in words: `due in 12m`, `overdue by 3m`, `met with 40m to spare`."""
    left = clock.remaining_s
    if clock.stopped_at is None:
        return f"due in {duration(left)}" if left >= 0 else f"overdue by {duration(left)}"
    return f"met with {duration(left)} to spare" if left >= 0 else f"late by {duration(left)}"


def compact(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False, indent=2, sort_keys=True)


ENV = Environment(
    loader=PackageLoader("responder.api.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(
    duration=duration, ago=ago, when=when, clock_text=clock_text, compact=compact, pretty=pretty
)
ENV.globals.update(SEVERITY=SEVERITY, STATUS=STATUS, CLOCK=CLOCK, STEP=STEP, blast_rows=blast_rows)


def fragment(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)


def page(
    name: str,
    status: int = 200,
    *,
    nav: str = "",
    notice: str | None = None,
    live_url: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """A whole page: no navigation tab marked, no notice and no live updates unless given."""
    html = fragment(name, nav=nav, notice=notice, live_url=live_url, **context)
    return HTMLResponse(html, status_code=status)
