"""Analyst commands (`responder.commands`): approve or deny a run's step, change an incident.

The CLI, the API and Slack buttons send them (built by `responder.service`); the worker applies
them to SQL in one audited transaction each. A command that does not apply
(unknown run, already decided, an incident changed since the sender read it) is logged and kept
on the DLQ with its reason, never silently dropped.

Every command is signed by the process that sends it (`security.signatures`; the signature and
the issuer travel in headers, `signed_record`); the worker checks the signature before it reads
the command, and the command's id once (`first_seen`, the replay guard in SQL, kept as long as
a signature is valid), in the transaction that applies it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from sqlalchemy import Column, DateTime, delete
from sqlmodel import Field as SqlField
from sqlmodel import Session, SQLModel, col

from responder.events.schema import SeverityName
from responder.incidents.etag import incident_etag
from responder.incidents.model import IncidentEdit, IncidentStatus
from responder.incidents.reporting import CategoryName
from responder.incidents.store import Incident, UnknownIncident, get_incident, update_incident
from responder.kafka_clients import client_options
from responder.playbooks.decisions import (
    cancel_run,
    decide,
    mark_false_positive,
    set_kill_switch,
)
from responder.playbooks.quorum import Directory
from responder.security.signatures import Refused, Signed, Signer, Verifier, private_key
from responder.settings import CommandSettings, KafkaSettings

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


# --- signatures and the replay guard ------------------------------------------------------


class Unsigned(RuntimeError):
    """This process has no signing key, so it cannot send commands."""


def command_signer(settings: CommandSettings) -> Signer | None:
    """The signer of a process that sends commands, or None when it has no key configured."""
    if settings.issuer is None or settings.signing_key is None:
        return None
    return Signer(settings.issuer, private_key(settings.signing_key.get_secret_value()))


@dataclass(frozen=True)
class CommandGate:
    """What the worker accepts: a command signed by a trusted issuer (`Verifier`), acting for
    an identity (`by`) that issuer may vouch for: one of its `identities` patterns, or, for an
    issuer without any, its own id. So a CLI key of alice's signs only alice's commands, and
    the `by` the worker records is the one the signature vouches for."""

    verifier: Verifier
    identities: Mapping[str, tuple[str, ...]]

    @property
    def max_age_ms(self) -> int:
        return self.verifier.max_age_ms

    def admit(
        self, value: bytes, headers: Sequence[tuple[str, bytes]], *, now_ms: int
    ) -> tuple[AnyCommand, Signed]:
        """The command and its proof; Refused (not authenticated) or ValidationError."""
        signed = self.verifier.verify(value, headers, now_ms=now_ms)
        command = COMMAND.validate_json(value)
        patterns = self.identities.get(signed.issuer)
        if patterns is None:
            allowed = command.by == signed.issuer
        else:
            allowed = any(fnmatchcase(command.by, p) for p in patterns)
        if not allowed:
            raise Refused(f"issuer {signed.issuer!r} may not act as {command.by[:200]!r}")
        return command, signed


def command_gate(settings: CommandSettings) -> CommandGate:
    """The worker's gate from the settings: trusted keys, identities, signature lifetime."""
    verifier = Verifier.of(
        settings.issuers, max_age_s=settings.max_age_s, max_skew_s=settings.max_skew_s
    )
    identities = {issuer: tuple(p) for issuer, p in settings.identities.items()}
    return CommandGate(verifier, identities)


def signed_record(
    command: AnyCommand, signer: Signer | None
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(value, key, headers) of a command on the commands topic, signed now by `signer`."""
    if signer is None:
        raise Unsigned(
            "commands are signed by their sender: set RESPONDER_COMMANDS__ISSUER and "
            "RESPONDER_COMMANDS__SIGNING_KEY (`responder commands keygen` makes a key)"
        )
    value = command.model_dump_json().encode()
    return value, command.key.encode(), signer.headers(value, now_ms=time.time_ns() // 1_000_000)


class Replayed(Refused):
    """A command whose id was applied before (within the time its signature is valid)."""


class SeenCommand(SQLModel, table=True):
    """Command ids applied while their signature is valid: a copy of a command sent again
    (by anyone who could read the topic) is refused. Rows are deleted once they expire."""

    __tablename__ = "command_seen"

    id: str = SqlField(primary_key=True, max_length=32)
    issuer: str = SqlField(max_length=64)
    expires_at: datetime = SqlField(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )


def first_seen(session: Session, command_id: str, signed: Signed, max_age_ms: int) -> None:
    """Record the command's id in the caller's transaction; Replayed if it is recorded."""
    now = datetime.now(UTC)
    session.execute(delete(SeenCommand).where(col(SeenCommand.expires_at) < now))
    if session.get(SeenCommand, command_id) is not None:
        raise Replayed(f"replayed: command {command_id} was applied before")
    expires = datetime.fromtimestamp((signed.signed_at_ms + max_age_ms) / 1000, UTC)
    session.add(SeenCommand(id=command_id, issuer=signed.issuer, expires_at=expires))
    session.flush()  # a concurrent copy fails here (primary key), not after the effects


async def send_command(kafka: KafkaSettings, command: AnyCommand, signer: Signer | None) -> None:
    """Publish one signed command and wait for the broker's acknowledgement."""
    value, key, headers = signed_record(command, signer)
    producer = AIOKafkaProducer(
        **client_options(kafka),
        client_id=f"{kafka.client_id}-commands",
        acks="all",
    )
    await producer.start()
    try:
        await producer.send_and_wait(kafka.topics.commands, value=value, key=key, headers=headers)
    finally:
        await producer.stop()
