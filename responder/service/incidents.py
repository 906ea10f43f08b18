"""Incident operations: list / read (queries over a Session) and the analyst's changes
(acknowledge, assign, comment, severity, resolve, false positive) as published commands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, and_, or_
from sqlmodel import Session, col, select

from responder.assets.blast_store import get_radius
from responder.audit.store import AuditRecord
from responder.commands import AnyCommand, IncidentCommand, IncidentComment, SeverityChange
from responder.incidents.etag import incident_etag
from responder.incidents.sla import Targets
from responder.incidents.store import Incident, IncidentEvent, get_incident
from responder.playbooks.runs import runs_of_incident
from responder.service.errors import Invalid, NotFound, PreconditionFailed
from responder.service.pages import Cursor, decode, encode
from responder.service.sla import breached
from responder.service.views import (
    DEFAULT_TARGETS,
    AuditView,
    EventView,
    IncidentDetail,
    IncidentView,
    Page,
    RunView,
)
from responder.service.writer import Writer, build

IncidentSort = Literal[
    "first_seen", "-first_seen", "last_seen", "-last_seen", "updated_at", "-updated_at"
]
SORT_COLUMNS = {
    "first_seen": Incident.first_seen,
    "last_seen": Incident.last_seen,
    "updated_at": Incident.updated_at,
}


class IncidentFilter(BaseModel):
    """Every given criterion must hold; a list means any of its values."""

    model_config = ConfigDict(frozen=True)

    status: Sequence[str] = ()
    severity: Sequence[str] = ()
    kind: Sequence[str] = ()
    rule: Sequence[str] = ()
    assignee: str | None = None
    since: datetime | None = Field(default=None, description="last seen at or after")
    until: datetime | None = Field(default=None, description="first seen at or before")
    text: str | None = Field(default=None, description="in the title, case-insensitive")
    sla: Literal["breached"] | None = Field(default=None, description="a clock is breached")


def _where(query: IncidentFilter, targets: Targets, now: datetime) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    for name, values in (
        ("status", query.status),
        ("severity", query.severity),
        ("kind", query.kind),
        ("rule", query.rule),
    ):
        if values:
            clauses.append(col(getattr(Incident, name)).in_(list(values)))
    if query.assignee is not None:
        clauses.append(col(Incident.assignee) == query.assignee)
    if query.since is not None:
        clauses.append(col(Incident.last_seen) >= query.since)
    if query.until is not None:
        clauses.append(col(Incident.first_seen) <= query.until)
    if query.text:
        clauses.append(col(Incident.title).icontains(query.text, autoescape=True))
    if query.sla == "breached":
        clauses.append(breached(targets, now))
    return clauses


def list_incidents(
    session: Session,
    query: IncidentFilter | None = None,
    *,
    sort: IncidentSort = "-first_seen",
    limit: int = 50,
    cursor: str | None = None,
    targets: Targets | None = None,
) -> Page[IncidentView]:
    """One page of incidents matching `query`, in `sort` order (ties broken by id), with their
    SLA clocks under `targets` (the defaults when not given)."""
    targets = targets or DEFAULT_TARGETS
    now = datetime.now(UTC)
    name = sort.lstrip("-")
    descending = sort.startswith("-")
    column = col(SORT_COLUMNS[name])
    ident = col(Incident.id)
    stmt = select(Incident).where(*_where(query or IncidentFilter(), targets, now))
    if cursor is not None:
        after = decode(cursor, sort)
        if not isinstance(after.value, datetime):
            raise Invalid("invalid cursor")
        if descending:
            stmt = stmt.where(
                or_(column < after.value, and_(column == after.value, ident < after.id))
            )
        else:
            stmt = stmt.where(
                or_(column > after.value, and_(column == after.value, ident > after.id))
            )
    order = (column.desc(), ident.desc()) if descending else (column.asc(), ident.asc())
    rows = list(session.exec(stmt.order_by(*order).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = encode(Cursor(sort=sort, value=getattr(last, name), id=last.id))
    items = [IncidentView.of(r, targets=targets, now=now) for r in rows]
    return Page[IncidentView](items=items, next_cursor=next_cursor)


def find_incident(session: Session, incident_id: str) -> Incident:
    row = get_incident(session, incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id!r}")
    return row


def incident_detail(
    session: Session,
    incident_id: str,
    *,
    events_limit: int = 200,
    timeline_limit: int = 500,
    targets: Targets | None = None,
) -> IncidentDetail:
    """The incident with its evidence (oldest first), its newest audit records and its runs."""
    row = find_incident(session, incident_id)
    events = session.exec(
        select(IncidentEvent)
        .where(IncidentEvent.incident_id == row.id)
        .order_by(col(IncidentEvent.position))
        .limit(events_limit)
    ).all()
    newest = session.exec(
        select(AuditRecord)
        .where(AuditRecord.subject == row.id)
        .order_by(col(AuditRecord.seq).desc())
        .limit(timeline_limit)
    ).all()
    view = IncidentView.of(row, targets=targets)
    return IncidentDetail(
        **view.model_dump(),
        events=[EventView.of(e) for e in events],
        timeline=[AuditView.of(a) for a in reversed(newest)],
        runs=[RunView.of(r) for r in runs_of_incident(session, row.id)],
        blast_radius=get_radius(session, row.id),
    )


def _target(session: Session, incident_id: str, expected: str | None) -> str:
    """The incident's full id, if it exists and (given `expected`) is still as the caller saw it."""
    row = find_incident(session, incident_id)
    if expected is not None:
        current = incident_etag(row)
        if current != expected:
            raise PreconditionFailed(
                f"incident {row.id} changed since it was read (ETag now {current})", current
            )
    return row.id


async def _send(
    w: Writer,
    incident_id: str,
    expected: str | None,
    kind: type[IncidentCommand | IncidentComment | SeverityChange],
    **fields: object,
) -> AnyCommand:
    """Publish a `kind` command for the incident's full id, if it is still as the caller saw it."""
    full = await w.read(_target, incident_id, expected)
    return await w.send(build(kind, incident_id=full, expected=expected, **fields))


StatusName = Literal["acknowledged", "resolved", "false_positive", "open"]


async def set_status(
    w: Writer,
    by: str,
    incident_id: str,
    status: StatusName,
    *,
    comment: str | None = None,
    expected: str | None = None,
) -> AnyCommand:
    """Acknowledge, resolve, reopen or mark a false positive (which undoes playbook steps)."""
    return await _send(
        w, incident_id, expected, IncidentCommand, status=status, comment=comment, by=by
    )


acknowledge = partial(set_status, status="acknowledged")
resolve = partial(set_status, status="resolved")
mark_false_positive = partial(set_status, status="false_positive")


async def assign(
    w: Writer, by: str, incident_id: str, assignee: str, *, expected: str | None = None
) -> AnyCommand:
    return await _send(w, incident_id, expected, IncidentCommand, assignee=assignee, by=by)


async def comment(
    w: Writer, by: str, incident_id: str, text: str, *, expected: str | None = None
) -> AnyCommand:
    return await _send(w, incident_id, expected, IncidentComment, text=text, by=by)


async def change_severity(
    w: Writer,
    by: str,
    incident_id: str,
    severity: str,
    *,
    comment: str | None = None,
    expected: str | None = None,
) -> AnyCommand:
    return await _send(
        w, incident_id, expected, SeverityChange, severity=severity, comment=comment, by=by
    )
