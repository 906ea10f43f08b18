"""Regulatory reporting clocks (pure): categories of reportable incidents and their deadlines.

An incident is marked reportable with a category (by its rule, `incident: {reportable: ...}`; by
a playbook step, `incident.update` with `reportable`; or by an analyst, `responder incidents
reportable`). From that moment (`reportable_since`) each of the category's clocks runs; `clocks`
says when each is due and how long is left.

The default categories and where their deadlines come from:

| category | deadline after the provider (deployer) becomes aware | source |
|---|---|---|
| `ai_act_serious_incident` | 15 days | EU AI Act (Regulation (EU) 2024/1689) Art. 73(2) |
| `ai_act_death` | 10 days | EU AI Act Art. 73(4): the death of a person |
| `ai_act_widespread_infringement` | 2 days | EU AI Act Art. 73(3): a widespread infringement |
| `ai_act_critical_infrastructure` | 2 days | EU AI Act Art. 73(3) with Art. 3(49)(b): serious and irreversible disruption of critical infrastructure |
| `gdpr_personal_data_breach` | 72 hours | GDPR (Regulation (EU) 2016/679) Art. 33(1): notify the supervisory authority |

The laws ask for the report "immediately" (AI Act) or "without undue delay" (GDPR); these are
the outer limits. The AI Act allows an initial, incomplete report followed by a complete one
(Art. 73(5)). `RESPONDER_REPORTING__CATEGORIES` adds categories or replaces a default.

An incident of kind `privacy_breach` is reportable as `gdpr_personal_data_breach` unless its rule
says otherwise (`AUTOMATIC_BY_KIND`, applied where rules load).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import StringConstraints

from responder.settings import ReportingCategory, ReportingClock

CategoryName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""How a reporting category is named (rules, playbook steps, commands)."""


def _category(title: str, name: str, days: float, source: str) -> ReportingCategory:
    clock = ReportingClock(name=name, after=timedelta(days=days), source=source)
    return ReportingCategory(title=title, clocks=[clock])


_AUTHORITY = "report to the market surveillance authority"
DEFAULT_CATEGORIES: dict[str, ReportingCategory] = {
    "ai_act_serious_incident": _category(
        "Serious incident of a high-risk AI system", _AUTHORITY, 15, "EU AI Act Art. 73(2)"
    ),
    "ai_act_death": _category(
        "Serious incident: death of a person", _AUTHORITY, 10, "EU AI Act Art. 73(4)"
    ),
    "ai_act_widespread_infringement": _category(
        "Widespread infringement", _AUTHORITY, 2, "EU AI Act Art. 73(3)"
    ),
    "ai_act_critical_infrastructure": _category(
        "Serious and irreversible disruption of critical infrastructure",
        _AUTHORITY,
        2,
        "EU AI Act Art. 73(3), Art. 3(49)(b)",
    ),
    "gdpr_personal_data_breach": _category(
        "Personal data breach",
        "notify the supervisory authority",
        3,  # 72 hours
        "GDPR Art. 33(1)",
    ),
}

AUTOMATIC_BY_KIND = {"privacy_breach": "gdpr_personal_data_breach"}
"""Incident kinds that are reportable whatever rule opens them, and their category."""


def categories(configured: Mapping[str, ReportingCategory]) -> dict[str, ReportingCategory]:
    """The defaults, with the configured categories added or replacing them."""
    return {**DEFAULT_CATEGORIES, **configured}


@dataclass(frozen=True)
class Deadline:
    name: str
    due: datetime
    source: str
    remaining: timedelta  # negative: overdue

    @property
    def overdue(self) -> bool:
        return self.remaining < timedelta(0)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "due": self.due.isoformat(),
            "source": self.source,
            "remaining_s": int(self.remaining.total_seconds()),
            "overdue": self.overdue,
        }


def clocks(category: ReportingCategory, since: datetime, now: datetime) -> list[Deadline]:
    """When each of the category's clocks is due, counted from `since`, soonest first."""
    due = [
        Deadline(c.name, since + c.after, c.source, since + c.after - now) for c in category.clocks
    ]
    return sorted(due, key=lambda d: d.due)


def clock_json(
    name: str,
    since: datetime,
    now: datetime,
    table: Mapping[str, ReportingCategory],
) -> dict[str, Any]:
    """The incident's reporting state as JSON: category, since, and each deadline (none for a
    category that is not configured, with a note saying so)."""
    data: dict[str, Any] = {"category": name, "since": since.isoformat()}
    category = table.get(name)
    if category is None:
        return {**data, "title": None, "deadlines": [], "note": "category not configured"}
    return {
        **data,
        "title": category.title,
        "deadlines": [d.to_json() for d in clocks(category, since, now)],
    }


def remaining_text(remaining: timedelta) -> str:
    """`2d 3h left` / `overdue by 5h 10m` (minutes only below a day)."""
    seconds = int(abs(remaining.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days}d"] if days else []
    parts.append(f"{hours}h")
    if not days:
        parts.append(f"{minutes}m")
    text = " ".join(parts)
    return f"overdue by {text}" if remaining < timedelta(0) else f"{text} left"
