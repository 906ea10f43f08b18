"""The shipped playbooks that follow the AI asset chain: what they plan on known data, and what
their messages and tickets say once the steps have real outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from responder.actions.catalog import REGISTRY
from responder.playbooks import load_playbooks, plan_run
from responder.playbooks.plan import PlannedStep, step_context
from responder.playbooks.schema import Playbook
from responder.playbooks.templating import render

ROOT = Path(__file__).resolve().parents[2]


def shipped(playbook_id: str) -> Playbook:
    return load_playbooks(ROOT / "playbooks", REGISTRY).get(playbook_id)


def planned(steps: list[PlannedStep]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        out.setdefault(step.id, []).append(step.to_json())
    return out


def rendered(
    playbook: Playbook,
    step_id: str,
    *,
    incident: dict[str, Any],
    events: list[dict[str, Any]],
    outputs: dict[str, Any],
    variables: dict[str, Any] | None = None,
) -> Any:
    context = step_context(incident, events, outputs, playbook=playbook, variables=variables)
    return render(playbook.step(step_id).with_, context, step_id)


# -- revert-unvetted-release ---------------------------------------------------------------------

RELEASE_INCIDENT = {
    "id": "inc-9",
    "title": "fraud@champion moved to unvetted version 7",
    "group": {"resource.name": "fraud", "attributes.alias": "champion", "resource.version": "7"},
}


def alias_event(previous: str | None = "5", previous_check: str = "passed") -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "alias": "champion",
        "release": {"check": "failed", "problems": ["not scanned", "no approval"]},
    }
    if previous is not None:
        attributes["previous_version"] = previous
        attributes["previous_release"] = {"check": previous_check, "problems": []}
    return {
        "id": "d1",
        "type": "model.alias_changed",
        "resource": {"kind": "model", "id": "fraud", "name": "fraud", "version": "7"},
        "attributes": attributes,
    }


def test_revert_asks_then_moves_back_guarded_by_expect_current() -> None:
    playbook = shipped("revert-unvetted-release")
    steps = planned(plan_run(playbook, incident=RELEASE_INCIDENT, events=[alias_event()]).steps)
    [approve] = steps["approve"]
    assert approve["with"]["prompt"] == (
        "fraud@champion moved to unvetted version 7: not scanned; no approval. "
        "Move fraud@champion back to version 5?"
    )
    assert approve["with"]["on_timeout"] == "deny"
    [revert] = steps["revert"]
    assert revert["if"] == "<depends on outputs>"
    assert revert["with"] == {
        "name": "fraud",
        "alias": "champion",
        "version": "5",
        "expect_current": "7",
    }
    assert revert["undo"]["with"]["expect_current"] == "<output of revert.to_version>"


@pytest.mark.parametrize(
    ("event", "approved", "revert", "says"),
    [
        (alias_event(), True, {"from_version": "7", "to_version": "5"}, ":rewind: fraud@champion is back on version 5 (from unvetted 7; approved by alice)."),
        (alias_event(), False, None, "moving it back was not approved (not now)."),
        (alias_event(None), True, None, "no vetted earlier version to go back to."),
        (alias_event("5", "failed"), True, None, "no vetted earlier version to go back to."),
        (alias_event(), True, None, ":x: fraud@champion: moving it back failed"),
    ],
)  # fmt: skip
def test_revert_tells_the_channel_what_happened(
    event: dict[str, Any], approved: bool, revert: dict[str, Any] | None, says: str
) -> None:
    playbook = shipped("revert-unvetted-release")
    decision = {"approved": approved, "decided_by": "alice", "reason": "not now"}
    context = step_context(
        RELEASE_INCIDENT, [event], {"approve": decision}, playbook=playbook, variables={}
    )
    assert render(playbook.step("revert").if_, context, "if") in (
        approved and event["attributes"].get("previous_release", {}).get("check") == "passed",
    )
    text = rendered(
        playbook,
        "notify",
        incident=RELEASE_INCIDENT,
        events=[event],
        outputs={"approve": decision, "revert": revert},
    )["text"]
    assert says in text
    assert text.endswith("not scanned; no approval.")


# -- contain-poisoned-data -----------------------------------------------------------------------

POISON_INCIDENT = {
    "id": "inc-7",
    "title": "Training data transactions@8be7b4a3 suspected poisoned",
    "severity": "high",
    "group": {"lineage.dataset": "dataset:transactions@8be7b4a3"},
}


def test_poisoning_follows_the_blast_radius_else_the_configured_models() -> None:
    playbook = shipped("contain-poisoned-data")
    configured = {"poisoning_candidate_models": ["fraud", "churn"]}
    steps = planned(
        plan_run(playbook, incident=POISON_INCIDENT, events=[], variables=configured).steps
    )
    assert [s["with"]["name"] for s in steps["rollback"]] == ["fraud", "churn"]
    assert steps["rollback"][0]["with"] == {
        "name": "fraud",
        "alias": "champion",
        "strategy": "last_known_good",
        "exclude_trained_on": "dataset:transactions@8be7b4a3",
        "if_no_target": "stay",
    }
    assert [s["with"]["name"] for s in steps["quarantine"]] == ["fraud", "churn"]
    assert steps["quarantine"][0]["with"]["dataset"] == "dataset:transactions@8be7b4a3"
    assert steps["notify_owners"][0]["skipped"] == "for_each is empty"

    with_graph = {
        **POISON_INCIDENT,
        "blast_radius": {
            "models": ["credit"],
            "owners": [
                {"id": "team:fraud-ml", "attributes": {"contact": "#fraud-ml"}},
                {"id": "team:nobody", "attributes": {}},
            ],
        },
    }
    steps = planned(plan_run(playbook, incident=with_graph, events=[], variables=configured).steps)
    assert [s["with"]["name"] for s in steps["rollback"]] == ["credit"]
    assert [s["with"]["channel"] for s in steps["notify_owners"]] == ["#fraud-ml"]

    graph_knows_none = {**POISON_INCIDENT, "blast_radius": {"models": [], "owners": []}}
    steps = planned(
        plan_run(playbook, incident=graph_knows_none, events=[], variables=configured).steps
    )
    assert [s["with"]["name"] for s in steps["rollback"]] == ["fraud", "churn"]

    nothing = planned(plan_run(playbook, incident=POISON_INCIDENT, events=[]).steps)
    assert nothing["rollback"][0]["skipped"] == "for_each is empty"


def test_poisoning_reports_what_moved_and_what_stayed() -> None:
    playbook = shipped("contain-poisoned-data")
    outputs = {
        "quarantine": [{"name": "fraud", "tagged": ["6", "5"]}, {"name": "churn", "tagged": []}],
        "rollback": [
            {"name": "fraud", "alias": "champion", "from_version": "6", "to_version": "2",
             "moved": True},
            {"name": "churn", "alias": "champion", "from_version": "3", "to_version": "3",
             "moved": False, "reason": "version 3 was not trained on transactions@8be7b4a3"},
        ],
    }  # fmt: skip
    kwargs: dict[str, Any] = {"incident": POISON_INCIDENT, "events": [], "outputs": outputs}
    text = rendered(playbook, "notify", **kwargs)["text"]
    assert "Rolled back: fraud@champion 6 -> 2." in text
    assert "Left as they are: churn (version 3 was not trained on transactions@8be7b4a3)." in text
    ticket = rendered(playbook, "ticket", **kwargs)["json"]
    assert ticket["rolled_back"] == ["fraud"]
    assert ticket["left_as_they_are"] == ["churn"]
    assert ticket["quarantined"] == ["fraud", "churn"]
    none = rendered(
        playbook, "notify", incident=POISON_INCIDENT, events=[], outputs={"rollback": None}
    )
    assert "No affected model is known" in none["text"]


def test_poisoning_undo_moves_back_only_what_moved() -> None:
    playbook = shipped("contain-poisoned-data")
    undo = playbook.step("rollback").undo
    assert undo is not None
    for moved, version in ((True, "6"), (False, None)):
        out = {"name": "fraud", "alias": "champion", "from_version": "6", "to_version": "2"}
        context = step_context(
            POISON_INCIDENT, [], {"rollback": {**out, "moved": moved}}, playbook=playbook
        )
        assert render(undo.with_, context, "undo")["version"] == version


# -- block-adversarial-sources -------------------------------------------------------------------

BURST = {
    "id": "inc-3",
    "title": "Adversarial input burst against fraud-scorer-v3",
    "event_count": 4,
    "group": {"resource.id": "fraud-scorer-v3"},
}
WAF = {"waf_ip_set_name": "blocklist", "waf_ip_set_id": "abc-123"}


def burst_events(*ips: str | None) -> list[dict[str, Any]]:
    return [
        {"id": f"adv-{i}", "actor": {"ip": ip} if ip else {}, "resource": {"id": "fraud-scorer-v3"}}
        for i, ip in enumerate(ips)
    ]


def test_block_takes_the_sources_when_a_set_is_configured() -> None:
    playbook = shipped("block-adversarial-sources")
    events = burst_events("192.0.2.10", "192.0.2.11", "192.0.2.10", None)
    steps = planned(plan_run(playbook, incident=BURST, events=events, variables=WAF).steps)
    [block] = steps["block"]
    assert block["with"]["addresses"] == ["192.0.2.10", "192.0.2.11"]
    assert block["with"]["skip_refused"] is True
    assert block["undo"]["with"]["addresses"] == "<output of block.added>"
    assert steps["block_v6"][0]["skipped"] == "if was false"
    assert steps["approve_hardened"][0]["skipped"] == "if was false"  # no graph in templates yet
    assert steps["harden"][0]["skipped"] == "for_each is empty"

    unconfigured = planned(plan_run(playbook, incident=BURST, events=events).steps)
    assert unconfigured["block"][0]["skipped"] == "if was false"


def test_a_declared_hardened_version_is_proposed_once_the_graph_is_there() -> None:
    playbook = shipped("block-adversarial-sources")
    endpoint = {
        "id": "endpoint:fraud-scorer-v3",
        "attributes": {"hardened_version": "4", "hardened_alias": "fraud-scorer@champion"},
    }
    incident = {
        **BURST,
        "blast_radius": {"endpoints": [endpoint, {"id": "endpoint:other", "attributes": {}}]},
    }
    steps = planned(plan_run(playbook, incident=incident, events=burst_events("192.0.2.1")).steps)
    [approve] = steps["approve_hardened"]
    assert "fraud-scorer@champion -> version 4?" in approve["with"]["prompt"]
    [harden] = steps["harden"]
    assert harden["with"] == {"name": "fraud-scorer", "alias": "champion", "version": "4"}


def test_block_tells_what_it_blocked_and_refused() -> None:
    playbook = shipped("block-adversarial-sources")
    block = {
        "ip_set": {"name": "blocklist", "id": "abc-123"},
        "added": ["192.0.2.10/32"],
        "refused": [{"address": "127.0.0.1", "reason": "never a client"}],
    }
    harden = [{"name": "fraud-scorer", "alias": "champion", "to_version": "4"}]
    text = rendered(
        playbook,
        "notify",
        incident=BURST,
        events=[],
        outputs={"block": block, "block_v6": None, "harden": harden},
    )["text"]
    assert "Blocked in blocklist: 192.0.2.10/32 (refused as unsafe to block: 127.0.0.1)." in text
    assert "fraud-scorer@champion now serves hardened version 4." in text
    nothing = rendered(
        playbook,
        "notify",
        incident=BURST,
        events=[],
        outputs={"block": None, "block_v6": None, "harden": None},
    )["text"]
    assert "No WAF IP set is configured: nothing blocked." in nothing
