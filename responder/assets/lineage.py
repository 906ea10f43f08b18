"""An event's lineage and an incident's blast radius, from a graph snapshot (pure).

**Which assets an event is about.** `resource_ids` maps an event's `resource` to asset ids:
`resource.kind` names the kind (`dataset`, `model`, `model_version`, `alias`, `endpoint`,
`api_key`, `image`, `service`), `resource.id` the asset, as the graph's id (`dataset:x@d`) or
its plain form: a dataset `name@digest` (or only `name`: every dataset of that name the graph
knows), a model's name (`resource.name`, else `resource.id`) with `resource.version` for a
version, `model/3` for a version, `model@alias` for an alias, the key of anything else. Other
kinds (packages, repositories, users) have no lineage.

**Lineage** (`LineageIndex.of`): every asset connected to the event's resources (the graph's
`lineage`: what they affect, what they are made of, context and owners), grouped by kind, as
`{"model": ["model:fraud"], "model_version": [...], "dataset": [...], "alias": [...],
"endpoint": [...], "api_key": [...], "image": [...], "service": [...], "team": [...]}`: lists of
asset ids, the resource itself included. A resource the graph does not know still has its own
id (or, for a dataset named without digest, its name as given) under its kind, so a rule
grouped on `lineage.dataset` works before the first sync. Lists hold at most `MAX_PER_KIND`
ids. Ingest puts this under the routed event's `lineage` key (never into the event's bytes), so
rules match (`lineage.dataset|contains: ...`) and group (`group_by: [lineage.model]`) on it.

The index is built once per snapshot and caches answers per resource, so the hot path pays a
cache lookup for a resource it has seen. Events are written by anyone: the cache is keyed only
by the fields that change the answer (a model's `name` and `version`, only the `kind` and `id`
of anything else), holds at most `MAX_CACHED` answers and drops the least recently used, so a
flood of made-up names costs a bounded amount of memory and evicts the busy resources last. A
dataset named without digest starts from at most `MAX_ROOTS` of its digests. A new snapshot
means a new index.

**Blast radius** (`blast_radius_view`): what a compromise of an incident's resources affects
(the graph's `blast_radius`), in the shape playbook templates read as `incident.blast_radius`:
`models` as names (what `mlflow.*` actions take), the other kinds as the assets `responder
assets show --json` prints under `node`, plus `size`, `critical` (ids of `tier: critical`
assets), `roots`, `unknown` and `truncated`: the radius was cut, at `MAX_ROOTS` roots or
at the walk's depth / size limits (`graph.MAX_DEPTH`, `graph.MAX_NODES`), so it may hold more.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from functools import lru_cache, partial
from typing import Any, Final

from responder.assets.graph import AssetGraph
from responder.assets.model import (
    AssetIdError,
    NodeKind,
    alias_id,
    dataset_id,
    display_name,
    kind_of,
    model_id,
    model_version_id,
    simple_id,
)

MAX_PER_KIND: Final = 64  # ids per kind in one event's lineage (a rule fans out at most this)
MAX_CACHED: Final = 100_000  # resources whose lineage the index keeps (least recently used out)
MAX_ROOTS: Final = 200  # assets one lineage or one incident's blast radius starts from

Lineage = dict[str, list[str]]

_RESOURCE_KINDS: Final = {
    k.value: k
    for k in (
        NodeKind.dataset,
        NodeKind.model,
        NodeKind.model_version,
        NodeKind.alias,
        NodeKind.endpoint,
        NodeKind.api_key,
        NodeKind.image,
        NodeKind.service,
    )
}

# incident.blast_radius keys, by asset kind (models are listed by name, see the docstring)
BLAST_KEYS: Final = {
    NodeKind.dataset: "datasets",
    NodeKind.model: "models",
    NodeKind.model_version: "versions",
    NodeKind.alias: "aliases",
    NodeKind.endpoint: "endpoints",
    NodeKind.api_key: "keys",
    NodeKind.image: "images",
    NodeKind.service: "services",
    NodeKind.team: "owners",
}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _as_id(kind: NodeKind, given: str) -> str | None:
    """`given` when it is already an id of this kind."""
    if not given.startswith(f"{kind.value}:"):
        return None
    try:
        return given if kind_of(given) is kind else None
    except AssetIdError:
        return None


def _dataset_names(graph: AssetGraph) -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = {}
    for n in graph.nodes():
        if n.kind is NodeKind.dataset:
            by_name.setdefault(display_name(n.id).rpartition("@")[0], []).append(n.id)
    return by_name


def resource_ids(
    graph: AssetGraph, resource: Mapping[str, Any], datasets: Mapping[str, list[str]] | None = None
) -> list[str]:
    """The asset ids an event's resource names (see the module docstring); [] for none."""
    kind = _RESOURCE_KINDS.get(str(resource.get("kind")))
    given = _text(resource.get("id"))
    if kind is None or given is None:
        return []
    found = _as_id(kind, given)
    if found is not None:
        return [found]
    try:
        if kind is NodeKind.model:
            name = _text(resource.get("name")) or given
            version = _text(resource.get("version"))
            if version is not None:
                vid = model_version_id(name, version)
                if vid in graph or model_id(name) not in graph:
                    return [vid]
            return [model_id(name)]
        if kind is NodeKind.dataset:
            name, at, digest = given.rpartition("@")
            if at and name:
                return [dataset_id(name, digest)]
            names = datasets if datasets is not None else _dataset_names(graph)
            return list(names.get(given, ()))
        if kind is NodeKind.model_version:
            name, sep, version = given.rpartition("/")
            return [model_version_id(name, version)] if sep and name else []
        if kind is NodeKind.alias:
            name, at, alias = given.rpartition("@")
            return [alias_id(name, alias)] if at and name else []
        return [simple_id(kind, given)]
    except AssetIdError:
        return []


class LineageIndex:
    """Lineage per event resource over one snapshot, cached (see the module docstring)."""

    def __init__(self, graph: AssetGraph, max_cached: int = MAX_CACHED) -> None:
        self.graph = graph
        self.datasets = _dataset_names(graph)  # dataset name -> ids, built once
        # over the graph, not `self`: no reference cycle keeps an old snapshot's cache alive
        self._cached = lru_cache(maxsize=max_cached)(partial(_lineage, graph, self.datasets))

    @property
    def cached(self) -> int:
        """How many resources' answers the index holds."""
        return self._cached.cache_info().currsize

    def of(self, resource: object) -> Lineage | None:
        """The lineage of an event's resource (None: nothing to say about it)."""
        if type(resource) is not dict:
            return None
        kind, given = resource.get("kind"), resource.get("id")
        if type(kind) is not str or type(given) is not str:
            return None  # not a validated event's resource
        if kind != "model":  # nothing else reads name and version: no cache entries for them
            return self._cached(kind, given, None, None)
        name, version = resource.get("name"), resource.get("version")
        if (name is None or type(name) is str) and (version is None or type(version) is str):
            return self._cached(kind, given, name, version)
        return None


def _lineage(
    graph: AssetGraph,
    datasets: Mapping[str, list[str]],
    kind: str,
    given: str,
    name: str | None,
    version: str | None,
) -> Lineage | None:
    """`LineageIndex.of` uncached: the lineage of the resource with these fields."""
    resource = {"kind": kind, "id": given, "name": name, "version": version}
    ids = resource_ids(graph, resource, datasets)
    known = [i for i in ids if i in graph][:MAX_ROOTS]
    if not known:
        own = ids or _unresolved(resource)
        return {str(kind): own[:MAX_PER_KIND]} if own else None
    out: Lineage = {}
    for root in known:
        reach = graph.lineage(root)
        if reach is None:
            continue
        for reached_kind, members in reach.by_kind().items():
            listed = out.setdefault(reached_kind.value, [])
            for member in members:
                if len(listed) < MAX_PER_KIND and member not in listed:
                    listed.append(member)
    return out


def _unresolved(resource: Mapping[str, Any]) -> list[str]:
    """A dataset named without digest that the graph does not know: its name as given."""
    given = _text(resource.get("id"))
    if resource.get("kind") == NodeKind.dataset.value and given is not None:
        return [given]
    return []


class GraphSnapshot:
    """The current graph and its lineage index, swapped whole by `set` (readers take the
    attribute once per batch; `assets.snapshot` keeps it current in the worker)."""

    def __init__(self, graph: AssetGraph | None = None) -> None:
        self.version = 0
        self.fingerprint: int | None = None  # of the graph last loaded (assets.snapshot)
        self.set(graph if graph is not None else AssetGraph())

    def set(self, graph: AssetGraph) -> None:
        index = LineageIndex(graph)
        self.graph, self.index = graph, index  # readers see the old pair or the new one
        self.version += 1


def blast_radius_view(
    graph: AssetGraph,
    resources: Iterable[Mapping[str, Any]],
    roots: Iterable[str] = (),
    datasets: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """`incident.blast_radius` for the resources of an incident's events (JSON-ready), with
    asset ids already known to be its roots (a stored radius's `roots`) first. `datasets`:
    the graph's datasets by name, when the caller has them (`LineageIndex.datasets`)."""
    if datasets is None:
        datasets = _dataset_names(graph)
    named = (found for r in resources for found in resource_ids(graph, r, datasets))
    found_roots: dict[str, None] = {}
    cut = False
    for root in itertools.chain(roots, named):
        if root in found_roots:
            continue
        if len(found_roots) >= MAX_ROOTS:
            cut = True
            break
        found_roots[root] = None
    view = blast_radius_of(graph, list(found_roots))
    view["truncated"] = view["truncated"] or cut
    return view


def blast_radius_of(graph: AssetGraph, roots: list[str]) -> dict[str, Any]:
    """`incident.blast_radius` from asset ids."""
    reach = graph.blast_radius(roots)
    view: dict[str, Any] = {key: [] for key in BLAST_KEYS.values()}
    critical: list[str] = []
    for kind, ids in reach.by_kind().items():
        key = BLAST_KEYS[kind]
        for node_id in ids:
            node = graph.node(node_id)
            if node is None:
                continue
            if node.tier == "critical":
                critical.append(node_id)
            view[key].append(node.name if kind is NodeKind.model else node.to_json())
    view.update(
        size=len(reach.reached),
        critical=critical,
        roots=list(reach.roots),
        unknown=list(reach.unknown),
        truncated=reach.truncated,
    )
    return view


# incident.blast_radius keys in the order an analyst reads them (terminal, dashboard)
SECTIONS = ("datasets", "versions", "aliases", "endpoints", "keys", "images", "services", "owners")


def blast_rows(radius: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, asset, tier or contact) for every asset of the radius, models by name first."""
    rows = [("model", str(name), "") for name in radius.get("models", [])]
    for section in SECTIONS:
        for item in radius.get(section, []):
            if not isinstance(item, Mapping):
                continue
            extra = item.get("tier") or ""
            attributes = item.get("attributes")
            if section == "owners" and isinstance(attributes, Mapping):
                extra = str(attributes.get("contact", ""))
            rows.append((section, str(item.get("id", "")), str(extra)))
    return rows
