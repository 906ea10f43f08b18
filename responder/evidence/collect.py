"""What a bundle holds about an incident, read from SQL (in the caller's session).

The incident row, its events (full bodies, in arrival order), its playbook runs with every step
(parameters as the journal stored them, secrets already masked; outputs masked here), and the
snapshots the audit chain records for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from responder.actions.evidence import SNAPSHOT_ACTION
from responder.audit.store import AuditRecord
from responder.incidents.store import (
    IncidentRead,
    UnknownIncident,
    get_incident,
    incident_events,
)
from responder.playbooks.runs import runs_of_incident, steps_of
from responder.security.redact import scrub

_RUN_FIELDS_LEFT_OUT = {"incident", "evidence", "events", "lease_owner", "lease_until", "wake_at"}


@dataclass(frozen=True)
class IncidentRecord:
    """An incident with everything SQL knows about it, as JSON-ready values."""

    incident: dict[str, Any]
    events: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    audit: list[dict[str, Any]] = field(default_factory=list)  # its and its runs' records

    @property
    def id(self) -> str:
        return str(self.incident["id"])


def runs_json(session: Session, incident_id: str) -> list[dict[str, Any]]:
    """The incident's runs, oldest first, each with its steps in playbook order."""
    runs = []
    for run in runs_of_incident(session, incident_id):
        data = run.model_dump(mode="json", exclude=_RUN_FIELDS_LEFT_OUT)
        steps = sorted(steps_of(session, run.id).values(), key=lambda s: s.position)
        data["steps"] = [scrub(s.model_dump(mode="json", exclude={"run_id"})) for s in steps]
        runs.append(data)
    return runs


def audit_json(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": record.entry().at.isoformat(),
        "actor": record.actor,
        "action": record.action,
        "subject": record.subject,
        "data": record.data,
        "hash": record.hash,
    }


def incident_record(
    session: Session, incident_id: str, *, with_audit: bool = False
) -> IncidentRecord:
    """By full id or unique prefix; UnknownIncident when there is no such incident.
    `with_audit`: also the audit records of the incident and of its runs (for reports)."""
    row = get_incident(session, incident_id)
    if row is None:
        raise UnknownIncident(f"no incident {incident_id!r}")
    runs = runs_json(session, row.id)
    audit: list[dict[str, Any]] = []
    if with_audit:
        subjects = [row.id, *(r["id"] for r in runs)]
        query = (
            select(AuditRecord)
            .where(col(AuditRecord.subject).in_(subjects))
            .order_by(col(AuditRecord.seq))
        )
        audit = [audit_json(r) for r in session.exec(query).all()]
    return IncidentRecord(
        incident=IncidentRead.model_validate(row).model_dump(mode="json"),
        events=[e.body for e in incident_events(session, row.id)],
        runs=runs,
        audit=audit,
    )


def snapshots(session: Session, incident_id: str) -> list[AuditRecord]:
    """The audit records of the incident's evidence snapshots, oldest first."""
    query = (
        select(AuditRecord)
        .where(AuditRecord.action == SNAPSHOT_ACTION, AuditRecord.subject == incident_id)
        .order_by(col(AuditRecord.seq))
    )
    return list(session.exec(query).all())


def snapshot_by_key(session: Session, incident_id: str, key: str) -> AuditRecord | None:
    """The snapshot a step with this idempotency key recorded already, if any."""
    return next((r for r in snapshots(session, incident_id) if r.data.get("key") == key), None)
