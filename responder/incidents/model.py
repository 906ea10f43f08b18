"""Incidents as the stream carries them, and the facts every incident consumer shares.

Pure data. The correlation engine produces `IncidentChange`s (the value of `responder.incidents`);
the SQL sink, the replay command and the playbook run starter consume them. `version` grows by one
per change of an incident, so a consumer that sees a version it already has knows the message is
a redelivery.

Declared once here: the incident statuses (`IncidentStatus`, `CLOSED`), the reopen rule
(`reopens`), which change fields describe the incident (`IDENTITY_FIELDS`, `PROGRESS_FIELDS`)
and what an analyst or a playbook may edit (`IncidentEdit`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from responder.events.schema import SeverityName
from responder.incidents.reporting import CategoryName

ChangeKind = Literal["opened", "updated", "escalated", "resolved"]


class IncidentStatus(StrEnum):
    """Where an incident stands in its analyst's workflow."""

    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"
    false_positive = "false_positive"


CLOSED = frozenset({IncidentStatus.resolved, IncidentStatus.false_positive})
"""Statuses an analyst (or a playbook) closed; a later change of the incident reopens it."""


def reopens(status: str | None, change: ChangeKind) -> bool:
    """Does this change reopen an incident that stands at `status` (None: a new incident)?

    A change to a closed incident (resolved / false positive) reopens it, unless the change
    itself says the incident is resolved.
    """
    return status in CLOSED and change != "resolved"


CHANGE_SCHEMA_VERSION = "1"

IDENTITY_FIELDS = ("rule", "kind", "title", "group")
"""Fields of a change that name the incident; set when it opens, never changed by later changes."""

PROGRESS_FIELDS = ("severity", "first_seen", "last_seen", "event_count")
"""Fields of a change that every later change of the incident updates."""


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
    status: IncidentStatus = IncidentStatus.open
    group: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    event_count: int = Field(ge=1)
    events: list[dict[str, Any]] = Field(default_factory=list)
    reportable: CategoryName | None = None  # the rule's reporting category (`reporting`)
    schema_version: Literal["1"] = "1"

    def identity(self) -> dict[str, Any]:
        """`IDENTITY_FIELDS` of this change, by name."""
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}

    def progress(self) -> dict[str, Any]:
        """`PROGRESS_FIELDS` of this change, by name."""
        return {name: getattr(self, name) for name in PROGRESS_FIELDS}


class IncidentEdit(BaseModel):
    """What an analyst (command) or a playbook (`incident.update`) changes; None leaves a field.

    `reportable` marks the incident reportable in that category (`incidents.reporting`); its
    clocks run from the first marking, a later edit changes the category, never the start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: IncidentStatus | None = None
    severity: SeverityName | None = None
    assignee: str | None = None
    comment: str | None = None
    reportable: CategoryName | None = None  # marks the incident reportable: its clocks start


def event_ref(body: dict[str, Any]) -> dict[str, str]:
    return {"source": body["source"], "id": body["id"]}
