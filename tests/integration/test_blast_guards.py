"""Guards on the blast radius, through the run starter and the runner: a run whose incident's
blast radius is too large, or touches a tier: critical asset, waits for the approvers (or is
only planned); a small one runs; the radius is stored and follows a changed graph."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from responder.assets.blast_store import get_radius, refresh_all
from responder.assets.graph import AssetGraph
from responder.assets.lineage import GraphSnapshot
from responder.assets.model import EdgeKind, NodeKind, edge, node, simple_id
from responder.commands import Decision
from responder.playbooks.blast_guard import blast_guard
from responder.playbooks.schema import Guards
from responder.settings import PlaybookSettings
from tests.support.runner_kit import KEY, Kit, change, event

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, tzinfo=UTC)
KEY_ID = simple_id(NodeKind.api_key, KEY)
PROD = simple_id(NodeKind.endpoint, "scoring-prod")
BATCH = simple_id(NodeKind.service, "batch")


def graph(*, critical: bool) -> AssetGraph:
    """The kit's key used by a production endpoint (critical or not) and a batch service."""
    return AssetGraph(
        [node(PROD, "assets/x.yaml", T0, tier="critical" if critical else "high")],
        [
            edge(PROD, EdgeKind.uses, KEY_ID, "assets/x.yaml", T0),
            edge(BATCH, EdgeKind.uses, KEY_ID, "assets/x.yaml", T0),
        ],
    )


def kit_with(db: Engine, tmp_path: Path, snapshot: GraphSnapshot, guards: str) -> Kit:
    kit = Kit(
        db=db,
        directory=tmp_path / "playbooks",
        settings=PlaybookSettings(lease_s=30),
        assets=snapshot,
    )
    kit.playbook(
        "tell",
        f"""
        id: tell
        title: Tell
        on: {{kind: credential_compromise}}
        guards: {guards}
        steps:
          - {{id: tell, action: slack.notify, with: {{text: "size {{{{ incident.blast_radius.size }}}}"}}}}
        """,
    )
    return kit


def test_the_guard_reads_size_and_critical_assets() -> None:
    guards = Guards(max_blast_radius=2, critical_requires_approval=True)
    assert blast_guard(guards, None) is None
    assert blast_guard(guards, {"size": 2, "critical": []}) is None
    assert "holds 3 assets" in (blast_guard(guards, {"size": 3, "critical": []}) or "")
    held = blast_guard(guards, {"size": 1, "critical": ["endpoint:a"]})
    assert held is not None and "endpoint:a" in held
    assert blast_guard(Guards(), {"size": 10_000, "critical": ["endpoint:a"]}) is None


async def test_a_radius_over_the_limit_waits_for_the_approvers(db: Engine, tmp_path: Path) -> None:
    kit = kit_with(db, tmp_path, GraphSnapshot(graph(critical=False)), "{max_blast_radius: 2}")
    [rid] = kit.apply(change(1))
    await kit.drive()
    run = kit.run(rid)
    assert run.status == "blocked_by_guard"
    assert "max_blast_radius=2: the blast radius holds 3 assets" in (run.error or "")
    assert kit.slack.posts == []
    kit.command(Decision(run_id=rid, approved=True, by="lead"))
    await kit.drive()
    assert kit.run(rid).status == "completed"
    assert kit.slack.posts[-1]["text"].endswith(
        ": size 3"
    )  # the template read incident.blast_radius
    assert any(r.action == "run.blocked_by_guard" for r in kit.audit())
    assert kit.chain_ok()


async def test_a_small_radius_runs_and_a_critical_one_is_only_planned(
    db: Engine, tmp_path: Path
) -> None:
    snapshot = GraphSnapshot(graph(critical=False))
    guards = "{critical_requires_approval: true, blast_radius_action: dry_run}"
    kit = kit_with(db, tmp_path, snapshot, guards)
    [small] = kit.apply(change(1))
    await kit.drive()
    assert (kit.run(small).mode, kit.run(small).status) == ("automatic", "completed")

    snapshot.set(graph(critical=True))
    [big] = kit.apply(change(1, incident_id="inc-2"))
    await kit.drive()
    run = kit.run(big)
    assert (run.mode, run.status) == ("dry_run", "completed")
    [created] = [r for r in kit.audit() if r.action == "run.created" and r.subject == big]
    assert "touches endpoint:scoring-prod" in created.data["dry_run_by_guard"]
    assert len(kit.slack.posts) == 1  # only the first run told anyone


def test_stored_radii_follow_a_changed_graph(db: Engine, tmp_path: Path) -> None:
    snapshot = GraphSnapshot(AssetGraph())
    kit = kit_with(db, tmp_path, snapshot, "{}")
    kit.apply(change(1, incident_id="inc-0"))
    with Session(db) as session:  # no asset graph at all: the sink stores nothing
        assert get_radius(session, "inc-0") is None
    snapshot.set(AssetGraph([node(simple_id(NodeKind.team, "elsewhere"), "assets/t.yaml", T0)]))
    kit.apply(change(1))
    with Session(db) as session:
        before = get_radius(session, "inc-1")
    assert before is not None and before["size"] == 0 and before["unknown"] == [KEY_ID]
    with Session(db) as session, session.begin():
        assert refresh_all(session, graph(critical=True)) == 1
    with Session(db) as session:
        after = get_radius(session, "inc-1")
    assert after is not None and after["critical"] == [PROD] and after["size"] == 3
    with Session(db) as session, session.begin():
        assert refresh_all(session, graph(critical=True)) == 0  # unchanged: nothing written


def test_runs_the_guard_only_plans_count_toward_no_run_limit(db: Engine, tmp_path: Path) -> None:
    """`max_runs_per_hour` counts runs that act: in one batch, the two runs the blast guard
    turned into dry runs (the key a critical endpoint uses) leave the one run an hour to an
    incident on a key the graph does not know."""
    guards = (
        "{critical_requires_approval: true, blast_radius_action: dry_run, max_runs_per_hour: 1}"
    )
    kit = kit_with(db, tmp_path, GraphSnapshot(graph(critical=True)), guards)
    other = {"kind": "api_key", "id": "AKIAOTHER00000000001", "name": "other"}
    runs = kit.apply(
        change(1, incident_id="inc-1"),
        change(1, incident_id="inc-2"),
        change(1, incident_id="inc-3", events=[event("e3", 1, resource=other)]),
        change(1, incident_id="inc-4", events=[event("e4", 1, resource=other)]),
    )
    assert [(kit.run(r).mode, kit.run(r).status) for r in runs] == [
        ("dry_run", "pending"),
        ("dry_run", "pending"),
        ("automatic", "pending"),
        ("automatic", "blocked_by_guard"),
    ]
