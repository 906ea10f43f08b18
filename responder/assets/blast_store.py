"""Incidents' blast radii in SQL: one row per incident, kept current.

The sink computes its batch's blast radii in its transaction (`playbooks.blast_sql`), each
change's from the incident's roots (stored here, or from its previous change in the batch) plus
the resources of the change's events: one read of the stored rows (`get_radii`) and one write
of those whose newest radius differs (`save_radii`) per batch. When the graph changes (the worker's
`assets.snapshot` loaded a different one), `refresh_all` recomputes every stored radius from its
roots, so a new model version trained on the dataset, a moved alias or a new endpoint shows up
on the incidents it concerns. The row is keyed by the incident id alone: this layer does not
know incidents (`incidents` is a sibling), the callers do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import JSON, Column, DateTime
from sqlalchemy import select as sa_select
from sqlmodel import Field, Session, SQLModel, col, select

from responder.assets.graph import AssetGraph
from responder.assets.lineage import blast_radius_of
from responder.storage.bulk import among, insert_rows, table_of, update_rows

REFRESH_LIMIT: Final = 10_000  # most recently changed radii recomputed per graph change


class IncidentBlastRadius(SQLModel, table=True):
    __tablename__ = "incident_blast_radius"

    incident_id: str = Field(primary_key=True, max_length=64)
    radius: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )


def get_radius(session: Session, incident_id: str) -> dict[str, Any] | None:
    row = session.get(IncidentBlastRadius, incident_id)
    return None if row is None else dict(row.radius)


def save_radius(session: Session, incident_id: str, radius: dict[str, Any]) -> bool:
    """Store `radius` unless it is what is stored already; True when written."""
    row = session.get(IncidentBlastRadius, incident_id)
    if row is not None and row.radius == radius:
        return False
    now = datetime.now(UTC)
    if row is None:
        session.add(IncidentBlastRadius(incident_id=incident_id, radius=radius, updated_at=now))
    else:
        row.radius, row.updated_at = radius, now
    return True


def get_radii(session: Session, incident_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored radii of these incidents, by incident id (one read)."""
    table = table_of(IncidentBlastRadius)
    ids = list(incident_ids)
    if not ids:
        return {}
    found = session.connection().execute(
        sa_select(table.c.incident_id, table.c.radius).where(
            among(session, table.c.incident_id, ids)
        )
    )
    return {incident_id: dict(radius) for incident_id, radius in found}


def save_radii(
    session: Session, radii: Mapping[str, dict[str, Any]], stored: Mapping[str, dict[str, Any]]
) -> int:
    """Store each incident's radius unless it is the one `stored` (as `get_radii` read it) holds;
    how many were written (two bulk statements at most)."""
    now = datetime.now(UTC)
    table = table_of(IncidentBlastRadius)
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for incident_id, radius in radii.items():
        before = stored.get(incident_id)
        if before == radius:
            continue
        row = {"incident_id": incident_id, "radius": radius, "updated_at": now}
        (new if before is None else changed).append(row)
    insert_rows(session, table, new)
    update_rows(session, table, "incident_id", changed)
    return len(new) + len(changed)


def refresh_all(session: Session, graph: AssetGraph, *, limit: int = REFRESH_LIMIT) -> int:
    """Recompute the stored radii (newest first, at most `limit`) over `graph`; how many changed."""
    rows = session.exec(
        select(IncidentBlastRadius)
        .order_by(col(IncidentBlastRadius.updated_at).desc())
        .limit(limit)
    ).all()
    changed = 0
    for row in rows:
        roots = [r for r in row.radius.get("roots", []) if isinstance(r, str)]
        fresh = blast_radius_of(graph, roots)
        if fresh != row.radius:
            row.radius, row.updated_at = fresh, datetime.now(UTC)
            changed += 1
    return changed
