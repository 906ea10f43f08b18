"""An incident's blast radius, computed in the sink's transaction for every applied change.

`BlastRadii` is handed to the run starter (`start_sql.RunStarter`): for each applied change it
takes the stored radius's roots, adds the resources of the change's events, recomputes the
radius over the worker's current graph (`assets.lineage.GraphSnapshot`), stores it when it
changed (`assets.blast_store`) and returns it, so the runs the change starts see it as
`incident.blast_radius` and the guards can weigh it (`blast_guard`). Without any asset graph
(none synced), nothing is read or stored: the sink pays nothing for a feature not in use.
"""

from __future__ import annotations

from typing import Any, Final

from sqlmodel import Session

from responder.assets.blast_store import get_radius, save_radius
from responder.assets.graph import AssetGraph
from responder.assets.lineage import GraphSnapshot, blast_radius_view
from responder.incidents.model import IncidentChange

EMPTY: Final = blast_radius_view(AssetGraph(), ())


class BlastRadii:
    def __init__(self, snapshot: GraphSnapshot) -> None:
        self.snapshot = snapshot

    def active(self) -> bool:
        """Whether an asset graph exists (else every radius is empty and nothing is stored)."""
        return bool(len(self.snapshot.index.graph))

    @staticmethod
    def empty() -> dict[str, Any]:
        return {k: list(v) if isinstance(v, list) else v for k, v in EMPTY.items()}

    def __call__(self, session: Session, change: IncidentChange) -> dict[str, Any]:
        index = self.snapshot.index  # one snapshot for the whole computation
        if not len(index.graph):  # no asset graph at all: nothing to compute, read or store
            return self.empty()
        resources = [e["resource"] for e in change.events if isinstance(e.get("resource"), dict)]
        stored = get_radius(session, change.incident_id)
        roots = [] if stored is None else [r for r in stored.get("roots", []) if isinstance(r, str)]
        radius = blast_radius_view(index.graph, resources, roots, index.datasets)
        save_radius(session, change.incident_id, radius)
        return radius
