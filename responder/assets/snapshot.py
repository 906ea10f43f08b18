"""The worker's in-memory asset graph: one snapshot, swapped whole when refreshed.

Ingest enriches events with lineage from `GraphSnapshot.index` and the sink computes blast radii
from `GraphSnapshot.graph`; both read the attribute once per batch, so a refresh (a new graph
and a new `LineageIndex`, built off the hot path) never changes a batch midway.
`SnapshotRefresher` reloads it from SQL at start and every `RESPONDER_ASSETS__REFRESH_S`
seconds (the sync job and the webhook receiver write there); a failed reload keeps the last
snapshot and is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from sqlalchemy import Engine
from sqlmodel import Session

from responder.assets.lineage import GraphSnapshot
from responder.assets.store import load_graph

log = structlog.get_logger(__name__)


def load_snapshot(engine: Engine, snapshot: GraphSnapshot) -> None:
    """Reload `snapshot` from the stored graph (blocking: run it in a thread)."""
    started = time.perf_counter()
    with Session(engine) as session:
        graph = load_graph(session)
    snapshot.set(graph)
    log.info(
        "assets.snapshot_loaded",
        assets=len(graph),
        edges=graph.edge_count,
        seconds=round(time.perf_counter() - started, 3),
    )


class SnapshotRefresher:
    """Keeps a `GraphSnapshot` current, with a worker stage's start / run / stop."""

    def __init__(self, engine: Engine, snapshot: GraphSnapshot, interval_s: float) -> None:
        self.engine = engine
        self.snapshot = snapshot
        self.interval_s = interval_s
        self._stop = asyncio.Event()

    async def _load(self) -> None:
        try:
            await asyncio.to_thread(load_snapshot, self.engine, self.snapshot)
        except Exception:  # the database away: keep what we have, try again later
            log.exception("assets.snapshot_failed")

    async def start(self) -> None:
        self._stop.clear()
        await self._load()  # before ingest starts: the first batch already has lineage

    async def run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
            if not self._stop.is_set():
                await self._load()

    async def stop(self) -> None:
        self._stop.set()
