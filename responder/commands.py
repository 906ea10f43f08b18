"""Analyst commands (`responder.commands`): approve or deny a run's step, change an incident.

The CLI, the API and Slack buttons send them (built by `responder.service`); the worker applies
them to SQL in one audited transaction each. A command that does not apply
(unknown run, already decided, an incident changed since the sender read it) is logged and kept
on the DLQ with its reason, never silently dropped.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlmodel import Session

from responder.events.schema import SeverityName
from responder.incidents.etag import incident_etag
from responder.incidents.model import IncidentEdit, IncidentStatus
from responder.incidents.reporting import CategoryName
from responder.incidents.store import Incident, UnknownIncident, get_incident, update_incident
from responder.playbooks.decisions import (
    cancel_run,
    decide,
    mark_false_positive,
    set_kill_switch,
)
from responder.playbooks.quorum import Directory
from responder.settings import KafkaSettings

Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
ETag = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


def new_command_id() -> str:
    return uuid.uuid4().hex


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(
        default_factory=new_command_id,
        pattern=r"^[0-9a-f]{32}$",
        description="unique per command: the API answers with it, the worker logs it",
    )


class Decision(_Command):
    """Approve or deny the step a run waits on (or a step stopped by a guard)."""

    type: Literal["decision"] = "decision"
    run_id: Name
    step_id: str | None = None
    approved: bool
    by: Name
    reason: Text | None = None

    @property
    def key(self) -> str:
        return self.run_id


class IncidentCommand(_Command):
    """Set status / assignee / comment; `false_positive` also undoes completed playbook steps."""

    type: Literal["incident"] = "incident"
    incident_id: Name
    status: IncidentStatus | None = None
    assignee: Name | None = None
    comment: Text | None = None
    by: Name
    expected: ETag | None = Field(
        default=None, description="the incident's ETag the sender saw; a stale one is refused"
    )

    @property
    def key(self) -> str:
        return self.incident_id

    @property
    def actor(self) -> str:
        return f"analyst:{self.by}"

    def edit(self) -> IncidentEdit:
        return IncidentEdit(status=self.status, assignee=self.assignee, comment=self.comment)


class SeverityChange(_Command):
    """Set an incident's severity (an analyst's judgement over the rule's)."""

    type: Literal["severity"] = "severity"
    incident_id: Name
    severity: SeverityName
    comment: Text | None = None
    by: Name
    expected: ETag | None = None

    @property
    def key(self) -> str:
        return self.incident_id


class IncidentComment(_Command):
    """Add a comment to an incident, nothing else."""

    type: Literal["comment"] = "comment"
    incident_id: Name
    text: Text
    by: Name
    expected: ETag | None = None

    @property
    def key(self) -> str:
        return self.incident_id


class RunCancel(_Command):
    """Stop a playbook run before its next step (a step already acting finishes first)."""

    type: Literal["run_cancel"] = "run_cancel"
    run_id: Name
    by: Name
    reason: Text | None = None

    @property
    def key(self) -> str:
        return self.run_id


class KillSwitch(_Command):
    """Turn every playbook run into a dry run (on) or back (off), for all workers at once."""

    type: Literal["kill_switch"] = "kill_switch"
    on: bool
    by: Name
    reason: Text | None = None

    @property
    def key(self) -> str:
        return "kill_switch"


class Reportable(_Command):
    """Mark an incident reportable in a category: its reporting clocks start (once)."""

    type: Literal["reportable"] = "reportable"
    incident_id: Name
    category: CategoryName
    by: Name
    comment: str | None = None

    @property
    def key(self) -> str:
        return self.incident_id


AnyCommand = (
    Decision
    | IncidentCommand
    | KillSwitch
    | SeverityChange
    | IncidentComment
    | RunCancel
    | Reportable
)
IncidentCommands = IncidentCommand | SeverityChange | IncidentComment
Command = Annotated[AnyCommand, Field(discriminator="type")]
COMMAND: TypeAdapter[AnyCommand] = TypeAdapter(Command)


class StaleCommand(ValueError):
    """The incident changed after the sender read it (its ETag differs): refused, not merged."""


def check_expected(session: Session, incident_id: str, expected: str | None) -> Incident:
    """The incident, locked for this transaction; StaleCommand if it is not the one expected."""
    row = get_incident(session, incident_id)
    if row is None:
        raise UnknownIncident(f"no incident {incident_id!r}")
    if expected is not None:
        session.refresh(row, with_for_update=True)  # PostgreSQL; SQLite holds its write lock
        current = incident_etag(row)
        if current != expected:
            raise StaleCommand(
                f"stale: incident {row.id} changed since it was read "
                f"(expected ETag {expected}, now {current})"
            )
    return row


def apply_command(
    session: Session, command: AnyCommand, directory: Directory | None = None
) -> dict[str, Any]:
    """Apply within the caller's transaction; raises ValueError/LookupError if it does not apply.

    `directory` resolves the approver groups and Slack users a decision is checked against."""
    if isinstance(command, IncidentCommands):
        row = check_expected(session, command.incident_id, command.expected)
        if isinstance(command, SeverityChange):
            changed = update_incident(
                session,
                row.id,
                IncidentEdit(severity=command.severity, comment=command.comment),
                actor=f"analyst:{command.by}",
            )
            return {"incident_id": changed.id, "severity": changed.severity}
        if isinstance(command, IncidentComment):
            update_incident(
                session, row.id, IncidentEdit(comment=command.text), actor=f"analyst:{command.by}"
            )
            return {"incident_id": row.id, "comment": True}
        return _apply_incident(session, command.model_copy(update={"incident_id": row.id}))
    if isinstance(command, RunCancel):
        cancelled = cancel_run(session, run=command.run_id, by=command.by, reason=command.reason)
        return {"run_id": cancelled, "status": "cancelled"}
    if isinstance(command, KillSwitch):
        was = set_kill_switch(session, on=command.on, by=command.by, reason=command.reason)
        return {"kill_switch": command.on, "was": was}
    if isinstance(command, Reportable):
        edit = IncidentEdit(reportable=command.category, comment=command.comment)
        row = update_incident(session, command.incident_id, edit, actor=f"analyst:{command.by}")
        return {"incident_id": row.id, "reportable": row.reportable_category}
    if isinstance(command, Decision):
        done = decide(
            session,
            run=command.run_id,
            step=command.step_id,
            approved=command.approved,
            by=command.by,
            reason=command.reason,
            directory=directory,
            command=command.id,
        )
        result = {"run_id": done.run_id, "step_id": done.step_id, "decision": done.decision}
        return {**result, "missing": done.missing} if done.missing else result
    raise TypeError(f"unknown command {type(command).__name__}")  # pragma: no cover


def _apply_incident(session: Session, command: IncidentCommand) -> dict[str, Any]:
    if command.status == IncidentStatus.false_positive:
        undo = mark_false_positive(
            session, incident_id=command.incident_id, by=command.by, comment=command.comment
        )
        if command.assignee:
            update_incident(
                session,
                command.incident_id,
                IncidentEdit(assignee=command.assignee),
                actor=command.actor,
            )
        return {
            "incident_id": command.incident_id,
            "status": IncidentStatus.false_positive,
            "undo_runs": undo,
        }
    row = update_incident(session, command.incident_id, command.edit(), actor=command.actor)
    return {"incident_id": row.id, "status": row.status}


async def send_command(kafka: KafkaSettings, command: AnyCommand) -> None:
    """Publish one command and wait for the broker's acknowledgement."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        client_id=f"{kafka.client_id}-commands",
        acks="all",
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            kafka.topics.commands,
            value=command.model_dump_json().encode(),
            key=command.key.encode(),
        )
    finally:
        await producer.stop()
