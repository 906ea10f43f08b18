"""When a playbook runs: the incident as templates and triggers see it, and `on:` conditions.

Pure. The run starter builds `incident_view(change)` once per incident change, decides the change
kind (`change_kind` turns a change of a resolved incident into `reopened`) and asks
`PlaybookSet.matching(view, kind)`, which asks each playbook's `Trigger.matches` (schema.py)
whether the compiled conditions of this module hold. Trigger keys reuse the rule vocabulary of
`responder.correlation.match` (dotted paths, `|modifier`), except `severity`, which compares by
rank (info < low < medium < high < critical) so `severity|gte: high` means what it says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from responder.correlation.match import Condition
from responder.events.schema import Severity, rfc3339
from responder.incidents.model import IncidentChange, reopens

TriggerChange = Literal["opened", "updated", "escalated", "resolved", "reopened"]

VIEW_FIELDS = (
    "id",
    "rule",
    "kind",
    "title",
    "severity",
    "status",
    "group",
    "first_seen",
    "last_seen",
    "event_count",
    "version",
    "previous_status",
    "blast_radius",
)
"""Keys of `incident_view` (`blast_radius` where the worker has an asset graph); a trigger key must start with one of them."""

_RANKED_MODIFIERS = ("eq", "gt", "gte", "lt", "lte")


def incident_view(
    change: IncidentChange, *, previous_status: str | None = None, status: str | None = None
) -> dict[str, Any]:
    """The dict templates see as `incident` (JSON-ready: times are RFC 3339 strings).

    `previous_status` is the status the incident had before this change, when the caller knows
    it (the run starter reads it from the store); it is None for a new incident or in a replay.
    `status` is the incident's status after the change when the store knows better than the
    change (an analyst acknowledged it); it defaults to the change's own.
    """
    return {
        "id": change.incident_id,
        "rule": change.rule,
        "kind": change.kind,
        "title": change.title,
        "severity": change.severity,
        "status": status if status is not None else change.status,
        "group": dict(change.group),
        "first_seen": rfc3339(change.first_seen),
        "last_seen": rfc3339(change.last_seen),
        "event_count": change.event_count,
        "version": change.version,
        "previous_status": previous_status,
    }


def change_kind(change: IncidentChange, previous_status: str | None) -> TriggerChange:
    """`reopened` when the change reopens the incident (`incidents.model.reopens`)."""
    return "reopened" if reopens(previous_status, change.change) else change.change


@dataclass(frozen=True)
class TriggerCondition:
    """One `on:` entry; `by_rank` conditions compare severities by rank, not by name."""

    condition: Condition
    by_rank: bool = False

    def holds(self, incident: Mapping[str, Any]) -> bool:
        if not self.by_rank:
            return self.condition.holds(incident)
        name = incident.get("severity")
        rank = (
            Severity[name].value if isinstance(name, str) and name in Severity.__members__ else None
        )
        return rank is not None and self.condition.holds({"severity": rank})


def compile_condition(key: str, value: Any) -> TriggerCondition:
    """Raise ValueError with a user-facing message when the entry cannot work."""
    path, _, modifier = key.partition("|")
    root = path.split(".", 1)[0]
    if root not in VIEW_FIELDS:
        raise ValueError(f"unknown incident field {root!r}; use one of {', '.join(VIEW_FIELDS)}")
    if path != "severity":
        return TriggerCondition(Condition.parse(key, value))
    modifier = modifier or "eq"
    if modifier not in _RANKED_MODIFIERS:
        raise ValueError(f"severity takes {', '.join(_RANKED_MODIFIERS)}, not {modifier!r}")
    names = value if isinstance(value, list) else [value]
    unknown = [n for n in names if not isinstance(n, str) or n not in Severity.__members__]
    if unknown:
        raise ValueError(
            f"unknown severity {unknown[0]!r}; use one of {', '.join(Severity.names())}"
        )
    ranks = [Severity[n].value for n in names]
    return TriggerCondition(Condition.parse(f"severity|{modifier}", ranks), by_rank=True)
