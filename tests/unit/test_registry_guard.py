"""The registry change guard: what the graph says about a moved alias (`assets.release`), how
the webhook conversion carries it into the `model.alias_changed` event, and the shipped rule
that opens an incident on it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from responder.assets.graph import AssetGraph
from responder.assets.model import MLFLOW, WEBHOOK, EdgeKind, edge, node
from responder.assets.release import AliasFacts, VersionFacts, alias_facts
from responder.assets.webhooks import alias_of, convert, verify
from responder.correlation.replay import replay
from responder.correlation.rules import load_rules
from tests.unit.test_assets_webhooks import NOW, SECRET, delivery

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
VETTED = {"scan": "clean", "approved_by": "alice"}


def graph(*, v5: dict[str, str] | None = None, v7: dict[str, str] | None = None) -> AssetGraph:
    """fraud v5 and v7 (tags as given; None: not in the graph), @champion -> 5."""
    nodes = [node("model:fraud", MLFLOW, T0)]
    for version, tags in (("5", v5), ("7", v7)):
        if tags is not None:
            nodes.append(node(f"model_version:fraud/{version}", MLFLOW, T0, tags=tags))
    edges = [
        edge("alias:fraud@champion", EdgeKind.points_to, "model_version:fraud/3", MLFLOW, T0),
        edge(
            "alias:fraud@champion",
            EdgeKind.points_to,
            "model_version:fraud/5",
            WEBHOOK,
            T0.replace(hour=10),
        ),
    ]
    return AssetGraph(nodes, edges)


def test_a_vetted_version_passes() -> None:
    assert VersionFacts("7", VETTED).check() == {
        "check": "passed",
        "problems": [],
        "scan": "clean",
        "approved_by": "alice",
    }


@pytest.mark.parametrize(
    ("tags", "problems"),
    [
        ({"approved_by": "alice"}, ["not scanned"]),
        ({"scan": "failed", "approved_by": "a"}, ["scan is 'failed', not 'clean'"]),
        ({"scan": "clean", "approved_by": ""}, ["no approval (tag approved_by)"]),
        ({**VETTED, "quarantine": "transactions"}, ["quarantined: trained on transactions"]),
        (
            None,
            ["version unknown to the asset graph", "not scanned", "no approval (tag approved_by)"],
        ),
    ],
)
def test_what_fails_the_check(tags: dict[str, str] | None, problems: list[str]) -> None:
    check = VersionFacts("7", tags).check()
    assert check["check"] == "failed"
    assert check["problems"] == problems


def test_facts_name_the_previous_version_from_the_newest_pointer() -> None:
    facts = alias_facts(graph(v5=VETTED, v7={"scan": "clean"}), "fraud", "champion", "7")
    assert facts.previous == VersionFacts("5", VETTED)
    attributes = facts.attributes()
    assert attributes["previous_version"] == "5"
    assert attributes["previous_release"]["check"] == "passed"
    assert attributes["release"]["problems"] == ["no approval (tag approved_by)"]


def test_an_alias_the_graph_never_saw_has_no_previous_version() -> None:
    facts = alias_facts(graph(v7=VETTED), "fraud", "canary", "7")
    assert facts.previous is None
    assert set(facts.attributes()) == {"release"}
    # A previous version referred to but not described (a placeholder) is unknown, not vetted.
    facts = alias_facts(graph(v7=VETTED), "fraud", "champion", "7")
    assert facts.attributes()["previous_release"]["check"] == "failed"


def moved(version: str = "7", facts: AliasFacts | None = None) -> dict[str, Any]:
    data = {"name": "fraud", "alias": "champion", "version": version}
    received = convert(verify(*delivery(data=data), SECRET, now=NOW), facts=facts)
    assert received.event is not None
    return received.event


def test_the_event_carries_the_check_only_when_given_facts_for_that_version() -> None:
    assert "release" not in moved()["attributes"]
    facts = alias_facts(graph(v5=VETTED, v7={}), "fraud", "champion", "7")
    attributes = moved(facts=facts)["attributes"]
    assert attributes["release"]["check"] == "failed"
    assert attributes["previous_version"] == "5"
    assert "release" not in moved("8", facts)["attributes"]  # facts about another version
    json.dumps(attributes)  # plain JSON


def test_alias_of_names_only_alias_moves() -> None:
    move = verify(
        *delivery(data={"name": "fraud", "alias": "champion", "version": "7"}), SECRET, now=NOW
    )
    assert alias_of(move) == ("fraud", "champion", "7")
    tag = verify(
        *delivery(
            "model_version_tag", "set", {"name": "f", "version": "1", "key": "k", "value": "v"}
        ),
        SECRET,
        now=NOW,
    )
    assert alias_of(tag) is None
    bad = verify(*delivery(data={"name": "fraud", "alias": "no spaces!"}), SECRET, now=NOW)
    assert alias_of(bad) is None


def test_the_shipped_rule_opens_an_incident_on_a_failed_check_only() -> None:
    rules = load_rules(ROOT / "rules")
    failed = moved(
        facts=alias_facts(graph(v5=VETTED, v7={"scan": "clean"}), "fraud", "champion", "7")
    )
    passed = moved(facts=alias_facts(graph(v5=VETTED, v7=VETTED), "fraud", "champion", "7"))
    assert [r.id for r in rules.matching(failed)] == ["registry-change-guard"]
    assert rules.matching(passed) == []
    assert rules.matching(moved()) == []  # not checked: not this rule's to judge
    guard = rules.rules["registry-change-guard"]
    assert guard.group_by == ["resource.name", "attributes.alias", "resource.version"]
    assert guard.incident.kind == "unvetted_model_release"


def test_the_shipped_poisoning_rule_matches_datasets() -> None:
    rules = load_rules(ROOT / "rules")
    event = {
        "id": "p1",
        "source": "poison-monitor",
        "type": "data.poisoning_suspected",
        "time": "2026-11-25T10:02:00Z",
        "severity": "high",
        "title": "t",
        "resource": {"kind": "dataset", "id": "transactions@8be7b4a3", "name": "transactions"},
        "attributes": {},
        "labels": {},
        "schema_version": "1",
    }
    assert [r.id for r in rules.matching(event)] == ["data-poisoning"]
    [opened] = replay([json.dumps(event)], rules).incidents
    assert opened.changes[0].group == {"lineage.dataset": "dataset:transactions@8be7b4a3"}
    # poisoning reported on a model is model-integrity's: it has no dataset of its own to group
    # on (with an asset graph it would join the incidents of the datasets it was trained on)
    on_model = {**event, "resource": {"kind": "model", "id": "m", "name": "fraud"}}
    assert [i.rule for i in replay([json.dumps(on_model)], rules).incidents] == ["model-integrity"]
