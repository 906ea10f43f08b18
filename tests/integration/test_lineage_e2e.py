"""Correlation along the asset graph, end to end on a real MLflow registry: two datasets, three
models with versions trained on them, aliases, an endpoint declared in assets/; a poisoning event
on one dataset and drift on one affected model open one incident whose blast radius lists
exactly what was trained on the dataset; the shipped playbook rolls each affected alias back and
a false positive puts every alias back; the audit chain verifies."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from responder.actions.mlflow import MlflowRegistry
from responder.assets import store
from responder.assets.blast_store import get_radius
from responder.assets.declared import load_declared
from responder.assets.lineage import GraphSnapshot, LineageIndex
from responder.assets.mlflow_source import read_registry
from responder.assets.snapshot import load_snapshot
from responder.commands import IncidentCommand
from responder.correlation.replay import replay
from responder.correlation.rules import load_rules
from responder.events.schema import rfc3339
from responder.settings import PlaybookSettings
from tests.support.builders import event
from tests.support.mlflow_lineage import fraud_and_churn
from tests.support.mlflow_registry import add_model
from tests.support.runner_kit import Kit

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

ENDPOINT = """\
teams:
  - id: fraud-ml
    contact: "#fraud-ml"
endpoints:
  - id: fraud-api
    serves: fraud-detector@champion
    tier: critical
    owner: fraud-ml
"""


def sent(n: int, type: str, resource: dict[str, Any], at: datetime) -> dict[str, Any]:
    title = f"{type} on {resource['id']}"
    return event(f"ev-{n}", type=type, source="ml-monitor", severity="high", resource=resource,
                 time=rfc3339(at), title=title)  # fmt: skip


async def test_poisoning_and_drift_along_the_graph_open_one_incident_and_roll_back_its_radius(
    db: Engine, tmp_path: Path
) -> None:
    fraud, churn = fraud_and_churn(
        tmp_path / "mlflow", churn_trained_on={2: ["transactions"], 1: ["chargebacks"]}
    )
    credit = add_model(
        churn, "credit-model", versions=2, clean=(1, 2), champion=2,
        trained_on={1: ["chargebacks"], 2: ["chargebacks"]},
    )  # fmt: skip
    tx = f"transactions@{credit.digests['transactions']}"
    assets_dir = tmp_path / "assets"
    assets_dir.mkdir()
    (assets_dir / "serving.yaml").write_text(textwrap.dedent(ENDPOINT))

    at = datetime.now(UTC) - timedelta(minutes=1)
    with Session(db) as session, session.begin():
        registry = read_registry(fraud.client(), at=at)
        store.replace_source(session, "mlflow", registry.nodes, registry.edges)
        for part in load_declared(assets_dir, at):
            store.replace_source(session, part.source, part.nodes, part.edges)
    snapshot = GraphSnapshot()
    assert load_snapshot(db, snapshot)

    now = datetime.now(UTC)
    events = [
        sent(1, "data.poisoning_suspected", {"kind": "dataset", "id": tx}, now),
        sent(2, "model.drift", {"kind": "model", "id": "fraud-detector", "version": "4"}, now),
    ]
    lines = [json.dumps(e) for e in events]
    result = replay(lines, load_rules(ROOT / "rules"), assets=snapshot.index)
    [incident] = result.incidents
    assert incident.rule == "data-poisoning"
    assert incident.last_change.event_count == 2  # the drift joined the poisoning
    # the same offline from the declared files alone: no trained_on there, so drift stays out
    declared = LineageIndex(snapshot.graph.__class__(
        [n for p in load_declared(assets_dir, at) for n in p.nodes],
        [e for p in load_declared(assets_dir, at) for e in p.edges],
    ))  # fmt: skip
    [alone] = replay(lines, load_rules(ROOT / "rules"), assets=declared).incidents
    assert alone.last_change.event_count == 1

    kit = Kit(
        db=db,
        directory=ROOT / "playbooks",
        settings=PlaybookSettings(lease_s=30),
        models=MlflowRegistry(tracking_uri=fraud.tracking_uri),
        assets=snapshot,
    )
    [rid] = kit.apply(*incident.changes)
    with Session(db) as session:
        radius = get_radius(session, kit.run(rid).incident_id)
    assert radius is not None
    assert sorted(v["name"] for v in radius["versions"]) == [
        "churn-model/2",
        "fraud-detector/3",
        "fraud-detector/4",
    ]
    assert sorted(a["name"] for a in radius["aliases"]) == [
        "churn-model@champion",
        "fraud-detector@champion",
    ]
    assert [e["id"] for e in radius["endpoints"]] == ["endpoint:fraud-api"]
    assert sorted(radius["models"]) == ["churn-model", "fraud-detector"]
    assert radius["critical"] == ["endpoint:fraud-api"]
    assert [o["attributes"]["contact"] for o in radius["owners"]] == ["#fraud-ml"]
    seen = kit.run(rid).incident["blast_radius"]  # what the templates saw when the run started
    assert sorted(seen["models"]) == sorted(radius["models"])
    assert {v["id"] for v in seen["versions"]} == {v["id"] for v in radius["versions"]}

    await kit.drive()
    run = kit.run(rid)
    assert (run.playbook_id, run.status) == ("contain-poisoned-data", "completed")
    moved = {o["name"]: (o["from_version"], o["to_version"], o["moved"])
             for o in kit.steps(rid)["rollback"].output}  # fmt: skip
    assert moved == {"fraud-detector": ("4", "2", True), "churn-model": ("2", "1", True)}
    assert (fraud.predict(), churn.predict(), credit.predict()) == ("2", "1", "2")
    assert "#fraud-ml" in [m.get("channel") for m in kit.slack.posts]  # the owners were told

    kit.command(IncidentCommand(incident_id=run.incident_id, status="false_positive", by="carol"))
    await kit.drive()
    assert kit.run(rid).status == "undone"
    assert (fraud.predict(), churn.predict(), credit.predict()) == ("4", "2", "2")
    assert kit.chain_ok()
