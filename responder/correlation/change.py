"""What the engine says happened to an incident, before it becomes an `IncidentChange`.

The worker serializes a `Change` straight to the incidents topic (`to_json`: events are embedded
as the bytes ingest shipped, never parsed again); replay and tests turn it into the pydantic
wire model (`model()`). Both give the same JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from responder.correlation.window import WindowEvent
from responder.events.schema import SeverityName, rfc3339
from responder.incidents.model import CHANGE_SCHEMA_VERSION, ChangeKind, IncidentChange


def _iso(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


@dataclass(slots=True)
class Change:
    change: ChangeKind
    version: int
    incident_id: str
    rule: str
    kind: str
    title: str
    severity: SeverityName
    group: dict[str, Any]
    first_seen: float
    last_seen: float
    event_count: int
    events: list[WindowEvent]

    def model(self) -> IncidentChange:
        return IncidentChange.model_construct(
            change=self.change,
            version=self.version,
            incident_id=self.incident_id,
            rule=self.rule,
            kind=self.kind,
            title=self.title,
            severity=self.severity,
            status="open",
            group=self.group,
            first_seen=_iso(self.first_seen),
            last_seen=_iso(self.last_seen),
            event_count=self.event_count,
            events=[e.doc() for e in self.events],
            schema_version="1",
        )

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "change": self.change,
                "version": self.version,
                "incident_id": self.incident_id,
                "rule": self.rule,
                "kind": self.kind,
                "title": self.title,
                "severity": self.severity,
                "status": "open",
                "group": self.group,
                "first_seen": rfc3339(_iso(self.first_seen)),
                "last_seen": rfc3339(_iso(self.last_seen)),
                "event_count": self.event_count,
                "events": [e.json() for e in self.events],
                "schema_version": CHANGE_SCHEMA_VERSION,
            }
        )
