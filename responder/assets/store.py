"""The asset graph in SQL: one row per (source, node) and per (source, edge).

Each source owns its rows: a sync of the registry replaces everything `mlflow` said, a sync of
the declared files replaces what each `assets/<file>` said, and a webhook adds `webhook` rows
that the next full sync forgets. Functions here work inside the caller's transaction (they
never commit), so a sync that replaces several sources does it atomically.

`load_graph` reads every row back into an `AssetGraph`, checking each one again: a row is data
like any other and is dropped (with a warning) when its id, kind or edge does not hold.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import JSON, Column, DateTime, delete, func, insert
from sqlmodel import Field, Session, SQLModel, col, select

from responder.assets.graph import AssetGraph
from responder.assets.model import (
    MLFLOW,
    TIERS,
    WEBHOOK,
    AssetIdError,
    Edge,
    EdgeKind,
    GraphUpdate,
    Node,
    Tier,
    alias_id,
    edge,
    kind_of,
    model_version_id,
    node,
)
from responder.assets.release import AliasFacts
from responder.assets.release import alias_facts as facts_of

log = structlog.get_logger(__name__)

MAX_SOURCE = 300


class AssetNodeRow(SQLModel, table=True):
    __tablename__ = "asset_nodes"

    source: str = Field(primary_key=True, max_length=MAX_SOURCE)
    id: str = Field(primary_key=True, max_length=512)
    kind: str = Field(max_length=32, index=True)
    name: str = Field(max_length=256)
    tier: str | None = Field(default=None, max_length=16)
    tags: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    attributes: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class AssetEdgeRow(SQLModel, table=True):
    __tablename__ = "asset_edges"

    source: str = Field(primary_key=True, max_length=MAX_SOURCE)
    src: str = Field(primary_key=True, max_length=512, index=True)
    kind: str = Field(primary_key=True, max_length=32)
    dst: str = Field(primary_key=True, max_length=512, index=True)
    attributes: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def _check_source(source: str) -> None:
    if not source or len(source) > MAX_SOURCE:
        raise ValueError(f"a source name has 1 to {MAX_SOURCE} characters: {source[:40]!r}")


def _node_row(source: str, n: Node) -> dict[str, Any]:
    return {
        "source": source,
        "id": n.id,
        "kind": n.kind.value,
        "name": n.name,
        "tier": n.tier,
        "tags": dict(n.tags),
        "attributes": dict(n.attributes),
        "at": n.at,
    }


def _edge_row(source: str, e: Edge) -> dict[str, Any]:
    return {
        "source": source,
        "src": e.src,
        "kind": e.kind.value,
        "dst": e.dst,
        "attributes": dict(e.attributes),
        "at": e.at,
    }


def replace_source(
    session: Session, source: str, nodes: Iterable[Node], edges: Iterable[Edge]
) -> tuple[int, int]:
    """Replace everything `source` said with these claims (in the caller's transaction).
    A node or edge given twice is stored once (the last one). Returns (nodes, edges) stored."""
    _check_source(source)
    node_rows = {n.id: _node_row(source, n) for n in nodes}
    edge_rows = {e.key: _edge_row(source, e) for e in edges}
    session.execute(delete(AssetEdgeRow).where(col(AssetEdgeRow.source) == source))
    session.execute(delete(AssetNodeRow).where(col(AssetNodeRow.source) == source))
    if node_rows:
        session.execute(insert(AssetNodeRow), list(node_rows.values()))
    if edge_rows:
        session.execute(insert(AssetEdgeRow), list(edge_rows.values()))
    return len(node_rows), len(edge_rows)


def drop_sources(session: Session, prefix: str, keep: Collection[str]) -> list[str]:
    """Delete the rows of every source starting with `prefix` that is not in `keep` (declared
    files that are gone). Returns the sources dropped."""
    found = set(
        session.exec(
            select(AssetNodeRow.source).where(col(AssetNodeRow.source).startswith(prefix))
        ).all()
    ) | set(
        session.exec(
            select(AssetEdgeRow.source).where(col(AssetEdgeRow.source).startswith(prefix))
        ).all()
    )
    gone = sorted(found - set(keep))
    if gone:
        session.execute(delete(AssetEdgeRow).where(col(AssetEdgeRow.source).in_(gone)))
        session.execute(delete(AssetNodeRow).where(col(AssetNodeRow.source).in_(gone)))
    return gone


def forget(session: Session, source: str, before: datetime) -> int:
    """Delete what `source` said before `before` (webhook claims a full sync supersedes)."""
    edges = session.execute(
        delete(AssetEdgeRow).where(
            col(AssetEdgeRow.source) == source, col(AssetEdgeRow.at) < before
        )
    )
    nodes = session.execute(
        delete(AssetNodeRow).where(
            col(AssetNodeRow.source) == source, col(AssetNodeRow.at) < before
        )
    )
    return int(getattr(edges, "rowcount", 0) or 0) + int(getattr(nodes, "rowcount", 0) or 0)


def apply_update(session: Session, update: GraphUpdate) -> bool:
    """Apply a webhook's update (in the caller's transaction); False when it is stale.

    Out-of-order or replayed deliveries must not move the graph back: if the registry or an
    earlier webhook spoke about a replaced slot (`src`, `kind`) after `update.at`, nothing of
    the update is applied. Node claims merge into the webhook's earlier claim about the same
    asset (a tag set adds one tag)."""
    for src, kind in update.replaces:
        rows = session.exec(
            select(AssetEdgeRow).where(
                col(AssetEdgeRow.src) == src,
                col(AssetEdgeRow.kind) == kind.value,
                col(AssetEdgeRow.source).in_((MLFLOW, WEBHOOK)),
            )
        ).all()
        if any(_aware(r.at) > update.at for r in rows):
            log.info("assets.update_stale", src=src, kind=kind.value, at=update.at.isoformat())
            return False
    for src, kind in update.replaces:
        session.execute(
            delete(AssetEdgeRow).where(
                col(AssetEdgeRow.src) == src,
                col(AssetEdgeRow.kind) == kind.value,
                col(AssetEdgeRow.source).in_((MLFLOW, WEBHOOK)),
            )
        )
    for n in update.nodes:
        row = session.get(AssetNodeRow, (WEBHOOK, n.id))
        if row is None:
            session.add(AssetNodeRow(**_node_row(WEBHOOK, n)))
            continue
        if _aware(row.at) > update.at:
            continue
        row.name = n.name
        row.tier = n.tier or row.tier
        row.tags = {**row.tags, **n.tags}
        row.attributes = {**row.attributes, **n.attributes}
        row.at = n.at
        session.add(row)
    for e in update.edges:
        key = (WEBHOOK, e.src, e.kind.value, e.dst)
        existing = session.get(AssetEdgeRow, key)
        if existing is not None:
            session.delete(existing)
            session.flush()
        session.add(AssetEdgeRow(**_edge_row(WEBHOOK, e)))
    session.flush()
    return True


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone columns; they were stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _tier(value: str | None) -> Tier | None:
    for tier in TIERS:
        if value == tier:
            return tier
    return None


def _node(row: AssetNodeRow) -> Node | None:
    try:
        if kind_of(row.id).value != row.kind:
            return None
        return node(
            row.id,
            row.source,
            _aware(row.at),
            name=row.name,
            tier=_tier(row.tier),
            tags=row.tags if isinstance(row.tags, dict) else None,
            attributes=row.attributes if isinstance(row.attributes, dict) else None,
        )
    except AssetIdError:
        return None


def _edge(row: AssetEdgeRow) -> Edge | None:
    try:
        kind = EdgeKind(row.kind)
        attributes = row.attributes if isinstance(row.attributes, dict) else None
        return edge(row.src, kind, row.dst, row.source, _aware(row.at), attributes=attributes)
    except (ValueError, AssetIdError):  # AssetIdError: a ValueError too, named for the reader
        return None


def load_graph(session: Session) -> AssetGraph:
    """Every stored claim, checked again, merged into one snapshot."""
    nodes: list[Node] = []
    edges: list[Edge] = []
    dropped = 0
    for node_row in session.exec(select(AssetNodeRow)):
        n = _node(node_row)
        if n is None:
            dropped += 1
        else:
            nodes.append(n)
    for edge_row in session.exec(select(AssetEdgeRow)):
        e = _edge(edge_row)
        if e is None:
            dropped += 1
        else:
            edges.append(e)
    if dropped:
        log.warning("assets.rows_dropped", dropped=dropped, reason="invalid id, kind or edge")
    return AssetGraph(nodes, edges)


EXPORT_FORMAT = "responder-assets/1"


def export_claims(session: Session) -> dict[str, Any]:
    """Every stored claim as JSON (`responder assets export`): what `graph_from_claims` reads
    back offline (`responder replay --assets FILE`)."""
    nodes = [_node(r) for r in session.exec(select(AssetNodeRow))]
    edges = [_edge(r) for r in session.exec(select(AssetEdgeRow))]
    return {
        "format": EXPORT_FORMAT,
        "nodes": [{**_node_row(n.sources[0], n), "at": n.at.isoformat()} for n in nodes if n],
        "edges": [{**_edge_row(e.sources[0], e), "at": e.at.isoformat()} for e in edges if e],
    }


def graph_from_claims(data: object) -> AssetGraph:
    """The graph of an export, every claim checked as a stored row is (`ValueError` when the
    document is not an export; claims that do not hold are dropped and counted in a log)."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ValueError(f"not an asset export (format {EXPORT_FORMAT})")
    raw_nodes, raw_edges = data.get("nodes"), data.get("edges")
    if not isinstance(raw_nodes, list) or not isinstance(raw_edges, list):
        raise ValueError("an asset export holds lists `nodes` and `edges`")
    nodes = [_claim(AssetNodeRow, item, _node) for item in raw_nodes]
    edges = [_claim(AssetEdgeRow, item, _edge) for item in raw_edges]
    dropped = nodes.count(None) + edges.count(None)
    if dropped:
        log.warning("assets.claims_dropped", dropped=dropped, reason="invalid in the export")
    return AssetGraph([n for n in nodes if n], [e for e in edges if e])


def _claim(model: Any, item: object, check: Any) -> Any:
    try:
        row = model.model_validate(item)
        row.at = datetime.fromisoformat(str(item["at"]))  # type: ignore[index]
        return check(row)
    except (ValueError, TypeError, KeyError):
        return None


def alias_facts(session: Session, name: str, alias: str, version: str) -> AliasFacts:
    """`release.alias_facts` from the few rows it needs (the alias's pointers and the versions
    they and the move name), not the whole graph: a webhook receiver calls it per delivery,
    before it applies the delivery's update."""
    aid = alias_id(name, alias)
    pointers = [
        e
        for row in session.exec(
            select(AssetEdgeRow).where(
                col(AssetEdgeRow.src) == aid, col(AssetEdgeRow.kind) == EdgeKind.points_to.value
            )
        )
        if (e := _edge(row)) is not None
    ]
    wanted = {model_version_id(name, version), *(e.dst for e in pointers)}
    nodes = [
        n
        for row in session.exec(select(AssetNodeRow).where(col(AssetNodeRow.id).in_(wanted)))
        if (n := _node(row)) is not None
    ]
    return facts_of(AssetGraph(nodes, pointers), name, alias, version)


def sources(session: Session) -> dict[str, tuple[int, int]]:
    """Every source with how many nodes and edges it holds (for `responder assets sync`)."""
    counts: dict[str, list[int]] = {}
    for table, slot in ((AssetNodeRow, 0), (AssetEdgeRow, 1)):
        column = col(table.source)
        for source, count in session.execute(select(column, func.count()).group_by(column)):
            counts.setdefault(source, [0, 0])[slot] = count
    return {s: (n, e) for s, (n, e) in sorted(counts.items())}
