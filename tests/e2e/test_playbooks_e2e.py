"""The shipped playbooks end to end: real worker processes, Kafka, PostgreSQL, and the real
counterparts of every action on loopback (moto's IAM, a Slack Web API server, an MLflow
registry, an HTTP ticket server). Decisions go through `responder.commands`, the path the CLI
and the API use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from responder.audit.store import verify_chain
from responder.commands import Decision, IncidentCommand, send_command
from responder.incidents.store import get_incident, list_incidents
from responder.playbooks.runs import PlaybookRun, list_runs, steps_of
from responder.storage.database import make_engine, upgrade
from tests.conftest import ROOT
from tests.support.aws_server import MotoServer
from tests.support.harness import (
    Worker,
    kafka_settings,
    keyed_engine,
    produce,
    topic,
    wait_for,
    worker_env,
)
from tests.support.signing import SIGNER
from tests.support.slack_server import SlackServer
from tests.support.ticket_server import TicketServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TOKEN = "xoxb-e2e-token"


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def leak_then_use(key: str, user: str) -> list[bytes]:
    arn = f"arn:aws:iam::123456789012:user/{user}"
    common = {"resource": {"kind": "api_key", "id": key, "name": user}, "labels": {"env": "prod"}}
    docs = [
        {"id": f"gl-{key}", "source": "gitleaks", "type": "secret.leaked", "time": at(0),
         "severity": "high", "title": "AWS key committed", **common},
        {"id": f"ct-{key}", "source": "cloudtrail", "type": "key.used", "time": at(12),
         "severity": "medium", "title": "key used", "actor": {"id": arn, "ip": "203.0.113.7"},
         **common},
    ]  # fmt: skip
    return [json.dumps(d).encode() for d in docs]


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def tickets() -> Iterator[TicketServer]:
    with TicketServer() as server:
        yield server


@pytest.fixture
def database(pg_schema_url: str) -> str:
    upgrade(make_engine(pg_schema_url))
    return pg_schema_url


def env_for(
    kafka: str, db: str, unique: str, *, playbooks: Path, moto: MotoServer, slack: SlackServer
) -> dict[str, str]:
    env = worker_env(kafka, db, ROOT / "rules", unique, playbooks_dir=playbooks)
    env.update(
        {
            "RESPONDER_SLACK__BOT_TOKEN": TOKEN,
            "RESPONDER_SLACK__BASE_URL": slack.base_url,
            "RESPONDER_AWS__ENDPOINT_URL": moto.endpoint_url,
            "RESPONDER_AWS__ACCESS_KEY_ID": "testing",
            "RESPONDER_AWS__SECRET_ACCESS_KEY": "testing",
            "RESPONDER_PLAYBOOKS__LEASE_S": "2",
        }
    )
    return env


def command(bootstrap: str, unique: str, cmd: Decision | IncidentCommand) -> None:
    asyncio.run(send_command(kafka_settings(bootstrap, unique), cmd, SIGNER))


def runs(db: str, playbook: str) -> list[PlaybookRun]:
    with Session(make_engine(db)) as session:
        return [r for r in list_runs(session) if r.playbook_id == playbook]


def run_in(db: str, playbook: str, *statuses: str) -> PlaybookRun:
    def found() -> PlaybookRun | None:
        return next((r for r in runs(db, playbook) if r.status in statuses), None)

    return wait_for(found, 60)


def chain_ok(db: str) -> bool:
    with Session(keyed_engine(db)) as session:
        count, broken = verify_chain(session)
        return broken is None and count > 0


@dataclass
class World:
    """One test's world: its topics, the database, moto's IAM and the Slack server."""

    kafka: str
    database: str
    unique: str
    tmp_path: Path
    moto: MotoServer
    slack: SlackServer

    def env(self, playbooks: Path = ROOT / "playbooks") -> dict[str, str]:
        return env_for(
            self.kafka,
            self.database,
            self.unique,
            playbooks=playbooks,
            moto=self.moto,
            slack=self.slack,
        )


@pytest.fixture
def w(
    kafka_bootstrap: str,
    database: str,
    unique: str,
    tmp_path: Path,
    moto: MotoServer,
    slack: SlackServer,
) -> World:
    return World(kafka_bootstrap, database, unique, tmp_path, moto, slack)


def ticket_env(tickets: TicketServer) -> dict[str, str]:
    """What lets playbooks reach the ticket server (`vars.ticket_url`)."""
    return {
        "RESPONDER_HTTP__ALLOWED_HOSTS": json.dumps([tickets.host]),
        "RESPONDER_PLAYBOOKS__VARS": json.dumps({"ticket_url": tickets.url}),
    }


def test_leaked_key_waits_for_approval_then_deactivates_notifies_and_undoes(w: World) -> None:
    user, key = w.moto.create_user_with_key(f"svc-{w.unique}")
    env = w.env()
    worker = Worker(env, w.tmp_path / "worker.log").start()
    try:
        produce(w.kafka, topic(w.unique, "events"), leak_then_use(key, user))
        waiting = run_in(w.database, "contain-leaked-credential", "waiting")
        asks = w.slack.wait_for(lambda calls: len(calls) >= 1)
        assert any(b.get("block_id") == "approval" for b in asks[0]["payload"]["blocks"])
        assert w.moto.key_status(user, key) == "Active"  # nothing before the decision

        command(w.kafka, w.unique, Decision(run_id=waiting.id, approved=True, by="alice"))
        done = run_in(w.database, "contain-leaked-credential", "completed")
        assert w.moto.key_status(user, key) == "Inactive"
        assert w.moto.count("UpdateAccessKey", AccessKeyId=key, Status="Inactive") == 1
        with Session(make_engine(w.database)) as session:
            steps = steps_of(session, done.id)
            incident = get_incident(session, done.incident_id)
        assert steps["approve"].decided_by == "alice"
        assert steps["deactivate"].output["user_name"] == user
        assert incident is not None and incident.status == "acknowledged"
        posts = [c for c in w.slack.calls_to("chat.postMessage") if c["token"] == TOKEN]
        assert any("Deactivated leaked AWS access key" in p["payload"]["text"] for p in posts)
        assert w.slack.calls_to("chat.update")  # the approval request shows the decision

        # An analyst says it was a false positive: the deactivation is undone.
        command(
            w.kafka,
            w.unique,
            IncidentCommand(incident_id=done.incident_id, status="false_positive", by="carol"),
        )
        run_in(w.database, "contain-leaked-credential", "undone")
        assert w.moto.key_status(user, key) == "Active"
        assert chain_ok(w.database)
    finally:
        worker.stop()


def test_killed_between_steps_the_run_completes_with_each_side_effect_once(
    w: World, tickets: TicketServer
) -> None:
    playbooks = w.tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "contain.yaml").write_text(
        """
id: contain-then-ticket
title: Deactivate, ticket, tell
on: {kind: credential_compromise}
guards: {require_evidence: false}
steps:
  - id: deactivate
    action: aws.iam.deactivate_access_key
    with: {access_key_id: "{{ incident.group['resource.id'] }}"}
  - id: ticket
    action: http.request
    with: {url: "{{ vars.ticket_url }}", json: {key: "{{ steps.deactivate.output.access_key_id }}"}}
  - id: notify
    action: slack.notify
    with: {text: "ticket {{ steps.ticket.output.json.id }}"}
"""
    )
    user, key = w.moto.create_user_with_key(f"svc-{w.unique}")
    env = w.env(playbooks=playbooks)
    env.update(ticket_env(tickets))
    tickets.hold.clear()  # the first ticket request hangs: the worker dies in step 2

    first = Worker(env, w.tmp_path / "first.log").start()
    produce(w.kafka, topic(w.unique, "events"), leak_then_use(key, user))
    assert tickets.received.wait(60), first.log()[-3000:]
    assert w.moto.key_status(user, key) == "Inactive"  # step 1 is done
    first.kill()
    tickets.hold.set()

    second = Worker(env, w.tmp_path / "second.log").start()
    try:
        done = run_in(w.database, "contain-then-ticket", "completed")
        assert w.moto.count("UpdateAccessKey", AccessKeyId=key, Status="Inactive") == 1
        assert len(tickets.requests) == 2  # the interrupted step ran again ...
        keys = {r["headers"]["Idempotency-Key"] for r in tickets.requests}
        assert keys == {f"{done.id}:ticket"}  # ... with the same idempotency key
        notes = [
            c for c in w.slack.calls_to("chat.postMessage") if "ticket T-" in str(c["payload"])
        ]
        assert len(notes) == 1
        with Session(make_engine(w.database)) as session:
            steps = steps_of(session, done.id)
        assert (steps["deactivate"].attempts, steps["ticket"].attempts) == (1, 2)
        assert chain_ok(w.database)
    finally:
        second.stop()


def test_vulnerable_serving_image_notifies_and_opens_a_ticket(
    w: World, tickets: TicketServer
) -> None:
    env = w.env()
    env.update(ticket_env(tickets))
    image = f"registry/ml/serving-{w.unique}:1.4"
    event = {
        "id": f"trivy-{w.unique}",
        "source": "trivy",
        "type": "vulnerability.found",
        "time": at(0),
        "severity": "critical",
        "title": "CVE-2025-1234 in libfoo",
        "resource": {"kind": "image", "id": image},
        "attributes": {"cve": "CVE-2025-1234", "cvss": 9.8},
        "labels": {"component": "model-serving", "env": "prod"},
    }
    worker = Worker(env, w.tmp_path / "worker.log").start()
    try:
        produce(w.kafka, topic(w.unique, "events"), [json.dumps(event).encode()])
        run_in(w.database, "vulnerable-serving-image", "completed")
        [ticket] = tickets.requests
        assert ticket["json"]["cves"] == ["CVE-2025-1234"]
        assert ticket["json"]["image"] == image
        [note] = w.slack.calls_to("chat.postMessage")
        assert "CVE-2025-1234" in note["payload"]["text"]
    finally:
        worker.stop()


def test_compromised_model_is_rolled_back_to_last_known_good_and_undone(w: World) -> None:
    from tests.support.mlflow_registry import create_registry

    registry = create_registry(
        w.tmp_path / "mlflow", name=f"fraud-{w.unique}", versions=3, clean=(1,)
    )
    assert registry.alias() == "3"
    env = w.env()
    env["RESPONDER_MLFLOW__TRACKING_URI"] = registry.tracking_uri
    event = {
        "id": f"modelscan-{w.unique}",
        "source": "modelscan",
        "type": "model.unsafe_file",
        "time": at(0),
        "severity": "critical",
        "title": "Pickle with os.system in model.pkl",
        "resource": {"kind": "model", "id": f"models:/{registry.name}/3", "name": registry.name,
                     "version": "3"},
    }  # fmt: skip
    worker = Worker(env, w.tmp_path / "worker.log").start()
    try:
        produce(w.kafka, topic(w.unique, "events"), [json.dumps(event).encode()])
        done = run_in(w.database, "rollback-compromised-model", "completed")
        assert registry.alias() == "1"  # version 2 is not clean, version 3 is implicated
        assert registry.predict() == "1"  # serving `@champion` loads the rolled-back model
        with Session(make_engine(w.database)) as session:
            [incident] = list_incidents(session)
        command(
            w.kafka,
            w.unique,
            IncidentCommand(incident_id=incident.id, status="false_positive", by="dana"),
        )
        run_in(w.database, "rollback-compromised-model", "undone")
        assert registry.alias() == "3"
        assert done.incident_id == incident.id
        assert chain_ok(w.database)
    finally:
        worker.stop()
