"""The worker's in-memory asset graph: one snapshot, swapped whole when refreshed.

Ingest enriches events with lineage from `GraphSnapshot.index` and the sink computes blast radii
from `GraphSnapshot.graph`; both read the attribute once per batch, so a refresh (a new graph
and a new `LineageIndex`, built off the hot path) never changes a batch midway.
`SnapshotRefresher` reloads it from SQL at start and every `RESPONDER_ASSETS__REFRESH_S`
seconds (the sync job and the webhook receiver write there); a failed reload keeps the last
snapshot and is logged. When the reloaded graph differs, the process hosting the sink
recomputes the stored blast radii (`blast_store.refresh_all`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from sqlalchemy import Engine
from sqlmodel import Session

from responder.assets.blast_store import refresh_all
from responder.assets.graph import AssetGraph
from responder.assets.lineage import GraphSnapshot
from responder.assets.store import load_graph

log = structlog.get_logger(__name__)


def fingerprint(graph: AssetGraph) -> int:
    """Equal for graphs with the same assets, tiers, attributes and edges (not times)."""
    nodes = sorted((n.id, n.tier or "", repr(sorted(n.attributes.items()))) for n in graph.nodes())
    return hash((tuple(nodes), tuple(sorted(e.key for e in graph.edges()))))


def load_snapshot(engine: Engine, snapshot: GraphSnapshot, *, refresh_radii: bool = False) -> bool:
    """Reload `snapshot` from the stored graph (blocking: run it in a thread); True when the
    graph changed. With `refresh_radii`, a changed graph recomputes the stored blast radii."""
    started = time.perf_counter()
    with Session(engine) as session:
        graph = load_graph(session)
    printed = fingerprint(graph)
    changed = printed != snapshot.fingerprint
    if changed:  # an unchanged graph keeps its index, and the lineages it has cached
        snapshot.set(graph)
        snapshot.fingerprint = printed
    refreshed = 0
    if changed and refresh_radii:
        with Session(engine) as session, session.begin():
            refreshed = refresh_all(session, graph)
    log.info(
        "assets.snapshot_loaded",
        assets=len(graph),
        edges=graph.edge_count,
        changed=changed,
        radii_refreshed=refreshed,
        seconds=round(time.perf_counter() - started, 3),
    )
    return changed


class SnapshotRefresher:
    """Keeps a `GraphSnapshot` current, with a worker stage's start / run / stop."""

    def __init__(
        self,
        engine: Engine,
        snapshot: GraphSnapshot,
        interval_s: float,
        *,
        refresh_radii: bool = False,
    ) -> None:
        self.engine = engine
        self.refresh_radii = refresh_radii  # the process that hosts the sink keeps them
        self.snapshot = snapshot
        self.interval_s = interval_s
        self._stop = asyncio.Event()

    async def _load(self) -> None:
        try:
            await asyncio.to_thread(
                load_snapshot, self.engine, self.snapshot, refresh_radii=self.refresh_radii
            )
        except Exception:  # the database away: keep what we have, try again later
            log.exception("assets.snapshot_failed")

    async def start(self) -> None:
        self._stop.clear()
        await self._load()  # before ingest starts: the first batch already has lineage

    async def run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._stop.wait()
            if not self._stop.is_set():
                await self._load()

    async def stop(self) -> None:
        self._stop.set()
