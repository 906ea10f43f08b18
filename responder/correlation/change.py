"""What the engine says happened to an incident, before it becomes an `IncidentChange`.

The worker serializes a `Change` straight to the incidents topic (`to_json`: events are embedded
as the bytes ingest shipped, never parsed again); replay and tests turn it into the pydantic
wire model (`model()`). Both give the same JSON: both are built from the wire model's own field
list (`IncidentChange.model_fields`), so a field added there is a field this must carry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from responder.correlation.window import WindowEvent
from responder.events.schema import SeverityName
from responder.incidents.model import (
    CHANGE_SCHEMA_VERSION,
    ChangeKind,
    IncidentChange,
    IncidentStatus,
)

_WIRE_FIELDS = tuple(IncidentChange.model_fields)


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
    reportable: str | None = None

    def _wire(self, time: Callable[[float], Any], events: list[Any]) -> dict[str, Any]:
        """The wire model's fields in its order: times and events as given, a new change is
        always `open` (the store decides reopening), the rest as this change holds them."""
        given = {
            "status": IncidentStatus.open,
            "first_seen": time(self.first_seen),
            "last_seen": time(self.last_seen),
            "events": events,
            "schema_version": CHANGE_SCHEMA_VERSION,
        }
        return {n: given[n] if n in given else getattr(self, n) for n in _WIRE_FIELDS}

    def model(self) -> IncidentChange:
        return IncidentChange.model_construct(**self._wire(_iso, [e.doc() for e in self.events]))

    def to_json(self) -> bytes:
        """orjson writes the times: the same RFC 3339 text as `events.schema.rfc3339` (UTC as
        `Z`, microseconds only when there are any), without a Python call per time."""
        wire = self._wire(_iso, [e.json() for e in self.events])
        return orjson.dumps(wire, option=orjson.OPT_UTC_Z)
