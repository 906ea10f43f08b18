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

from responder.correlation.engine import DEFAULT_LATENESS, Correlator
from responder.correlation.rules import RuleSet
from responder.events.schema import Rejection, event_to_dict, parse_event, rfc3339
from responder.incidents.model import IncidentChange, event_ref


@dataclass
class IncidentSummary:
    order: int
    rule: str
    kind: str
    severity: str
    status: str
    title: str
    group: dict[str, Any]
    first_seen: Any
    last_seen: Any
    events: list[dict[str, str]] = field(default_factory=list)
    last_change: IncidentChange | None = None
    changes: list[IncidentChange] = field(default_factory=list)  # in order, for dry-run planning

    def apply(self, change: IncidentChange) -> None:
        self.severity = change.severity
        self.status = change.status
        self.first_seen = change.first_seen
        self.last_seen = change.last_seen
        self.events.extend(event_ref(e) for e in change.events)
        self.last_change = change
        self.changes.append(change)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "status": self.status,
            "title": self.title,
            "group": self.group,
            "events": self.events,
            "first_seen": rfc3339(self.first_seen),
            "last_seen": rfc3339(self.last_seen),
        }


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
) -> ReplayResult:
    correlator = Correlator(rules, allowed_lateness=allowed_lateness)
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
            changes = correlator.process(event_to_dict(parsed), parsed.time.timestamp())
        except Exception as exc:  # the engine's problem, reported like a bad line
            rejected.append((number, f"replay failed: {type(exc).__name__}: {str(exc)[:300]}"))
            continue
        for change in changes:
            summary = incidents.get(change.incident_id)
            if summary is None:
                summary = incidents[change.incident_id] = IncidentSummary(
                    order=len(incidents),
                    rule=change.rule,
                    kind=change.kind,
                    severity=change.severity,
                    status=change.status,
                    title=change.title,
                    group=change.group,
                    first_seen=change.first_seen,
                    last_seen=change.last_seen,
                )
            summary.apply(change)
    ordered = sorted(incidents.values(), key=lambda s: (s.first_seen, s.order))
    return ReplayResult(incidents=ordered, read=read, rejected=rejected)
