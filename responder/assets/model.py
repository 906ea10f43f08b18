"""Asset nodes and edges: kinds, stable ids, and what each source claims (pure).

An id is `<kind>:<key>`, ASCII, at most `MAX_ID` characters, with nothing a terminal or a
shell would interpret: names are percent-encoded where they hold a separator, a space, `%` or
anything outside printable ASCII. So `model_version:fraud-detector/3`,
`alias:fraud-detector@champion`, `dataset:transactions@8be7b4a3`, `endpoint:fraud-api`, and a
model called `a/b` is `model:a%2Fb`. Build ids with the functions here, never by hand.

A `Node` or an `Edge` is one source's claim (`mlflow`, `webhook`, `assets/<file>`); the graph
merges the claims of several sources about one id (`merge_nodes`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal
from urllib.parse import quote, unquote

MAX_ID: Final = 512
MAX_NAME: Final = 256
MAX_VALUE: Final = 2048  # one tag or attribute value
MAX_ENTRIES: Final = 64  # tags, attributes per claim

Tier = Literal["critical", "high", "medium", "low"]
TIERS: Final[tuple[Tier, ...]] = ("critical", "high", "medium", "low")

MLFLOW: Final = "mlflow"
WEBHOOK: Final = "webhook"
DECLARED_PREFIX: Final = "assets/"


class NodeKind(StrEnum):
    dataset = "dataset"
    model = "model"
    model_version = "model_version"
    alias = "alias"
    endpoint = "endpoint"
    api_key = "api_key"
    image = "image"
    service = "service"
    team = "team"


class EdgeKind(StrEnum):
    """Every edge points from the asset that depends to the asset it depends on (`owned_by`
    from an asset to its team)."""

    trained_on = "trained_on"  # model_version -> dataset
    version_of = "version_of"  # model_version -> model
    points_to = "points_to"  # alias -> model_version
    serves = "serves"  # endpoint -> alias | model_version
    uses = "uses"  # service | endpoint -> api_key
    runs = "runs"  # endpoint -> image
    owned_by = "owned_by"  # any -> team


_ANY = frozenset(NodeKind) - {NodeKind.team}
EDGE_ENDS: Final[Mapping[EdgeKind, tuple[frozenset[NodeKind], frozenset[NodeKind]]]] = {
    EdgeKind.trained_on: (frozenset({NodeKind.model_version}), frozenset({NodeKind.dataset})),
    EdgeKind.version_of: (frozenset({NodeKind.model_version}), frozenset({NodeKind.model})),
    EdgeKind.points_to: (frozenset({NodeKind.alias}), frozenset({NodeKind.model_version})),
    EdgeKind.serves: (
        frozenset({NodeKind.endpoint}),
        frozenset({NodeKind.alias, NodeKind.model_version}),
    ),
    EdgeKind.uses: (
        frozenset({NodeKind.service, NodeKind.endpoint}),
        frozenset({NodeKind.api_key}),
    ),
    EdgeKind.runs: (frozenset({NodeKind.endpoint}), frozenset({NodeKind.image})),
    EdgeKind.owned_by: (_ANY, frozenset({NodeKind.team})),
}

# A part of a two-part key (a model name, a version, an alias, a dataset name or digest) must
# not contain the separators; a one-part key (an endpoint, an image reference) may.
_PART_SAFE = "-._~+!,;=:"
_WHOLE_SAFE = _PART_SAFE + "/@"
_ID = re.compile(r"^([a-z_]+):([!-~]+)$")
_KINDS = {k.value: k for k in NodeKind}


class AssetIdError(ValueError):
    """Not a valid asset id (unknown kind, too long, bad characters)."""


def _part(value: str) -> str:
    if not value:
        raise AssetIdError("an id part is empty")
    return quote(value, safe=_PART_SAFE)


def _checked(kind: NodeKind, key: str) -> str:
    node_id = f"{kind.value}:{key}"
    if len(node_id) > MAX_ID:
        raise AssetIdError(f"id longer than {MAX_ID} characters: {node_id[:60]}...")
    return node_id


def model_id(name: str) -> str:
    return _checked(NodeKind.model, _part(name))


def model_version_id(name: str, version: str | int) -> str:
    return _checked(NodeKind.model_version, f"{_part(name)}/{_part(str(version))}")


def alias_id(name: str, alias: str) -> str:
    return _checked(NodeKind.alias, f"{_part(name)}@{_part(alias)}")


def dataset_id(name: str, digest: str) -> str:
    return _checked(NodeKind.dataset, f"{_part(name)}@{_part(digest)}")


def simple_id(kind: NodeKind, key: str) -> str:
    """The id of a one-part asset: endpoint, api_key, image, service, team."""
    if kind in (NodeKind.model_version, NodeKind.alias, NodeKind.dataset):
        raise AssetIdError(f"{kind.value} ids have two parts")
    if not key:
        raise AssetIdError("an id part is empty")
    return _checked(kind, quote(key, safe=_WHOLE_SAFE))


def kind_of(node_id: str) -> NodeKind:
    """The kind an id names; `AssetIdError` unless it is a well-formed id."""
    match = _ID.match(node_id)
    if match is None or len(node_id) > MAX_ID:
        raise AssetIdError(f"not an asset id: {node_id[:80]!r}")
    kind = _KINDS.get(match.group(1))
    if kind is None:
        raise AssetIdError(f"unknown asset kind {match.group(1)!r}: use one of {list(_KINDS)}")
    return kind


def display_name(node_id: str) -> str:
    """The human form of an id's key (`fraud-detector/3`, `a/b@champion`), decoded.

    Control characters are shown as `?`: the result goes to terminals."""
    kind = kind_of(node_id)
    key = node_id.split(":", 1)[1]
    if kind in (NodeKind.model_version, NodeKind.alias, NodeKind.dataset):
        sep = "/" if kind is NodeKind.model_version else "@"
        left, _, right = key.rpartition(sep)
        text = f"{unquote(left)}{sep}{unquote(right)}"
    else:
        text = unquote(key)
    return printable(text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with control and bidi-override characters replaced by `?` (safe for terminals)."""
    return _CONTROL.sub("?", text)


def edge_problem(src: str, kind: EdgeKind, dst: str) -> str | None:
    """Why an edge cannot be (wrong kinds at either end, a bad id), or None when it is fine."""
    try:
        src_kind, dst_kind = kind_of(src), kind_of(dst)
    except AssetIdError as exc:
        return str(exc)
    sources, targets = EDGE_ENDS[kind]
    if src_kind not in sources or dst_kind not in targets:
        return (
            f"{kind.value} goes from {'/'.join(sorted(sources))} to {'/'.join(sorted(targets))}, "
            f"not from {src_kind.value} to {dst_kind.value}"
        )
    return None


def source_rank(source: str) -> int:
    """Which claim wins when sources disagree: declared files over webhooks over a sync."""
    if source.startswith(DECLARED_PREFIX):
        return 2
    return 1 if source == WEBHOOK else 0


def _frozen(values: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(values or {}))


def clip(value: object, limit: int = MAX_VALUE) -> str:
    """A string of at most `limit` characters (attacker-sized values are cut, marked `…`)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded(values: Mapping[str, object] | None) -> dict[str, str]:
    """At most MAX_ENTRIES string pairs, keys and values clipped (registry tags and the like)."""
    out: dict[str, str] = {}
    for key, value in (values or {}).items():
        if len(out) >= MAX_ENTRIES:
            break
        out[clip(key, MAX_NAME)] = clip(value)
    return out


@dataclass(frozen=True, slots=True)
class Node:
    """An asset as one or more sources describe it.

    `tags` are the asset's own labels (registry tags, declared tags); `attributes` are facts the
    source knows about it (a version's run id, a dataset's source URI); `tier` comes from
    declared files only. `sources` lists who said so, highest precedence first after merging.
    """

    id: str
    kind: NodeKind
    name: str
    sources: tuple[str, ...]
    at: datetime
    tier: Tier | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    attributes: Mapping[str, str] = field(default_factory=lambda: _frozen(None))

    @property
    def source(self) -> str:
        """The highest-precedence source ("" for a placeholder nobody described)."""
        return self.sources[0] if self.sources else ""

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "name": self.name,
            "tier": self.tier,
            "tags": dict(self.tags),
            "attributes": dict(self.attributes),
            "sources": list(self.sources),
            "at": self.at.isoformat(),
        }


def node(
    node_id: str,
    source: str,
    at: datetime,
    *,
    name: str | None = None,
    tier: Tier | None = None,
    tags: Mapping[str, object] | None = None,
    attributes: Mapping[str, object] | None = None,
) -> Node:
    """One source's claim about an asset; the kind comes from the id."""
    return Node(
        id=node_id,
        kind=kind_of(node_id),
        name=clip(name or display_name(node_id), MAX_NAME),
        sources=(source,),
        at=at,
        tier=tier,
        tags=_frozen(bounded(tags)),
        attributes=_frozen(bounded(attributes)),
    )


@dataclass(frozen=True, slots=True)
class Edge:
    """`src` depends on `dst` in the way `kind` says, according to `sources`."""

    src: str
    kind: EdgeKind
    dst: str
    sources: tuple[str, ...]
    at: datetime
    attributes: Mapping[str, str] = field(default_factory=lambda: _frozen(None))

    @property
    def source(self) -> str:
        """The highest-precedence source ("" for a placeholder nobody described)."""
        return self.sources[0] if self.sources else ""

    @property
    def key(self) -> tuple[str, EdgeKind, str]:
        return (self.src, self.kind, self.dst)

    def to_json(self) -> dict[str, object]:
        return {
            "src": self.src,
            "kind": self.kind.value,
            "dst": self.dst,
            "attributes": dict(self.attributes),
            "sources": list(self.sources),
            "at": self.at.isoformat(),
        }


def edge(
    src: str,
    kind: EdgeKind,
    dst: str,
    source: str,
    at: datetime,
    *,
    attributes: Mapping[str, object] | None = None,
) -> Edge:
    """One source's claim that `src` depends on `dst`; `AssetIdError` if the kinds don't fit."""
    problem = edge_problem(src, kind, dst)
    if problem is not None:
        raise AssetIdError(problem)
    return Edge(src, kind, dst, (source,), at, _frozen(bounded(attributes)))


def merge_nodes(low: Node, high: Node) -> Node:
    """Two claims about one id: `high` (the higher-precedence source) wins where both speak."""
    sources = tuple(dict.fromkeys((*high.sources, *low.sources)))
    return Node(
        id=high.id,
        kind=high.kind,
        name=high.name if high.name else low.name,
        sources=sources,
        at=max(low.at, high.at),
        tier=high.tier if high.tier is not None else low.tier,
        tags=_frozen({**low.tags, **high.tags}),
        attributes=_frozen({**low.attributes, **high.attributes}),
    )


def merge_edges(low: Edge, high: Edge) -> Edge:
    sources = tuple(dict.fromkeys((*high.sources, *low.sources)))
    return Edge(
        high.src,
        high.kind,
        high.dst,
        sources,
        max(low.at, high.at),
        _frozen({**low.attributes, **high.attributes}),
    )


@dataclass(frozen=True)
class GraphUpdate:
    """An incremental change from a webhook: claims to add (source `webhook`) and, per
    `replaces` entry `(src, kind)`, the edges of that kind out of `src` they supersede (an alias
    points to one version: moving it replaces the old `points_to`; deleting it replaces it with
    nothing). A full sync later supersedes the webhook's claims (`store.forget`)."""

    at: datetime
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    replaces: tuple[tuple[str, EdgeKind], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.nodes or self.edges or self.replaces)
