"""Small builders for unit tests: SecurityEvent-shaped dicts, rules and a correlator driver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from responder.correlation.engine import Correlator
from responder.correlation.rules import Rule, RuleSet
from responder.incidents.model import IncidentChange

BASE = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def rfc3339(seconds: float) -> str:
    """BASE + seconds as RFC 3339 with millisecond precision and a Z suffix."""
    moment = BASE + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(
    event_id: str,
    *,
    at: float = 0,
    type: str = "test.seen",
    source: str = "unit",
    severity: str = "low",
    resource_id: str = "res-1",
    kind: str = "endpoint",
    attributes: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A SecurityEvent in its JSON form, `at` seconds after BASE."""
    doc: dict[str, Any] = {
        "id": event_id,
        "source": source,
        "type": type,
        "time": rfc3339(at),
        "severity": severity,
        "title": f"{type} {event_id}",
        "resource": {"kind": kind, "id": resource_id},
        "attributes": attributes or {},
        "labels": labels or {},
        "schema_version": "1",
    }
    doc.update(extra)
    return doc


def epoch(doc: dict[str, Any]) -> float:
    """The event time as the replay passes it to the engine."""
    return datetime.fromisoformat(doc["time"]).timestamp()


def rule(**fields: Any) -> Rule:
    """A valid rule; keyword arguments override the defaults."""
    data: dict[str, Any] = {
        "id": "r",
        "title": "Test rule",
        "match": {"type": "test.seen"},
        "group_by": ["resource.id"],
        "window": "10s",
        "incident": {"kind": "test"},
    }
    data.update(fields)
    return Rule.model_validate(data)


def count_rule(
    id: str,
    type: str,
    group_by: str,
    window: str,
    gte: int,
    kind: str = "adversarial_attack",
    **incident: str,
) -> dict[str, Any]:
    """An event_count rule's document (what a rules file holds): an incident of `kind` (more
    incident fields in `incident`) once `gte` events of `type` share `group_by` within
    `window`."""
    return {
        "id": id,
        "title": f"{gte} {type} per {group_by}",
        "match": {"type": type},
        "group_by": [group_by],
        "window": window,
        "correlation": {"type": "event_count", "condition": {"gte": gte}},
        "incident": {"kind": kind, **incident},
    }


def correlator(*rules: Rule, lateness: float = 600) -> Correlator:
    return Correlator(RuleSet(rules), allowed_lateness=timedelta(seconds=lateness))


def feed(c: Correlator, *docs: dict[str, Any]) -> list[IncidentChange]:
    """Process events in order; all resulting changes, in order."""
    out: list[IncidentChange] = []
    for doc in docs:
        out.extend(c.process(doc, epoch(doc)))
    return out


def refs(change: IncidentChange) -> list[str]:
    return [e["id"] for e in change.events]
