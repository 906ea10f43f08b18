"""Offline correlation of a JSONL file: the same engine as the worker, no Kafka, no database.

`replay` returns incidents in the public `replay --json` form (see README): one summary per
incident, in order of first event time, with the incident's events as `{source, id}` in arrival
order. Rejected lines are reported with their line number and reason, never fatal: a line the
validator accepts but the engine fails on is reported too (`replay failed: <exception class>`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from responder.assets.graph import AssetGraph
from responder.assets.lineage import LineageIndex
from responder.correlation.engine import DEFAULT_LATENESS, Correlator
from responder.correlation.rules import RuleSet
from responder.events.schema import Rejection, event_to_dict, parse_event, rfc3339
from responder.incidents.model import IncidentChange, event_ref

REPLAY_FIELDS = (
    "rule",
    "kind",
    "severity",
    "status",
    "title",
    "group",
    "events",
    "first_seen",
    "last_seen",
)
"""The keys of one `replay --json` object, in order (a public contract: README, "Replay")."""


@dataclass
class IncidentSummary:
    """An incident as replay sees it: what names it (set by its first change), where it stands
    (updated by every change), and its changes in order (for dry-run planning)."""

    order: int
    identity: dict[str, Any]
    progress: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    events: list[dict[str, str]] = field(default_factory=list)
    changes: list[IncidentChange] = field(default_factory=list)

    @classmethod
    def opened_by(cls, change: IncidentChange, order: int) -> IncidentSummary:
        return cls(order=order, identity=change.identity())

    def apply(self, change: IncidentChange) -> None:
        self.progress = change.progress()
        self.status = change.status
        self.events.extend(event_ref(e) for e in change.events)
        self.changes.append(change)

    @property
    def rule(self) -> str:
        return str(self.identity["rule"])

    @property
    def first_seen(self) -> Any:
        return self.progress["first_seen"]

    @property
    def last_change(self) -> IncidentChange:
        return self.changes[-1]

    def to_json(self) -> dict[str, Any]:
        known = {**self.identity, **self.progress, "status": self.status, "events": self.events}
        data = {name: known[name] for name in REPLAY_FIELDS}
        data["first_seen"] = rfc3339(data["first_seen"])
        data["last_seen"] = rfc3339(data["last_seen"])
        return data


@dataclass
class ReplayResult:
    incidents: list[IncidentSummary]
    read: int
    rejected: list[tuple[int, str]]


def replay(
    lines: Iterable[bytes | str],
    rules: RuleSet,
    *,
    allowed_lateness: timedelta = DEFAULT_LATENESS,
    max_groups: int | None = None,
    assets: LineageIndex | None = None,
) -> ReplayResult:
    """Correlate recorded events, each routed with its lineage as ingest routes it
    (`assets.lineage`): from `assets`, else from an empty graph (a resource's own id).
    `max_groups`: the live groups per rule the worker keeps (RESPONDER_CORRELATION__
    MAX_GROUPS_PER_RULE, per correlation partition there; here for the whole file)."""
    index = assets if assets is not None else LineageIndex(AssetGraph())
    correlator = Correlator(rules, allowed_lateness=allowed_lateness, max_groups=max_groups)
    incidents: dict[str, IncidentSummary] = {}
    rejected: list[tuple[int, str]] = []
    read = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        read += 1
        parsed = parse_event(line)
        if isinstance(parsed, Rejection):
            rejected.append((number, parsed.reason))
            continue
        try:
            doc = event_to_dict(parsed)
            lineage = index.of(doc["resource"])
            changes = correlator.process(doc, parsed.time.timestamp(), lineage)
        except Exception as exc:  # the engine's problem, reported like a bad line
            rejected.append((number, f"replay failed: {type(exc).__name__}: {str(exc)[:300]}"))
            continue
        for change in changes:
            summary = incidents.get(change.incident_id)
            if summary is None:
                summary = IncidentSummary.opened_by(change, order=len(incidents))
                incidents[change.incident_id] = summary
            summary.apply(change)
    ordered = sorted(incidents.values(), key=lambda s: (s.first_seen, s.order))
    return ReplayResult(incidents=ordered, read=read, rejected=rejected)
