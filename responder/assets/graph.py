"""The asset graph: an immutable snapshot with lineage and blast-radius queries (pure).

Edges point from the asset that depends to the asset it depends on (a version is `trained_on`
a dataset, an alias `points_to` a version, an endpoint `serves` an alias). So:

- **downstream** of an asset (walking edges backwards) is what it affects: the versions trained
  on a dataset, the aliases pointing to those versions, the endpoints serving those aliases;
- **upstream** of an asset (walking edges forwards) is what it is made of: the alias, version,
  datasets and model behind an endpoint;
- **context** is what a responder acts on next to an affected asset, one hop and no further: a
  version's model, an endpoint's keys and image;
- **owners**: the teams that own anything reached.

`lineage` is all four around one asset; `blast_radius` is downstream, context and owners of a
set of assets (an incident's resources), grouped by kind. Both are breadth-first, stop at a depth
and a node budget (a declared graph can be huge; `truncated` says when they stopped), and never
visit an asset twice, so cycles cost nothing. Lookups go through adjacency dicts built once per
snapshot; the snapshot is read-only and safe to share between tasks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from responder.assets.model import (
    AssetIdError,
    Edge,
    EdgeKind,
    Node,
    NodeKind,
    display_name,
    kind_of,
    merge_edges,
    merge_nodes,
    source_rank,
)

MAX_DEPTH: Final = 8
MAX_NODES: Final = 500

# Dependency edges: walked forwards for upstream, backwards for downstream.
DEPENDS: Final = frozenset(
    {
        EdgeKind.trained_on,
        EdgeKind.version_of,
        EdgeKind.points_to,
        EdgeKind.serves,
        EdgeKind.uses,
        EdgeKind.runs,
    }
)
# From an affected asset, one hop forwards: what a responder acts on beside it.
CONTEXT: Final = frozenset({EdgeKind.version_of, EdgeKind.uses, EdgeKind.runs})

Role = Literal["root", "downstream", "upstream", "context", "owner"]
Direction = Literal["up", "down"]  # up: the parent depends on this; down: this depends on it

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Reached:
    """An asset a query reached: how (role), how far, and from which asset over which edge."""

    id: str
    role: Role
    depth: int
    via: str | None = None
    edge: EdgeKind | None = None
    direction: Direction | None = None


@dataclass(frozen=True)
class Reach:
    """The result of `lineage` or `blast_radius`: reached assets in the order found."""

    roots: tuple[str, ...]
    reached: dict[str, Reached]
    truncated: bool
    unknown: tuple[str, ...] = ()

    def ids(self, *roles: Role) -> list[str]:
        return [r.id for r in self.reached.values() if not roles or r.role in roles]

    def by_kind(self, *roles: Role) -> dict[NodeKind, list[str]]:
        """Reached ids grouped by kind (in the order found), optionally only some roles."""
        grouped: dict[NodeKind, list[str]] = {}
        for r in self.reached.values():
            if not roles or r.role in roles:
                grouped.setdefault(kind_of(r.id), []).append(r.id)
        return grouped

    def to_json(self) -> dict[str, object]:
        return {
            "roots": list(self.roots),
            "truncated": self.truncated,
            "unknown": list(self.unknown),
            "by_kind": {k.value: v for k, v in self.by_kind().items()},
            "reached": [
                {
                    "id": r.id,
                    "role": r.role,
                    "depth": r.depth,
                    "via": r.via,
                    "edge": None if r.edge is None else r.edge.value,
                    "direction": r.direction,
                }
                for r in self.reached.values()
            ],
        }


class AssetGraph:
    """A snapshot of nodes and edges, merged across sources, indexed for traversal.

    Claims about one id from several sources are merged (`model.merge_nodes`: declared files
    win over webhooks over a sync). An edge to an asset no source described gets a placeholder
    node (attributes empty, no sources), so a declared endpoint serving an alias the registry
    does not know yet still shows in lineage.
    """

    def __init__(self, nodes: Iterable[Node] = (), edges: Iterable[Edge] = ()) -> None:
        ranked = sorted(nodes, key=lambda n: (source_rank(n.source), n.at))
        merged: dict[str, Node] = {}
        for n in ranked:
            known = merged.get(n.id)
            merged[n.id] = n if known is None else merge_nodes(known, n)
        links: dict[tuple[str, EdgeKind, str], Edge] = {}
        valid: dict[str, bool] = {}
        dropped = 0  # edges whose ends are not asset ids (checked where edges are made)
        for e in sorted(edges, key=lambda e: (source_rank(e.source), e.at)):
            if not (_is_id(e.src, valid) and _is_id(e.dst, valid)):
                dropped += 1
                continue
            seen = links.get(e.key)
            links[e.key] = e if seen is None else merge_edges(seen, e)
        self._nodes = merged
        # ends no source described: placeholders, made when asked for (cheap to build)
        self._referred = dict.fromkeys(i for i, ok in valid.items() if ok and i not in merged)
        self._edges = links
        self.dropped = dropped
        fwd: dict[str, list[tuple[EdgeKind, str]]] = {}
        bwd: dict[str, list[tuple[EdgeKind, str]]] = {}
        ctx: dict[str, list[tuple[EdgeKind, str]]] = {}
        own: dict[str, list[str]] = {}
        for src, kind, dst in links:
            if kind is EdgeKind.owned_by:
                own.setdefault(src, []).append(dst)
                continue
            fwd.setdefault(src, []).append((kind, dst))
            bwd.setdefault(dst, []).append((kind, src))
            if kind in CONTEXT:
                ctx.setdefault(src, []).append((kind, dst))
        self._fwd = {k: tuple(v) for k, v in fwd.items()}
        self._bwd = {k: tuple(v) for k, v in bwd.items()}
        self._ctx = {k: tuple(v) for k, v in ctx.items()}
        self._own = {k: tuple(v) for k, v in own.items()}

    def __len__(self) -> int:
        return len(self._nodes) + len(self._referred)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes or node_id in self._referred

    @property
    def edge_count(self) -> int:
        return len(self._edges)

    def node(self, node_id: str) -> Node | None:
        found = self._nodes.get(node_id)
        if found is None and node_id in self._referred:
            return _placeholder(node_id)
        return found

    def nodes(self) -> Iterator[Node]:
        yield from self._nodes.values()
        for node_id in self._referred:
            yield _placeholder(node_id)

    def edges(self) -> Iterator[Edge]:
        return iter(self._edges.values())

    def edges_of(self, node_id: str) -> tuple[list[Edge], list[Edge]]:
        """(edges out of the asset, edges into it)."""
        out = [self._edges[(node_id, k, d)] for k, d in self._fwd.get(node_id, ())]
        out += [self._edges[(node_id, EdgeKind.owned_by, d)] for d in self._own.get(node_id, ())]
        into = [self._edges[(s, k, node_id)] for k, s in self._bwd.get(node_id, ())]
        return out, into

    def owners(self, node_id: str) -> tuple[str, ...]:
        return self._own.get(node_id, ())

    # -- queries ---------------------------------------------------------------------------

    def lineage(
        self, node_id: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
    ) -> Reach | None:
        """Everything around one asset: downstream, upstream, context, owners (None: unknown)."""
        if node_id not in self:
            return None
        walk = _Walk(self, max_nodes)
        walk.add(Reached(node_id, "root", 0))
        walk.spread([node_id], self._bwd, "downstream", "down", max_depth)
        walk.spread([node_id], self._fwd, "upstream", "up", max_depth)
        walk.finish()
        return Reach((node_id,), walk.reached, walk.truncated)

    def blast_radius(
        self, node_ids: Iterable[str], *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
    ) -> Reach:
        """What a compromise of these assets affects: downstream, their context and owners."""
        roots = tuple(dict.fromkeys(node_ids))
        known = [n for n in roots if n in self]
        walk = _Walk(self, max_nodes)
        for root in known:
            walk.add(Reached(root, "root", 0))
        walk.spread(known, self._bwd, "downstream", "down", max_depth)
        walk.finish()
        unknown = tuple(n for n in roots if n not in self)
        return Reach(roots, walk.reached, walk.truncated, unknown)

    # -- views -----------------------------------------------------------------------------

    def tree(self, reach: Reach) -> str:
        """A text tree of a query's result: each asset under the one it was reached from.

        `← serves endpoint:x` means x serves its parent (x depends on it); `→ uses api_key:k`
        means the parent uses k. Owners are listed as `→ owned_by team:...`."""
        children: dict[str | None, list[Reached]] = {}
        for r in reach.reached.values():
            children.setdefault(r.via, []).append(r)
        lines: list[str] = []
        for root in children.get(None, []):
            lines.append(self._label(root.id))
            stack = _entries(children.get(root.id, []), "")
            while stack:
                item, indent, last = stack.pop()
                arrow = "←" if item.direction == "down" else "→"
                edge = item.edge.value if item.edge else ""
                branch = "└── " if last else "├── "
                lines.append(f"{indent}{branch}{arrow} {edge} {self._label(item.id)}")
                stack += _entries(children.get(item.id, []), indent + ("    " if last else "│   "))
        if reach.truncated:
            lines.append(f"… truncated at {len(reach.reached)} assets or the depth limit")
        return "\n".join(lines)

    def _label(self, node_id: str) -> str:
        found = self.node(node_id)
        extra = ""
        if found is not None and found.tier:
            extra += f" [{found.tier}]"
        if found is not None and not found.sources:
            extra += " (not described)"
        return f"{node_id}{extra}"


def _entries(kids: list[Reached], indent: str) -> list[tuple[Reached, str, bool]]:
    """Children to push on the render stack: reversed, so they pop in order."""
    last = len(kids) - 1
    return [(kid, indent, i == last) for i, kid in reversed(list(enumerate(kids)))]


class _Walk:
    """One bounded breadth-first query; `reached` keeps the first way each asset was found."""

    def __init__(self, graph: AssetGraph, max_nodes: int) -> None:
        self.graph = graph
        self.max_nodes = max(1, max_nodes)
        self.reached: dict[str, Reached] = {}
        self.truncated = False  # some asset was left out (budget or depth)
        self.full = False  # the node budget is spent: stop everything

    def add(self, r: Reached) -> bool:
        """Record a new asset; False (and `full`) once the budget is spent."""
        if len(self.reached) >= self.max_nodes:
            self.truncated = self.full = True
            return False
        self.reached[r.id] = r
        return True

    def spread(
        self,
        starts: list[str],
        adjacency: dict[str, tuple[tuple[EdgeKind, str], ...]],
        role: Role,
        direction: Direction,
        max_depth: int,
    ) -> None:
        queue = deque((s, 0) for s in starts)
        while queue and not self.full:
            current, depth = queue.popleft()
            neighbours = adjacency.get(current, ())
            if depth >= max_depth:
                if any(other not in self.reached for _, other in neighbours):
                    self.truncated = True
                continue
            for kind, other in neighbours:
                if other in self.reached:
                    continue
                if not self.add(Reached(other, role, depth + 1, current, kind, direction)):
                    return
                queue.append((other, depth + 1))

    def finish(self) -> None:
        """Context of what was affected (root and downstream), then owners of everything."""
        ctx = self.graph._ctx
        for r in [r for r in self.reached.values() if r.role in ("root", "downstream")]:
            for kind, other in ctx.get(r.id, ()):
                if other not in self.reached and not self.add(
                    Reached(other, "context", r.depth + 1, r.id, kind, "up")
                ):
                    return
        own = self.graph._own
        for r in list(self.reached.values()):
            for team in own.get(r.id, ()):
                if team not in self.reached and not self.add(
                    Reached(team, "owner", r.depth + 1, r.id, EdgeKind.owned_by, "up")
                ):
                    return


def _is_id(node_id: str, memo: dict[str, bool]) -> bool:
    known = memo.get(node_id)
    if known is None:
        try:
            kind_of(node_id)
            known = True
        except AssetIdError:
            known = False
        memo[node_id] = known
    return known


def _placeholder(node_id: str) -> Node:
    return Node(
        id=node_id, kind=kind_of(node_id), name=display_name(node_id), sources=(), at=_EPOCH
    )
