"""Lineage at ingest and blast radius on plain values: which assets an event's resource names,
its lineage, rules grouped on lineage (one group per value), the ingest batch, replay."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from typer.testing import CliRunner

from responder.actions.slack import incident_blocks
from responder.assets.graph import AssetGraph
from responder.assets.lineage import (
    MAX_CACHED,
    MAX_PER_KIND,
    MAX_ROOTS,
    GraphSnapshot,
    LineageIndex,
    blast_radius_view,
    blast_rows,
    resource_ids,
)
from responder.assets.model import (
    EdgeKind,
    NodeKind,
    dataset_id,
    edge,
    model_id,
    model_version_id,
    node,
    simple_id,
)
from responder.assets.store import graph_from_claims
from responder.cli import app
from responder.cli.blast_view import print_blast_radius
from responder.correlation.engine import routed_by_key
from responder.correlation.replay import replay
from responder.correlation.rules import Rule, RuleSet
from responder.streams.ingest_batch import IngestBatch
from responder.streams.records import decode
from tests.unit.test_assets_graph import (
    API,
    CHALLENGER,
    CHAMPION,
    CHURN,
    CHURN_CHAMPION,
    CHURN_V1,
    DS_CB,
    DS_TX,
    FRAUD,
    IMAGE,
    KEY,
    PLATFORM,
    SHADOW,
    T0,
    TEAM,
    V1,
    V2,
    V3,
    sample_graph,
)

CORRELATED = Rule.model_validate(
    {
        "id": "poisoned-model",
        "title": "Poisoned data and drift on one model",
        "match": {"type": ["data.poisoning_suspected", "model.drift"]},
        "group_by": ["lineage.model"],
        "window": "1h",
        "correlation": {"type": "temporal", "events": ["data.poisoning_suspected", "model.drift"]},
        "incident": {"kind": "data_poisoning", "title": "{{ group['lineage.model'] }} poisoned"},
    }
)


def event(n: int, type: str, resource: dict[str, Any], minutes: float = 0) -> dict[str, Any]:
    at = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    return {
        "id": f"e-{n}",
        "source": "monitor",
        "type": type,
        "time": at,
        "severity": "high",
        "title": f"event {n}",
        "resource": resource,
    }


def test_resources_name_assets_in_any_of_their_forms() -> None:
    graph = sample_graph()
    assert resource_ids(graph, {"kind": "dataset", "id": "transactions@8be7b4a3"}) == [DS_TX]
    assert resource_ids(graph, {"kind": "dataset", "id": DS_CB}) == [DS_CB]
    assert resource_ids(graph, {"kind": "dataset", "id": "chargebacks"}) == [DS_CB]  # by name
    assert resource_ids(graph, {"kind": "model", "id": "fraud-detector"}) == [FRAUD]
    model = {"kind": "model", "id": "x", "name": "fraud-detector", "version": "3"}
    assert resource_ids(graph, model) == [V3]
    assert resource_ids(graph, {"kind": "model_version", "id": "fraud-detector/1"}) == [V1]
    assert resource_ids(graph, {"kind": "endpoint", "id": "fraud-api"}) == [API]
    assert resource_ids(graph, {"kind": "package", "id": "requests"}) == []
    assert resource_ids(graph, {"kind": "dataset", "id": "dataset:"}) == []  # no id, no crash


def test_a_dataset_s_lineage_reaches_every_model_trained_on_it() -> None:
    index = LineageIndex(sample_graph())
    found = index.of({"kind": "dataset", "id": "chargebacks@77aa01ff"})
    assert found is not None
    assert sorted(found["model"]) == sorted([FRAUD, CHURN])
    assert sorted(found["model_version"]) == sorted([V2, V3, CHURN_V1])
    assert sorted(found["alias"]) == sorted([CHAMPION, CHALLENGER, CHURN_CHAMPION])
    assert sorted(found["endpoint"]) == sorted([API, SHADOW])
    assert found["dataset"] == [DS_CB]
    assert index.of({"kind": "dataset", "id": "chargebacks@77aa01ff"}) is found  # cached

    up = index.of({"kind": "endpoint", "id": "fraud-shadow"})
    assert up is not None
    assert up["model_version"] == [V3] and up["dataset"] == [DS_CB] and up["model"] == [FRAUD]


def test_an_unknown_resource_keeps_its_own_id_and_other_kinds_have_none() -> None:
    index = LineageIndex(AssetGraph())
    assert index.of({"kind": "dataset", "id": "tx@abc"}) == {"dataset": ["dataset:tx@abc"]}
    assert index.of({"kind": "dataset", "id": "tx"}) == {"dataset": ["tx"]}
    assert index.of({"kind": "endpoint", "id": "ep"}) == {"endpoint": ["endpoint:ep"]}
    assert index.of({"kind": "repo", "id": "org/app"}) is None
    assert index.of("not a resource") is None


def test_a_huge_lineage_is_bounded() -> None:
    ds = "dataset:big@1"
    edges = []
    for i in range(MAX_PER_KIND + 20):
        v = model_version_id(f"m{i}", 1)
        edges += [
            edge(v, EdgeKind.trained_on, ds, "mlflow", T0),
            edge(v, EdgeKind.version_of, model_id(f"m{i}"), "mlflow", T0),
        ]
    found = LineageIndex(AssetGraph([node(ds, "mlflow", T0)], edges)).of(
        {"kind": "dataset", "id": ds}
    )
    assert found is not None and len(found["model"]) == MAX_PER_KIND


def test_a_flood_of_made_up_resources_keeps_the_cache_bounded_and_answers_right() -> None:
    """200,000 distinct names from events: the cache stays at its cap, a resource in use all
    along stays cached, and known and unknown resources still get their own lineage."""
    index = LineageIndex(sample_graph())
    busy = {"kind": "dataset", "id": "chargebacks@77aa01ff"}
    first = index.of(busy)
    assert first is not None and first["dataset"] == [DS_CB]
    for n in range(200_000):
        if n % 2:
            found = index.of({"kind": "model", "id": f"m{n}", "version": str(n)})
            assert found == {"model": [model_version_id(f"m{n}", n)]}
        else:
            found = index.of({"kind": "dataset", "id": f"flood-{n}@{n:x}"})
            assert found == {"dataset": [dataset_id(f"flood-{n}", f"{n:x}")]}
        if n % 1_000 == 0:
            assert index.of(busy) is first  # used often: never the least recently used
        assert index.cached <= MAX_CACHED
    assert index.cached == MAX_CACHED
    assert index.of(busy) is first
    up = index.of({"kind": "endpoint", "id": "fraud-shadow"})
    assert up is not None and up["model_version"] == [V3] and up["model"] == [FRAUD]


def test_fields_that_do_not_change_the_answer_make_no_cache_entries() -> None:
    """A name or version on anything but a model is not part of the cache key."""
    index = LineageIndex(sample_graph())
    answers = [
        index.of({"kind": "dataset", "id": "chargebacks@77aa01ff", "name": f"x{n}", "version": "1"})
        for n in range(1_000)
    ]
    assert index.cached == 1 and all(a is answers[0] for a in answers)
    assert index.of({"kind": ["dataset"], "id": "chargebacks@77aa01ff"}) is None  # not validated
    assert index.of({"kind": "model", "id": "fraud-detector", "version": {"v": 1}}) is None


def test_a_dataset_name_with_more_digests_than_the_root_limit_is_bounded() -> None:
    """An event naming a dataset without digest, when the graph has thousands of its digests:
    lineage starts from at most MAX_ROOTS of them; the blast radius of many resources says it
    was cut."""
    digests = [dataset_id("daily", f"{n:08x}") for n in range(MAX_ROOTS * 10)]
    edges = [
        edge(model_version_id("m", n), EdgeKind.trained_on, ds, "mlflow", T0)
        for n, ds in enumerate(digests)
    ]
    graph = AssetGraph([node(ds, "mlflow", T0) for ds in digests], edges)
    found = LineageIndex(graph).of({"kind": "dataset", "id": "daily"})
    assert found is not None
    assert found["dataset"] == digests[:MAX_PER_KIND]
    assert found["model_version"] == [model_version_id("m", n) for n in range(MAX_PER_KIND)]
    view = blast_radius_view(graph, [{"kind": "dataset", "id": "daily"}])
    assert view["roots"] == digests[:MAX_ROOTS] and view["truncated"]
    few = blast_radius_view(graph, [{"kind": "dataset", "id": digests[0]}])
    assert few["roots"] == digests[:1] and not few["truncated"] and few["size"] == 2


def test_poisoned_data_and_drift_on_one_model_trained_on_it_correlate_into_one_incident() -> None:
    lines = [
        json.dumps(event(1, "data.poisoning_suspected", {"kind": "dataset", "id": DS_CB})),
        json.dumps(
            event(2, "model.drift", {"kind": "model", "id": "churn", "version": "1"}, minutes=5)
        ),
    ]
    rules = RuleSet([CORRELATED])
    assert replay(lines, rules).incidents == []  # without the graph, nothing connects them
    result = replay(lines, rules, assets=LineageIndex(sample_graph()))
    [incident] = result.incidents
    opened = incident.changes[0]
    assert opened.group == {"lineage.model": CHURN}
    assert opened.event_count == 2
    assert opened.title == f"{CHURN} poisoned"
    # the event bodies are kept as they came: no lineage in the evidence
    assert all("lineage" not in e for e in incident.last_change.events)


def test_rules_match_on_lineage_paths() -> None:
    rule = Rule.model_validate(
        {
            "id": "champion-endpoint",
            "title": "Inputs against what serves the fraud champion",
            "match": {"type": "input.adversarial", "lineage.alias|contains": CHAMPION},
            "group_by": ["resource.id"],
            "window": "5m",
            "incident": {"kind": "adversarial_attack"},
        }
    )
    index = LineageIndex(sample_graph())
    lines = [
        json.dumps(event(1, "input.adversarial", {"kind": "endpoint", "id": "fraud-api"})),
        json.dumps(event(2, "input.adversarial", {"kind": "endpoint", "id": "fraud-shadow"})),
    ]
    [incident] = replay(lines, RuleSet([rule]), assets=index).incidents
    assert incident.changes[0].group == {"resource.id": "fraud-api"}


def test_ingest_routes_each_event_to_one_group_per_lineage_value_not_in_its_body() -> None:
    poisoning = json.dumps(event(1, "data.poisoning_suspected", {"kind": "dataset", "id": DS_CB}))
    raw = poisoning.encode()
    snapshot = GraphSnapshot()
    work = IngestBatch(RuleSet([CORRELATED]), 4, snapshot)
    assert work.handle([raw]).records == 0  # the empty graph: a dataset has no model
    snapshot.set(sample_graph())
    outcome = work.handle([raw])
    assert outcome.records == 2 and not outcome.dead
    groups = []
    for values in outcome.messages.values():
        for value in values:
            for key, ev in decode(value):
                routed = routed_by_key(work.router.rules, key)
                assert routed is not None
                groups.append(routed.group["lineage.model"])
                assert "lineage" not in json.loads(ev.raw or b"")  # routed on, never carried
    assert sorted(groups) == sorted([FRAUD, CHURN])


def test_the_blast_radius_is_in_the_shape_playbooks_read() -> None:
    graph = AssetGraph(
        [
            *sample_graph().nodes(),
            node(API, "assets/x.yaml", T0, tier="critical", attributes={"hardened_version": "4"}),
            node(TEAM, "assets/t.yaml", T0, attributes={"contact": "#fraud-ml"}),
        ],
        sample_graph().edges(),
    )
    view = blast_radius_view(graph, [{"kind": "dataset", "id": "transactions@8be7b4a3"}])
    assert view["models"] == ["fraud-detector"]
    assert sorted(v["id"] for v in view["versions"]) == sorted([V1, V2])
    assert [a["id"] for a in view["aliases"]] == [CHAMPION]
    [endpoint] = view["endpoints"]
    assert endpoint["id"] == API and endpoint["attributes"] == {"hardened_version": "4"}
    assert [k["id"] for k in view["keys"]] == [KEY] and [i["id"] for i in view["images"]] == [IMAGE]
    assert {o["id"] for o in view["owners"]} == {TEAM, PLATFORM}
    assert view["critical"] == [API]
    assert view["roots"] == [DS_TX] and not view["truncated"]
    assert (
        view["size"] == 10
    )  # the dataset, 2 versions, alias, endpoint, model, key, image, 2 teams
    unknown = blast_radius_view(graph, [{"kind": "endpoint", "id": "nope"}])
    assert unknown["unknown"] == [simple_id(NodeKind.endpoint, "nope")] and unknown["size"] == 0
    assert json.loads(json.dumps(view)) == view


def shown_radius() -> dict[str, Any]:
    graph = AssetGraph(
        [*sample_graph().nodes(), node(API, "assets/x.yaml", T0, tier="critical")],
        sample_graph().edges(),
    )
    radius = blast_radius_view(graph, [{"kind": "dataset", "id": "transactions@8be7b4a3"}])
    radius["endpoints"][0]["id"] = "endpoint:<!channel>[red]x[/red]\x1b[2J"  # hostile names
    return radius


def test_the_slack_card_tells_the_blast_radius_escaped() -> None:
    radius = shown_radius()
    blocks = incident_blocks(
        {"id": "i-1", "title": "t", "severity": "high", "blast_radius": radius}
    )
    text = json.dumps(blocks)
    assert "*Blast radius*: 10 assets" in text
    assert "`fraud-detector`" in text and "critical" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "Blast radius" not in json.dumps(incident_blocks({"id": "i-2", "title": "t"}))


def test_incidents_show_prints_the_blast_radius_as_text() -> None:
    console = Console(record=True, width=200, force_terminal=True)
    print_blast_radius(console, shown_radius())
    out = console.export_text()
    assert "blast radius (10)" in out and "fraud-detector" in out and DS_TX in out
    assert "[red]x[/red]" in out  # markup shown, not interpreted
    assert "\x1b[2J" not in console.export_text(styles=True)
    assert blast_rows(
        {"models": ["m"], "owners": [{"id": "team:t", "attributes": {"contact": "#c"}}]}
    ) == [
        ("model", "m", ""),
        ("owners", "team:t", "#c"),
    ]


def export_of(graph: AssetGraph) -> dict[str, Any]:
    """What `responder assets export` writes for these claims (one source each)."""
    return {
        "format": "responder-assets/1",
        "nodes": [
            {
                "source": "mlflow", "id": n.id, "kind": n.kind.value, "name": n.name,
                "tier": n.tier, "tags": {}, "attributes": {}, "at": T0.isoformat(),
            }
            for n in graph.nodes()
        ],
        "edges": [
            {
                "source": "mlflow", "src": e.src, "kind": e.kind.value, "dst": e.dst,
                "attributes": {}, "at": T0.isoformat(),
            }
            for e in graph.edges()
        ],
    }  # fmt: skip


def test_replay_routes_with_an_exported_graph_or_declared_files_and_refuses_junk(
    tmp_path: Path,
) -> None:
    lines = [
        json.dumps(event(1, "data.poisoning_suspected", {"kind": "dataset", "id": DS_CB})),
        json.dumps(event(2, "model.drift", {"kind": "model", "id": "churn", "version": "1"}, 5)),
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    exported = tmp_path / "graph.json"
    data = export_of(sample_graph())
    data["nodes"].append({"source": "x", "id": "not an id", "kind": "model"})  # dropped
    exported.write_text(json.dumps(data))
    graph = graph_from_claims(data)
    assert len(graph) == len(sample_graph())
    rules = Path(__file__).resolve().parents[2] / "rules"

    result = CliRunner().invoke(
        app, ["replay", str(events), "--rules", str(rules), "--json", "--assets", str(exported)]
    )
    assert result.exit_code == 0, result.output
    [incident] = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert incident["rule"] == "data-poisoning" and len(incident["events"]) == 2
    assert incident["group"] == {"lineage.dataset": DS_CB}

    declared = tmp_path / "assets"
    declared.mkdir()
    (declared / "a.yaml").write_text("endpoints:\n  - id: ep\n    serves: churn@champion\n")
    result = CliRunner().invoke(
        app, ["replay", str(events), "--rules", str(rules), "--json", "--assets", str(declared)]
    )
    assert result.exit_code == 0, result.output
    [alone] = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(alone["events"]) == 1  # the files know no trained_on: drift stays out

    for junk in ("[1, 2]", '{"format": "other"}', "{not json", "[" * 100_000):
        exported.write_text(junk)
        bad = CliRunner().invoke(app, ["replay", str(events), "--assets", str(exported)])
        assert bad.exit_code == 1 and "Traceback" not in bad.output
