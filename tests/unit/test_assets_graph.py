"""The asset model and graph on plain values: ids, merging, lineage, blast radius, bounds."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from responder.assets.graph import AssetGraph
from responder.assets.model import (
    MAX_ID,
    AssetIdError,
    Edge,
    EdgeKind,
    NodeKind,
    alias_id,
    dataset_id,
    display_name,
    edge,
    kind_of,
    model_id,
    model_version_id,
    node,
    printable,
    simple_id,
)

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
K = EdgeKind

DS_TX = dataset_id("transactions", "8be7b4a3")
DS_CB = dataset_id("chargebacks", "77aa01ff")
FRAUD = model_id("fraud-detector")
V1, V2, V3 = (model_version_id("fraud-detector", n) for n in (1, 2, 3))
CHURN = model_id("churn")
CHURN_V1 = model_version_id("churn", 1)
CHAMPION = alias_id("fraud-detector", "champion")
CHALLENGER = alias_id("fraud-detector", "challenger")
CHURN_CHAMPION = alias_id("churn", "champion")
API = simple_id(NodeKind.endpoint, "fraud-api")
SHADOW = simple_id(NodeKind.endpoint, "fraud-shadow")
KEY = simple_id(NodeKind.api_key, "AKIAEXAMPLE01")
IMAGE = simple_id(NodeKind.image, "fraud-serving:1.4.2")
BATCH = simple_id(NodeKind.service, "batch-scorer")
TEAM = simple_id(NodeKind.team, "fraud-ml")
PLATFORM = simple_id(NodeKind.team, "ml-platform")


def sample_graph() -> AssetGraph:
    """Two datasets, two models, aliases, two endpoints, a key shared with a batch service."""

    def e(src: str, kind: EdgeKind, dst: str, source: str = "mlflow") -> Edge:
        return edge(src, kind, dst, source, T0)

    edges = [
        e(V1, K.trained_on, DS_TX),
        e(V2, K.trained_on, DS_TX),
        e(V2, K.trained_on, DS_CB),
        e(V3, K.trained_on, DS_CB),
        e(CHURN_V1, K.trained_on, DS_CB),
        *(e(v, K.version_of, FRAUD) for v in (V1, V2, V3)),
        e(CHURN_V1, K.version_of, CHURN),
        e(CHAMPION, K.points_to, V2),
        e(CHALLENGER, K.points_to, V3),
        e(CHURN_CHAMPION, K.points_to, CHURN_V1),
        e(API, K.serves, CHAMPION, "assets/x.yaml"),
        e(SHADOW, K.serves, CHALLENGER, "assets/x.yaml"),
        e(API, K.uses, KEY, "assets/x.yaml"),
        e(BATCH, K.uses, KEY, "assets/x.yaml"),
        e(API, K.runs, IMAGE, "assets/x.yaml"),
        e(FRAUD, K.owned_by, TEAM, "assets/x.yaml"),
        e(KEY, K.owned_by, PLATFORM, "assets/x.yaml"),
    ]
    nodes = [node(n, "mlflow", T0) for n in (DS_TX, DS_CB, FRAUD, V1, V2, V3, CHAMPION)]
    return AssetGraph(nodes, edges)


# -- ids ----------------------------------------------------------------------------------


def test_ids_have_a_stable_readable_form() -> None:
    """Ordinary names give the documented ids, and each id names its kind."""
    assert V3 == "model_version:fraud-detector/3"
    assert CHAMPION == "alias:fraud-detector@champion"
    assert DS_TX == "dataset:transactions@8be7b4a3"
    assert API == "endpoint:fraud-api"
    assert IMAGE == "image:fraud-serving:1.4.2"
    assert [kind_of(i) for i in (V3, CHAMPION, DS_TX, API)] == [
        NodeKind.model_version,
        NodeKind.alias,
        NodeKind.dataset,
        NodeKind.endpoint,
    ]


def test_separators_inside_names_are_encoded_so_ids_stay_unambiguous() -> None:
    """A model named `a/b` version 3 and a model `a` version `b/3` cannot share an id."""
    tricky = model_version_id("a/b", 3)
    assert tricky == "model_version:a%2Fb/3"
    assert display_name(tricky) == "a/b/3"
    assert model_version_id("a", "b/3") != tricky
    assert alias_id("x@y", "champion") == "alias:x%40y@champion"
    assert model_id("my model") == "model:my%20model"


def test_hostile_names_give_terminal_safe_ids() -> None:
    """Control characters, ANSI escapes and non-ASCII end up percent-encoded in the id."""
    evil = model_id("\x1b[31mred\x1b[0m\nnext ✓")
    assert evil.isascii() and evil.isprintable() and " " not in evil
    assert printable(display_name(evil)) == "?[31mred?[0m?next ✓"


def test_bad_ids_are_refused() -> None:
    """Unknown kinds, empty parts, spaces and over-long ids are not asset ids."""
    for bad in ("model", "gpu:abc", "model:", "model:a b", "Model:x"):
        with pytest.raises(AssetIdError):
            kind_of(bad)
    with pytest.raises(AssetIdError):
        model_id("")
    with pytest.raises(AssetIdError):
        model_id("m" * MAX_ID)
    with pytest.raises(AssetIdError):
        simple_id(NodeKind.dataset, "x")


def test_edges_must_join_the_kinds_they_name() -> None:
    """`trained_on` goes from a version to a dataset, never the other way round."""
    assert edge(V1, K.trained_on, DS_TX, "mlflow", T0).key == (V1, K.trained_on, DS_TX)
    with pytest.raises(AssetIdError, match="trained_on goes from model_version to dataset"):
        edge(DS_TX, K.trained_on, V1, "mlflow", T0)
    with pytest.raises(AssetIdError):
        edge(API, K.owned_by, KEY, "assets/x.yaml", T0)


# -- merging ------------------------------------------------------------------------------


def test_claims_about_one_asset_merge_with_declared_files_winning() -> None:
    """The registry's tags and the declared tier and tags end up on one node."""
    registry = node(FRAUD, "mlflow", T0, tags={"team": "ml", "stage": "prod"}, tier="low")
    declared = node(FRAUD, "assets/models.yaml", T0, tags={"stage": "critical-path"}, tier="high")
    hook = node(FRAUD, "webhook", T0 + timedelta(minutes=1), tags={"scan": "clean"})
    graph = AssetGraph([declared, hook, registry])
    merged = graph.node(FRAUD)
    assert merged is not None
    assert merged.tier == "high"
    assert dict(merged.tags) == {"team": "ml", "stage": "critical-path", "scan": "clean"}
    assert merged.sources == ("assets/models.yaml", "webhook", "mlflow")
    assert merged.at == T0 + timedelta(minutes=1)


def test_edges_to_undescribed_assets_get_placeholders() -> None:
    """A declared endpoint serving an alias the registry does not know still has lineage."""
    graph = AssetGraph([], [edge(API, K.serves, CHAMPION, "assets/x.yaml", T0)])
    alias = graph.node(CHAMPION)
    assert alias is not None and alias.sources == () and alias.kind is NodeKind.alias
    reach = graph.lineage(CHAMPION)
    assert reach is not None and reach.ids() == [CHAMPION, API]


def test_edges_between_non_ids_are_dropped() -> None:
    """An edge built by hand with a non-id end never reaches the adjacency."""
    bad = Edge("nonsense", K.uses, KEY, ("assets/x.yaml",), T0)
    graph = AssetGraph([], [bad, edge(API, K.uses, KEY, "assets/x.yaml", T0)])
    assert graph.dropped == 1 and graph.edge_count == 1 and "nonsense" not in graph


# -- lineage and blast radius -------------------------------------------------------------


def test_lineage_of_a_dataset_lists_what_was_trained_on_it_and_what_serves_that() -> None:
    """Versions trained on it, aliases to those, endpoints serving those, their keys, images,
    models and owners; never a sibling version or another dataset."""
    reach = sample_graph().lineage(DS_TX)
    assert reach is not None and not reach.truncated
    kinds = reach.by_kind()
    assert kinds[NodeKind.model_version] == [V1, V2]
    assert kinds[NodeKind.alias] == [CHAMPION]
    assert kinds[NodeKind.endpoint] == [API]
    assert kinds[NodeKind.api_key] == [KEY]
    assert kinds[NodeKind.image] == [IMAGE]
    assert kinds[NodeKind.model] == [FRAUD]
    assert set(kinds[NodeKind.team]) == {TEAM, PLATFORM}
    assert kinds[NodeKind.dataset] == [DS_TX]  # not chargebacks, though v2 used both
    assert V3 not in reach.reached and SHADOW not in reach.reached
    assert reach.reached[V1].role == "downstream" and reach.reached[FRAUD].role == "context"


def test_lineage_of_an_endpoint_goes_up_to_the_training_data() -> None:
    """Upstream of an endpoint: its alias, that alias's version, the version's datasets and
    model, the key and image; nothing downstream of those (no other version of the model)."""
    reach = sample_graph().lineage(API)
    assert reach is not None
    assert reach.ids("upstream") == [CHAMPION, KEY, IMAGE, V2, DS_TX, DS_CB, FRAUD]
    assert V1 not in reach.reached and BATCH not in reach.reached


def test_lineage_of_an_unknown_asset_is_none() -> None:
    """Asking about an id the graph has never seen is not an error."""
    assert sample_graph().lineage(model_id("nope")) is None


def test_blast_radius_groups_what_several_assets_affect_by_kind() -> None:
    """A leaked key and a poisoned dataset: both users of the key, the versions, aliases and
    endpoints behind the dataset; unknown ids are reported, not fatal."""
    stranger = simple_id(NodeKind.api_key, "AKIAUNKNOWN")
    blast = sample_graph().blast_radius([KEY, DS_CB, stranger])
    kinds = blast.by_kind()
    assert set(kinds[NodeKind.endpoint]) == {API, SHADOW}
    assert kinds[NodeKind.service] == [BATCH]
    assert set(kinds[NodeKind.model_version]) == {V2, V3, CHURN_V1}
    assert set(kinds[NodeKind.alias]) == {CHAMPION, CHALLENGER, CHURN_CHAMPION}
    assert set(kinds[NodeKind.model]) == {FRAUD, CHURN}  # context of the versions
    assert blast.unknown == (stranger,)
    assert DS_TX not in blast.reached  # upstream of an affected version: not affected
    assert blast.to_json()["by_kind"] == {k.value: v for k, v in kinds.items()}


def test_cycles_are_walked_once() -> None:
    """Edges that loop (a tampered store, a bug) cost one visit per asset and end."""
    a, b, c = (alias_id("m", n) for n in ("a", "b", "c"))
    loop = [Edge(x, K.points_to, y, ("mlflow",), T0) for x, y in ((a, b), (b, c), (c, a))]
    graph = AssetGraph([], [*loop, Edge(a, K.points_to, a, ("mlflow",), T0)])
    reach = graph.lineage(a)
    assert reach is not None and sorted(reach.ids()) == sorted([a, b, c])
    assert len(graph.blast_radius([a, b]).reached) == 3


def test_depth_is_capped() -> None:
    """A chain longer than the depth limit stops there and says so."""
    chain = [alias_id("m", f"a{i}") for i in range(30)]
    edges = [Edge(x, K.points_to, y, ("mlflow",), T0) for x, y in itertools.pairwise(chain)]
    graph = AssetGraph([], edges)
    reach = graph.lineage(chain[0], max_depth=5)
    assert reach is not None and reach.truncated
    assert reach.ids() == chain[:6]
    full = graph.lineage(chain[0], max_depth=40)
    assert full is not None and not full.truncated and len(full.reached) == 30


def test_result_size_is_capped_even_for_a_huge_fan_out() -> None:
    """A dataset declared as the input of 50,000 versions: the answer stops at the budget and
    says it was cut (its cost is measured in bench/, not asserted here)."""
    versions = [model_version_id("flood", n) for n in range(50_000)]
    graph = AssetGraph([], [Edge(v, K.trained_on, DS_TX, ("mlflow",), T0) for v in versions])
    reach = graph.lineage(DS_TX, max_nodes=200)
    assert reach is not None and reach.truncated and len(reach.reached) == 200


def test_tree_shows_each_asset_under_the_one_it_was_reached_from() -> None:
    """The CLI's text tree: ← for what depends on the parent, → for what the parent uses."""
    graph = sample_graph()
    reach = graph.lineage(DS_TX)
    assert reach is not None
    assert graph.tree(reach).splitlines() == [
        "dataset:transactions@8be7b4a3",
        "├── ← trained_on model_version:fraud-detector/1",
        "│   └── → version_of model:fraud-detector",
        "│       └── → owned_by team:fraud-ml (not described)",
        "└── ← trained_on model_version:fraud-detector/2",
        "    └── ← points_to alias:fraud-detector@champion",
        "        └── ← serves endpoint:fraud-api (not described)",
        "            ├── → uses api_key:AKIAEXAMPLE01 (not described)",
        "            │   └── → owned_by team:ml-platform (not described)",
        "            └── → runs image:fraud-serving:1.4.2 (not described)",
    ]


# -- a flood of nodes: the hot-path figure ------------------------------------------------


def flood(models: int = 340, versions: int = 20, datasets: int = 1000) -> AssetGraph:
    """About 10,000 assets shaped like a busy registry plus its serving estate."""
    rnd = random.Random(7)
    nodes, edges = [], []
    teams = [simple_id(NodeKind.team, f"team-{i}") for i in range(20)]
    data = [dataset_id(f"ds-{i}", f"{i:08x}") for i in range(datasets)]
    nodes += [node(n, "mlflow", T0) for n in data]
    for m in range(models):
        name = f"model-{m}"
        nodes.append(node(model_id(name), "mlflow", T0))
        edges.append(edge(model_id(name), K.owned_by, rnd.choice(teams), "assets/t.yaml", T0))
        made = []
        for v in range(1, versions + 1):
            vid = model_version_id(name, v)
            made.append(vid)
            nodes.append(node(vid, "mlflow", T0))
            edges.append(edge(vid, K.version_of, model_id(name), "mlflow", T0))
            edges += [edge(vid, K.trained_on, d, "mlflow", T0) for d in rnd.sample(data, 2)]
        for a in ("champion", "challenger"):
            aid = alias_id(name, a)
            ep = simple_id(NodeKind.endpoint, f"{name}-{a}")
            nodes += [node(aid, "mlflow", T0), node(ep, "assets/e.yaml", T0)]
            edges.append(edge(aid, K.points_to, rnd.choice(made), "mlflow", T0))
            edges.append(edge(ep, K.serves, aid, "assets/e.yaml", T0))
            edges.append(edge(ep, K.uses, simple_id(NodeKind.api_key, f"k-{ep}"), "a", T0))
            edges.append(edge(ep, K.runs, simple_id(NodeKind.image, f"img-{m % 50}"), "a", T0))
    return AssetGraph(nodes, edges)


def test_lineage_lookups_on_a_10k_asset_graph_reach_past_the_asset_itself() -> None:
    """Every kind of asset of a 10k-asset graph answers, and the answers reach beyond the asset
    looked up (the cost of a lookup is measured in bench/, not asserted here)."""
    graph = flood()
    assert len(graph) >= 10_000
    ids = [n.id for n in graph.nodes()]
    sample = random.Random(3).choices(ids, k=5000)
    found = sum(len(r.reached) for i in sample if (r := graph.lineage(i)) is not None)
    assert found > len(sample)
