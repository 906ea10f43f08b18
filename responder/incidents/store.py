"""Incidents in SQL: the tables, the sink's idempotent apply, and the queries the CLI/API use.

The sink applies `IncidentChange`s in batches inside one transaction: a change whose version the
row already has is a redelivery and is skipped, so at-least-once delivery never duplicates
evidence or audit records. Every applied change is appended to the audit chain with its actor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import JSON, Column, DateTime, Engine, insert
from sqlmodel import Field, Session, SQLModel, col, select

from responder.audit.store import append as audit_append
from responder.events.schema import rfc3339
from responder.incidents.model import (
    CLOSED,
    IncidentChange,
    IncidentEdit,
    IncidentStatus,
    event_ref,
    reopens,
)
from responder.storage.database import by_id_or_prefix


def _now() -> datetime:
    return datetime.now(UTC)


class IncidentBase(SQLModel):
    rule: str = Field(max_length=128, index=True)
    kind: str = Field(max_length=128, index=True)
    title: str
    severity: str = Field(max_length=16, index=True)
    status: str = Field(default=IncidentStatus.open, max_length=32, index=True)  # IncidentStatus
    group: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    first_seen: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_seen: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    event_count: int = 0
    assignee: str | None = Field(default=None, max_length=200)
    # reporting (`incidents.reporting`): the category and when its clocks started
    reportable_category: str | None = Field(default=None, max_length=64, index=True)
    reportable_since: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Incident(IncidentBase, table=True):
    __tablename__ = "incidents"

    id: str = Field(primary_key=True, max_length=64)
    event_ids: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    version: int = 0
    comments: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    created_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    acknowledged_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )  # the first time it left `open` (the SLA's acknowledge clock stops)
    resolved_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )  # when it was closed; None again once reopened (the resolve clock runs on)


class IncidentRead(IncidentBase):
    id: str
    event_ids: list[dict[str, str]]
    comments: list[dict[str, Any]]
    version: int
    created_at: datetime
    updated_at: datetime


class IncidentEvent(SQLModel, table=True):
    """An event that is evidence of an incident (full body as received)."""

    __tablename__ = "incident_events"

    incident_id: str = Field(primary_key=True, foreign_key="incidents.id", max_length=64)
    source: str = Field(primary_key=True, max_length=512)
    event_id: str = Field(primary_key=True, max_length=512)
    position: int
    type: str = Field(max_length=128)
    severity: str = Field(max_length=16)
    time: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class OnApplied(Protocol):
    """Called for every applied change, in the same transaction (the playbook run starter).

    `previous_status` is the incident's status before the change, None for a new incident.
    What it returns is the caller's business (`apply_changes` ignores it).
    """

    def __call__(
        self,
        session: Session,
        change: IncidentChange,
        incident: Incident,
        previous_status: str | None,
    ) -> object: ...


Wants = Callable[[IncidentChange, str | None, str], bool]  # (change, previous status, status)


def apply_changes(
    session: Session,
    changes: Sequence[IncidentChange],
    on_applied: OnApplied | None = None,
    wants: Wants | None = None,
) -> int:
    """Apply a batch in order within the caller's transaction; return how many were new.

    A change to an incident an analyst closed (resolved / false positive) reopens it. With
    `on_applied`, playbook runs are created atomically with the change that triggers them.
    `on_applied` may read the database: the rows so far are written before it is called, unless
    `wants(change, previous_status, status)` says it will not read them for this change (then
    the whole batch is written in a few statements at the end, which is what makes it fast).
    """
    ids = {c.incident_id for c in changes}
    rows = {r.id: r for r in session.exec(select(Incident).where(col(Incident.id).in_(ids))).all()}
    audit: list[tuple[str, str, str, dict[str, Any]]] = []
    evidence: list[dict[str, Any]] = []  # IncidentEvent rows, inserted in one statement
    applied = 0
    now = _now()
    for change in changes:
        row = rows.get(change.incident_id)
        if row is not None and row.version >= change.version:
            continue  # redelivered: already applied
        previous_status: str | None = None if row is None else row.status
        if row is None:
            # Every field given: sqlmodel inspects the signature of each default factory it
            # calls (~250 µs a row), which made new incidents the sink's main cost.
            row = rows[change.incident_id] = Incident(
                id=change.incident_id,
                **change.identity(),
                **change.progress(),
                status=IncidentStatus.open,
                assignee=None,
                reportable_category=None,
                reportable_since=None,
                event_ids=[],
                version=0,
                comments=[],
                created_at=now,
                updated_at=now,
                acknowledged_at=None,
                resolved_at=None,
            )
            session.add(row)
        known = {(r["source"], r["id"]) for r in row.event_ids}
        new_refs = []
        for body in change.events:
            ref = event_ref(body)
            if (ref["source"], ref["id"]) in known:
                continue
            known.add((ref["source"], ref["id"]))
            new_refs.append(ref)
            evidence.append(
                {
                    "incident_id": row.id,
                    "source": ref["source"],
                    "event_id": ref["id"],
                    "position": len(row.event_ids) + len(new_refs) - 1,
                    "type": body["type"],
                    "severity": body["severity"],
                    "time": datetime.fromisoformat(body["time"]),
                    "body": body,
                }
            )
        if reopens(previous_status, change.change):
            row.status, row.resolved_at = IncidentStatus.open, None
            audit.append(
                (
                    f"rule:{change.rule}",
                    "incident.reopened",
                    change.incident_id,
                    {"version": change.version, "previous_status": previous_status},
                )
            )
        row.event_ids = [*row.event_ids, *new_refs]
        for name, value in change.progress().items():
            setattr(row, name, value)
        row.version = change.version
        row.updated_at = now
        applied += 1
        if on_applied is not None:
            if wants is None or wants(change, previous_status, row.status):
                session.flush()  # it reads the incident and its evidence: write them now
                if evidence:
                    session.execute(insert(IncidentEvent), evidence)
                    evidence.clear()
            on_applied(session, change, row, previous_status)
        audit.append(
            (
                f"rule:{change.rule}",
                f"incident.{change.change}",
                change.incident_id,
                {
                    "version": change.version,
                    "kind": change.kind,
                    "title": change.title,
                    "severity": change.severity,
                    "status": row.status,
                    "event_count": change.event_count,
                    "events": new_refs,
                },
            )
        )
        if change.reportable and row.reportable_category is None:
            row.reportable_category, row.reportable_since = change.reportable, now
            audit.append(
                (
                    f"rule:{change.rule}",
                    "incident.reportable",
                    change.incident_id,
                    _reportable(change.reportable, None, now),
                )
            )
    session.flush()  # incident rows first: evidence rows refer to them
    if evidence:
        session.execute(insert(IncidentEvent), evidence)
    audit_append(session, audit)  # stamped after the chain lock, so time follows seq
    return applied


def list_incidents(
    session: Session,
    *,
    status: str | None = None,
    severity: str | None = None,
    limit: int = 100,
) -> list[Incident]:
    query = select(Incident).order_by(col(Incident.first_seen).desc()).limit(limit)
    if status:
        query = query.where(Incident.status == status)
    if severity:
        query = query.where(Incident.severity == severity)
    return list(session.exec(query).all())


def get_incident(session: Session, incident_id: str) -> Incident | None:
    """By full id or a unique prefix (as the CLI shows short ids)."""
    return by_id_or_prefix(session, Incident, incident_id)


def incident_events(session: Session, incident_id: str) -> list[IncidentEvent]:
    return list(
        session.exec(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident_id)
            .order_by(col(IncidentEvent.position))
        ).all()
    )


class UnknownIncident(LookupError):
    pass


def _reportable(category: str, previous: str | None, since: datetime) -> dict[str, Any]:
    """The audit data of marking an incident reportable (or changing its category)."""
    return {"category": category, "previous": previous, "since": rfc3339(since)}


def update_incident(
    session: Session, incident_id: str, edit: IncidentEdit, *, actor: str
) -> Incident:
    """An analyst's or a playbook's edit (status, severity, assignee, comment), audited."""
    row = get_incident(session, incident_id)
    if row is None:
        raise UnknownIncident(f"no incident {incident_id!r}")
    changed: dict[str, Any] = {}
    for field in ("status", "severity", "assignee"):
        value = getattr(edit, field)
        if value is not None and getattr(row, field) != value:
            changed[field] = {"from": getattr(row, field), "to": value}
            setattr(row, field, value)
    if edit.comment:
        comment = {"by": actor, "at": rfc3339(_now()), "text": edit.comment}
        row.comments = [*row.comments, comment]
        changed["comment"] = edit.comment
    records = [(actor, "incident.update", row.id, changed)] if changed else []
    if edit.reportable is not None and edit.reportable != row.reportable_category:
        previous = row.reportable_category
        row.reportable_category = edit.reportable
        row.reportable_since = row.reportable_since or _now()  # the clocks never restart
        since = row.reportable_since
        records.append(
            (actor, "incident.reportable", row.id, _reportable(edit.reportable, previous, since))
        )
    if records:
        row.updated_at = _now()
        if "status" in changed:
            stamp_status(row, row.updated_at)
        session.add(row)
        session.flush()
        audit_append(session, records)
    return row


def stamp_status(row: Incident, at: datetime) -> None:
    """Record when the SLA clocks stop (or the resolve clock runs again) for a new status."""
    if row.status != IncidentStatus.open and row.acknowledged_at is None:
        row.acknowledged_at = at
    row.resolved_at = (row.resolved_at or at) if row.status in CLOSED else None


class SqlIncidents:
    """`IncidentPort` over this store, for the `incident.update` action (SQL in a thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def update(self, incident_id: str, edit: IncidentEdit, *, actor: str) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            with Session(self.engine) as session:
                row = update_incident(session, incident_id, edit, actor=actor)
                result = {
                    "incident_id": row.id,
                    "status": row.status,
                    "severity": row.severity,
                    "assignee": row.assignee,
                    "reportable": row.reportable_category,
                }
                session.commit()
                return result

        return await asyncio.to_thread(work)
