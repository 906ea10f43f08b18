"""The shipped playbooks that follow the AI asset chain, run by the runner against real
counterparts: an MLflow registry (versions trained on logged datasets, MLflow's own webhook
sender), moto's WAFv2, and the store on SQLite and PostgreSQL. Each ends with a false positive
whose undo puts everything back."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session

from responder.actions.mlflow import MlflowRegistry
from responder.assets import store
from responder.assets.mlflow_source import read_registry
from responder.assets.webhooks import alias_of, convert, verify
from responder.commands import Decision, IncidentCommand
from responder.correlation.replay import replay
from responder.correlation.rules import load_rules
from responder.events.schema import rfc3339
from responder.incidents.model import IncidentChange
from responder.settings import PlaybookSettings
from tests.integration.test_actions_aws_waf import adapter
from tests.support import builders
from tests.support.aws_server import MotoServer
from tests.support.mlflow_lineage import fraud_and_churn
from tests.support.mlflow_registry import create_registry
from tests.support.runner_kit import Kit, change, event

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = SecretStr("whsec-integration")
VETTED = {"scan": "clean", "approved_by": "alice"}


def changes(events: list[dict[str, Any]], rule: str) -> list[IncidentChange]:
    """What the worker's correlation makes of `events` for the shipped rule `rule`."""
    result = replay([json.dumps(e) for e in events], load_rules(ROOT / "rules"))
    [incident] = [i for i in result.incidents if i.rule == rule]
    return incident.changes


def kit_for(db: Engine, tmp_path: Path, variables: dict[str, Any], **ports: Any) -> Kit:
    return Kit(
        db=db,
        directory=ROOT / "playbooks",
        settings=PlaybookSettings(lease_s=30, vars=variables),
        **ports,
    )


# -- the registry change guard ------------------------------------------------------------------


def mlflow_delivery(monkeypatch: pytest.MonkeyPatch, name: str, alias: str, version: str) -> Any:
    """MLflow's own sender builds and signs the alias delivery (captured, no network)."""
    from mlflow.entities.webhook import Webhook, WebhookAction, WebhookEntity, WebhookEvent
    from mlflow.webhooks import ModelVersionAliasCreatedPayload
    from mlflow.webhooks.delivery import _send_webhook_request

    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "https")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    captured: list[tuple[bytes, dict[str, str]]] = []

    class Capture:
        def post(self, url: str, data: bytes, headers: dict[str, str], timeout: float) -> Any:
            captured.append((data, headers))

    kind = WebhookEvent(WebhookEntity.MODEL_VERSION_ALIAS, WebhookAction.CREATED)
    hook = Webhook(
        webhook_id="w1",
        name="responder",
        url="https://127.0.0.1/v1/webhooks/mlflow",
        events=[kind],
        creation_timestamp=0,
        last_updated_timestamp=0,
        secret=SECRET.get_secret_value(),
    )
    payload = ModelVersionAliasCreatedPayload(name=name, alias=alias, version=version)
    _send_webhook_request(hook, payload, kind, cast(Any, Capture()))
    [(body, headers)] = captured
    return verify(body, headers, SECRET, now=time.time())


def receive_checked(db: Engine, delivery: Any) -> dict[str, Any]:
    """What a receiver that checks releases does: facts from before the move, then the move."""
    moved = alias_of(delivery)
    assert moved is not None
    with Session(db) as session, session.begin():
        facts = store.alias_facts(session, *moved)
        received = convert(delivery, facts=facts)
        assert store.apply_update(session, received.update)
    assert received.event is not None
    return received.event


async def test_an_unvetted_release_is_moved_back_after_approval_and_forward_on_undo(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = create_registry(
        tmp_path / "mlflow",
        versions=3,
        clean=(1, 2, 3),
        version_tags={2: {"approved_by": "alice"}},
        champion=2,
    )
    with Session(db) as session, session.begin():
        snapshot = read_registry(reg.client(), at=datetime.now(UTC) - timedelta(minutes=1))
        store.replace_source(session, "mlflow", snapshot.nodes, snapshot.edges)

    reg.client().set_registered_model_alias(reg.name, "champion", "3")  # nobody approved v3
    alias_event = receive_checked(db, mlflow_delivery(monkeypatch, reg.name, "champion", "3"))
    attributes = alias_event["attributes"]
    assert attributes["release"]["problems"] == ["no approval (tag approved_by)"]
    assert attributes["previous_version"] == "2"
    assert attributes["previous_release"]["check"] == "passed"

    kit = kit_for(db, tmp_path, {}, models=MlflowRegistry(tracking_uri=reg.tracking_uri))
    [rid] = kit.apply(*changes([alias_event], "registry-change-guard"))
    await kit.drive()
    assert kit.run(rid).playbook_id == "revert-unvetted-release"
    assert kit.run(rid).status == "waiting"
    assert reg.predict() == "3"  # nothing before the decision

    kit.command(Decision(run_id=rid, approved=True, by="alice"))
    await kit.drive()
    steps = kit.steps(rid)
    assert steps["revert"].output["to_version"] == "2"
    assert reg.predict() == "2"
    assert "is back on version 2" in kit.slack.posts[-1]["text"]

    incident_id = kit.run(rid).incident_id
    kit.command(IncidentCommand(incident_id=incident_id, status="false_positive", by="carol"))
    await kit.drive()
    assert kit.steps(rid)["revert"].status == "undone"
    assert reg.predict() == "3"
    assert kit.chain_ok()


async def test_a_vetted_release_opens_nothing(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = create_registry(
        tmp_path / "mlflow", versions=2, clean=(1, 2), version_tags={2: VETTED}, champion=1
    )
    with Session(db) as session, session.begin():
        snapshot = read_registry(reg.client(), at=datetime.now(UTC) - timedelta(minutes=1))
        store.replace_source(session, "mlflow", snapshot.nodes, snapshot.edges)
    alias_event = receive_checked(db, mlflow_delivery(monkeypatch, reg.name, "champion", "2"))
    assert alias_event["attributes"]["release"]["check"] == "passed"
    result = replay([json.dumps(alias_event)], load_rules(ROOT / "rules"))
    assert result.incidents == []


# -- poisoned training data ---------------------------------------------------------------------


def poisoning_event(dataset: str) -> dict[str, Any]:
    return builders.event(
        "poison-1",
        type="data.poisoning_suspected",
        source="poison-monitor",
        severity="high",
        attributes={"score": 0.93},
        time=rfc3339(datetime.now(UTC)),
        title="Label flipping suspected",
        resource={"kind": "dataset", "id": dataset, "name": dataset.split("@")[0]},
    )


async def test_poisoned_data_is_quarantined_and_every_model_rolled_back_then_undone(
    db: Engine, tmp_path: Path
) -> None:
    fraud, churn = fraud_and_churn(
        tmp_path / "mlflow", churn_trained_on={2: ["chargebacks"], 1: ["transactions"]}
    )
    digest = churn.digests["transactions"]
    kit = kit_for(
        db,
        tmp_path,
        {"poisoning_candidate_models": ["fraud-detector", "churn-model"]},
        models=MlflowRegistry(tracking_uri=fraud.tracking_uri),
    )
    [rid] = kit.apply(*changes([poisoning_event(f"transactions@{digest}")], "data-poisoning"))
    await kit.drive()
    run = kit.run(rid)
    assert (run.playbook_id, run.status) == ("contain-poisoned-data", "completed")

    steps = kit.steps(rid)
    assert [o["tagged"] for o in steps["quarantine"].output] == [["4", "3"], ["1"]]
    version_tags = fraud.client().get_model_version("fraud-detector", "4").tags
    assert version_tags["quarantine"] == f"transactions@{digest}"
    assert [(o["name"], o["to_version"], o["moved"]) for o in steps["rollback"].output] == [
        ("fraud-detector", "2", True),
        ("churn-model", "2", False),  # its champion never saw the data
    ]
    assert (fraud.predict(), churn.predict()) == ("2", "2")
    text = kit.slack.posts[-1]["text"]
    assert "Rolled back: fraud-detector@champion 4 -&gt; 2." in text  # escaped for Slack
    [ticket] = kit.http.requests
    assert ticket["json"]["rolled_back"] == ["fraud-detector"]
    assert ticket["json"]["left_as_they_are"] == ["churn-model"]

    kit.command(IncidentCommand(incident_id=run.incident_id, status="false_positive", by="carol"))
    await kit.drive()
    assert kit.run(rid).status == "undone"
    assert (fraud.predict(), churn.predict()) == ("4", "2")
    assert "quarantine" not in fraud.client().get_model_version("fraud-detector", "4").tags
    assert "quarantine" not in churn.client().get_model_version("churn-model", "1").tags
    assert kit.chain_ok()


# -- an adversarial-input burst -----------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Any:
    with MotoServer() as server:
        yield server


async def test_a_burst_is_blocked_in_both_sets_once_and_unblocked_exactly(
    db: Engine, tmp_path: Path, moto: MotoServer
) -> None:
    v4_name, v4_id = moto.create_ip_set(["203.0.113.10/32"])
    v6_name, v6_id = moto.create_ip_set(ip_version="IPV6")
    variables = {
        "waf_ip_set_name": v4_name,
        "waf_ip_set_id": v4_id,
        "waf_ipv6_ip_set_name": v6_name,
        "waf_ipv6_ip_set_id": v6_id,
        "waf_never_block": ["198.51.100.0/24"],
    }
    kit = kit_for(db, tmp_path, variables, waf=adapter(moto))
    sources = ["203.0.113.9", "203.0.113.10", "2001:db8::66", "198.51.100.7", "10.0.0.8"]
    events = [
        event(f"adv-{i}", i / 10, type="input.adversarial", actor={"ip": sources[i % 5]})
        for i in range(12)
    ]
    [rid] = kit.apply(change(kind="adversarial_attack", events=events))
    await kit.drive()
    assert kit.run(rid).playbook_id == "block-adversarial-sources"
    steps = kit.steps(rid)
    assert steps["block"].output["added"] == ["203.0.113.9/32"]
    assert steps["block"].output["already_present"] == ["203.0.113.10/32"]
    assert [r["address"] for r in steps["block"].output["refused"]] == [
        "198.51.100.7",
        "10.0.0.8",
    ]
    assert steps["block_v6"].output["added"] == ["2001:db8::66/128"]
    assert sorted(moto.ip_set(v4_name, v4_id)["Addresses"]) == ["203.0.113.10/32", "203.0.113.9/32"]
    assert moto.ip_set(v6_name, v6_id)["Addresses"] == ["2001:db8::66/128"]
    assert moto.count("UpdateIPSet", Name=v4_name) == 1
    assert steps["harden"].status == "skipped"  # no graph in templates yet
    assert "Blocked in " + v4_name + ": 203.0.113.9/32" in kit.slack.posts[-1]["text"]

    kit.command(IncidentCommand(incident_id="inc-1", status="false_positive", by="carol"))
    await kit.drive()
    assert moto.ip_set(v4_name, v4_id)["Addresses"] == ["203.0.113.10/32"]
    assert moto.ip_set(v6_name, v6_id)["Addresses"] == []
    assert kit.chain_ok()
