"""Incidents' blast radii, computed once per batch in the sink's transaction.

The sink's batch step (`streams.sink.store_changes`) calls `BlastRadii` with the batch's applied
changes once their rows are written: each change's radius is recomputed over the worker's current
graph (`assets.lineage.GraphSnapshot`) from the incident's roots (stored, or those of its previous
change in the batch) plus the resources of the change's events; the newest radius of each
incident is stored when it changed (`assets.blast_store`: one read and one write a batch).
Radii are remembered by (roots, the resources' asset ids) until the snapshot holds another
graph: an incident's later changes usually name the same assets. The
run starter reads the radii as `incident.blast_radius` and the guards weigh them
(`blast_guard`). Without any asset graph (none synced), nothing is read or stored: the sink pays
nothing for a feature not in use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlmodel import Session

from responder.assets.blast_store import get_radii, save_radii
from responder.assets.graph import AssetGraph
from responder.assets.lineage import GraphSnapshot, blast_radius_view, resource_ids
from responder.incidents.store import Applied

EMPTY: Final = blast_radius_view(AssetGraph(), ())

Radius = dict[str, Any]


MAX_REMEMBERED = 20_000  # radii kept between batches (per graph snapshot)


class BlastRadii:
    def __init__(self, snapshot: GraphSnapshot) -> None:
        self.snapshot = snapshot
        self._index: object = None  # the snapshot's index the remembered radii were computed on
        self._seen: dict[tuple[Any, ...], Radius] = {}

    def active(self) -> bool:
        """Whether an asset graph exists (else every radius is empty and nothing is stored)."""
        return bool(len(self.snapshot.index.graph))

    @staticmethod
    def empty() -> Radius:
        return {k: list(v) if isinstance(v, list) else v for k, v in EMPTY.items()}

    def __call__(self, session: Session, applied: Sequence[Applied]) -> list[Radius]:
        """Each applied change's blast radius, in order; the incidents' newest ones stored."""
        index = self.snapshot.index  # one snapshot for the whole batch
        graph = index.graph
        if not len(graph):  # no asset graph at all: nothing to compute, read or store
            empty = self.empty()
            return [empty for _ in applied]
        stored = get_radii(session, {done.change.incident_id for done in applied})
        newest = dict(stored)
        if index is not self._index or len(self._seen) > MAX_REMEMBERED:
            self._index, self._seen = index, {}
        seen = self._seen  # the same roots and resources over the same graph: the same radius
        radii = []
        for done in applied:
            change = done.change
            resources = [
                e["resource"] for e in change.events if isinstance(e.get("resource"), dict)
            ]
            before = newest.get(change.incident_id)
            roots = (
                [] if before is None else [r for r in before.get("roots", []) if isinstance(r, str)]
            )
            key = (
                tuple(roots),
                tuple(tuple(resource_ids(graph, r, index.datasets)) for r in resources),
            )
            radius = seen.get(key)
            if radius is None:
                radius = seen[key] = blast_radius_view(graph, resources, roots, index.datasets)
            newest[change.incident_id] = radius
            radii.append(radius)
        save_radii(session, newest, stored)
        return radii
