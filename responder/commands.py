"""Analyst commands (`responder.commands`): approve or deny a run's step, change an incident.

The CLI sends them, and the API and Slack buttons will too; the worker applies them to SQL in
one audited transaction each. A command that does not apply (unknown run, already decided) is
logged and kept on the DLQ with its reason, never silently dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlmodel import Session

from responder.incidents.model import IncidentEdit, IncidentStatus
from responder.incidents.reporting import CategoryName
from responder.incidents.store import update_incident
from responder.playbooks.decisions import decide, mark_false_positive, set_kill_switch
from responder.settings import KafkaSettings

Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Decision(_Command):
    """Approve or deny the step a run waits on (or a step stopped by a guard)."""

    type: Literal["decision"] = "decision"
    run_id: Name
    step_id: str | None = None
    approved: bool
    by: Name
    reason: str | None = None

    @property
    def key(self) -> str:
        return self.run_id


class IncidentCommand(_Command):
    """Set status / assignee / comment; `false_positive` also undoes completed playbook steps."""

    type: Literal["incident"] = "incident"
    incident_id: Name
    status: IncidentStatus | None = None
    assignee: str | None = None
    comment: str | None = None
    by: Name

    @property
    def key(self) -> str:
        return self.incident_id

    @property
    def actor(self) -> str:
        return f"analyst:{self.by}"

    def edit(self) -> IncidentEdit:
        return IncidentEdit(status=self.status, assignee=self.assignee, comment=self.comment)


class KillSwitch(_Command):
    """Turn every playbook run into a dry run (on) or back (off), for all workers at once."""

    type: Literal["kill_switch"] = "kill_switch"
    on: bool
    by: Name
    reason: str | None = None

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


AnyCommand = Decision | IncidentCommand | KillSwitch | Reportable
Command = Annotated[AnyCommand, Field(discriminator="type")]
COMMAND: TypeAdapter[AnyCommand] = TypeAdapter(Command)


def apply_command(session: Session, command: AnyCommand) -> dict[str, Any]:
    """Apply within the caller's transaction; raises ValueError/LookupError if it does not apply."""
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
        )
        return {"run_id": done.run_id, "step_id": done.step_id, "decision": done.decision}
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
