"""Incidents as the stream carries them: `IncidentChange` is the value of `responder.incidents`.

Pure data. The correlation engine produces changes; the SQL sink, the replay command and later
the playbook runner consume them. `version` grows by one per change of an incident, so a consumer
that sees a version it already has knows the message is a redelivery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from responder.events.schema import SeverityName

ChangeKind = Literal["opened", "updated", "escalated", "resolved"]
Status = Literal["open", "acknowledged", "resolved", "false_positive"]

CHANGE_SCHEMA_VERSION = "1"


class IncidentChange(BaseModel):
    """One change of one incident; `events` holds the events it adds, full bodies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    change: ChangeKind
    version: int = Field(ge=1)
    incident_id: str
    rule: str
    kind: str
    title: str
    severity: SeverityName
    status: Status = "open"
    group: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    event_count: int = Field(ge=1)
    events: list[dict[str, Any]] = Field(default_factory=list)
    schema_version: Literal["1"] = "1"


def event_ref(body: dict[str, Any]) -> dict[str, str]:
    return {"source": body["source"], "id": body["id"]}
