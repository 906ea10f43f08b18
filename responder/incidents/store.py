"""Incidents in SQL: the tables, the sink's idempotent apply, and the queries the CLI/API use.

The sink applies `IncidentChange`s in batches inside one transaction: a change whose version the
row already has is a redelivery and is skipped, so at-least-once delivery never duplicates
evidence or audit records. Every applied change is appended to the audit chain with its actor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import JSON, Column, DateTime, Engine
from sqlalchemy import select as sa_select
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
from responder.settings import WorkerSettings
from responder.storage.bulk import among, insert_rows, table_of, update_rows
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


AuditEntry = tuple[str, str, str, dict[str, Any]]  # (actor, action, subject, data)

MAX_EVIDENCE: int = WorkerSettings.model_fields["max_evidence"].default
"""Events an incident keeps as evidence by default (`RESPONDER_WORKER__MAX_EVIDENCE`)."""


@dataclass(slots=True)
class Applied:
    """A change `apply_changes` applied, as the hook after the batch's writes sees it."""

    change: IncidentChange
    previous_status: str | None  # the incident's status before the change; None: it opened
    status: str  # the incident's status once the change is applied
    evidence: int  # the incident's evidence rows once the change is applied (positions below)
    added: list[dict[str, Any]] = dataclass_field(default_factory=list)  # its new evidence
    not_kept: list[dict[str, Any]] = dataclass_field(default_factory=list)
    """Its new events past the incident's evidence limit: counted, not stored (runs get them)."""
    audit: list[AuditEntry] = dataclass_field(default_factory=list)
    """The change's audit records; a hook appends the records of what it did for the change."""


class AfterWrites(Protocol):
    """Called once per batch, in its transaction, after the incident and evidence rows are
    written and before the audit records are appended (the playbook run starter, the blast
    radii: injected by the composition root, so `incidents` imports neither)."""

    def __call__(self, session: Session, applied: list[Applied]) -> object: ...


@dataclass(slots=True)
class _Incident:
    """One incident's row while a batch is applied: what the batch reads and what it writes."""

    version: int
    status: str
    event_ids: list[dict[str, str]]
    reportable_category: str | None
    values: dict[str, Any]  # columns to write: every column of a new row, else the changed ones
    new: bool = False
    known: set[tuple[str, str]] | None = None  # (source, id) of its evidence, when needed


_LOADED = ("id", "version", "status", "event_ids", "reportable_category")


def apply_changes(
    session: Session,
    changes: Sequence[IncidentChange],
    after_writes: AfterWrites | None = None,
    *,
    max_evidence: int = MAX_EVIDENCE,
) -> int:
    """Apply a batch in order within the caller's transaction; return how many were new.

    A change to an incident an analyst closed (resolved / false positive) reopens it. One read
    of the batch's incidents, then every row in a few bulk statements (`storage.bulk`: COPY on
    PostgreSQL), then `after_writes` with the applied changes in order (playbook runs are
    created atomically with the change that triggers them), then the audit records at once.

    An incident keeps its first `max_evidence` events as evidence (rows with full bodies, refs
    in `event_ids`); later ones still count (`event_count`, `last_seen`, from the change) and
    the change's audit record names those it did not keep (`not_kept`), and the runs it starts
    get them after the stored evidence (`Applied.not_kept`). The incident row is
    read and written whole by every change, so without the limit each change of an incident
    cost in proportion to the events it ever had: 4.3 ms at 1,000 events, 55.7 ms at 40,000
    on the local PostgreSQL (`bench/evidence.py`), and one group flooded with events slowed the sink for every incident.
    """
    table = table_of(Incident)
    ids = list(dict.fromkeys(c.incident_id for c in changes))
    rows: dict[str, _Incident] = {}
    session.flush()  # the caller's pending rows first: the batch reads and writes below the ORM
    if ids:
        loaded = session.connection().execute(
            sa_select(*(table.c[name] for name in _LOADED)).where(among(session, table.c.id, ids))
        )
        for id_, version, status, event_ids, category in loaded:
            rows[id_] = _Incident(version, status, event_ids, category, {})
    applied: list[Applied] = []
    evidence: list[dict[str, Any]] = []  # IncidentEvent rows
    now = _now()
    for change in changes:
        row = rows.get(change.incident_id)
        if row is not None and row.version >= change.version:
            continue  # redelivered: already applied
        previous_status: str | None = None if row is None else row.status
        if row is None:
            row = rows[change.incident_id] = _opened(change, now)
        done = Applied(change, previous_status, row.status, 0)
        room = max(0, max_evidence - len(row.event_ids))
        new_refs = _new_evidence(row, change, evidence, done, room)
        if reopens(previous_status, change.change):
            row.status = done.status = IncidentStatus.open.value
            row.values.update(status=row.status, resolved_at=None)
            done.audit.append(
                (
                    f"rule:{change.rule}",
                    "incident.reopened",
                    change.incident_id,
                    {"version": change.version, "previous_status": previous_status},
                )
            )
        row.event_ids = [*row.event_ids, *new_refs]
        row.version = change.version
        row.values.update(change.progress(), version=change.version, updated_at=now)
        if new_refs or row.new:
            row.values["event_ids"] = row.event_ids
        done.evidence = len(row.event_ids)
        record: dict[str, Any] = {
            "version": change.version,
            "kind": change.kind,
            "title": change.title,
            "severity": change.severity,
            "status": row.status,
            "event_count": change.event_count,
            "events": new_refs,
        }
        if done.not_kept:  # every event stays named in the audit chain, kept or not
            record["not_kept"] = [event_ref(body) for body in done.not_kept]
        done.audit.append(
            (f"rule:{change.rule}", f"incident.{change.change}", change.incident_id, record)
        )
        if change.reportable and row.reportable_category is None:
            row.reportable_category = change.reportable
            row.values.update(reportable_category=change.reportable, reportable_since=now)
            done.audit.append(
                (
                    f"rule:{change.rule}",
                    "incident.reportable",
                    change.incident_id,
                    _reportable(change.reportable, None, now),
                )
            )
        applied.append(done)
    _write(session, rows, evidence)
    for held in list(session.identity_map.values()):  # rows the caller's session holds: stale
        if isinstance(held, Incident) and held.id in rows:
            session.expire(held)
    if after_writes is not None and applied:
        after_writes(session, applied)
    audit_append(session, [record for done in applied for record in done.audit])
    return len(applied)


def _opened(change: IncidentChange, now: datetime) -> _Incident:
    """A new incident's row, every column given (the bulk writes take no defaults)."""
    values = {
        "id": change.incident_id,
        **change.identity(),
        **change.progress(),
        "status": IncidentStatus.open.value,
        "assignee": None,
        "reportable_category": None,
        "reportable_since": None,
        "event_ids": [],
        "version": 0,
        "comments": [],
        "created_at": now,
        "updated_at": now,
        "acknowledged_at": None,
        "resolved_at": None,
    }
    return _Incident(0, IncidentStatus.open.value, [], None, values, new=True, known=set())


def _new_evidence(
    row: _Incident,
    change: IncidentChange,
    evidence: list[dict[str, Any]],
    done: Applied,
    room: int,
) -> list[dict[str, str]]:
    """The refs of the change's events the incident does not hold yet, at most `room` of them:
    their rows go to `evidence`, their bodies to `done.added`, the bodies of the others to
    `done.not_kept`. The same event twice in a change counts once."""
    if not change.events:
        return []
    known = row.known
    if known is None:
        known = row.known = {(r["source"], r["id"]) for r in row.event_ids}
    new_refs: list[dict[str, str]] = []
    past: set[tuple[str, str]] = set()  # not kept, in this change
    for body in change.events:
        ref = event_ref(body)
        pair = (ref["source"], ref["id"])
        if pair in known or pair in past:
            continue
        if len(new_refs) >= room:
            past.add(pair)
            done.not_kept.append(body)
            continue
        known.add(pair)
        evidence.append(
            {
                "incident_id": change.incident_id,
                "source": pair[0],
                "event_id": pair[1],
                "position": len(row.event_ids) + len(new_refs),
                "type": body["type"],
                "severity": body["severity"],
                "time": datetime.fromisoformat(body["time"]),
                "body": body,
            }
        )
        done.added.append(body)
        new_refs.append(ref)
    return new_refs


def _write(session: Session, rows: dict[str, _Incident], evidence: list[dict[str, Any]]) -> None:
    """The batch's incident rows (new ones first: evidence refers to them), then its evidence."""
    table = table_of(Incident)
    insert_rows(session, table, [r.values for r in rows.values() if r.new])
    changed: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # by the columns they set
    for id_, row in rows.items():
        if row.values and not row.new:
            changed.setdefault(tuple(sorted(row.values)), []).append({"id": id_, **row.values})
    for group in changed.values():
        update_rows(session, table, "id", group, newer="version")
    insert_rows(session, table_of(IncidentEvent), evidence)


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
