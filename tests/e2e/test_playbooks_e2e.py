"""The shipped playbooks end to end: real worker processes, Kafka, PostgreSQL, and the real
counterparts of every action on loopback (moto's IAM, a Slack Web API server, an MLflow
registry, an HTTP ticket server). Decisions go through `responder.commands`, the path the CLI
and the API use.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from responder.audit.store import verify_chain
from responder.commands import Decision, IncidentCommand, send_command
from responder.incidents.store import get_incident, list_incidents
from responder.playbooks.runs import PlaybookRun, list_runs, steps_of
from responder.settings import KafkaSettings, Topics
from responder.storage.database import make_engine, upgrade
from tests.conftest import ROOT
from tests.support.aws_server import MotoServer
from tests.support.harness import (
    TOPICS,
    Worker,
    keyed_engine,
    produce,
    topic,
    wait_for,
    worker_env,
)
from tests.support.slack_server import SlackServer

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


class TicketServer:
    """An HTTP ticket endpoint on loopback; `hold` makes requests hang until released."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.hold = threading.Event()  # set: answer at once
        self.hold.set()
        self.received = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append(
                    {"headers": dict(self.headers), "json": json.loads(body or b"null")}
                )
                server.received.set()
                server.hold.wait(60)
                answer = json.dumps({"id": f"T-{len(server.requests)}"}).encode()
                try:
                    self.send_response(201)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the worker that asked was killed

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.httpd.server_port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}/api/issues"

    def close(self) -> None:
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


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
    server = TicketServer()
    yield server
    server.close()


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


def kafka_settings(bootstrap: str, unique: str) -> KafkaSettings:
    names = {name: topic(unique, name) for name in TOPICS}
    return KafkaSettings(bootstrap_servers=bootstrap, topics=Topics(**names))


def command(bootstrap: str, unique: str, cmd: Decision | IncidentCommand) -> None:
    asyncio.run(send_command(kafka_settings(bootstrap, unique), cmd))


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


def test_leaked_key_waits_for_approval_then_deactivates_notifies_and_undoes(
    kafka_bootstrap: str,
    database: str,
    unique: str,
    tmp_path: Path,
    moto: MotoServer,
    slack: SlackServer,
) -> None:
    user, key = moto.create_user_with_key(f"svc-{unique}")
    env = env_for(
        kafka_bootstrap, database, unique, playbooks=ROOT / "playbooks", moto=moto, slack=slack
    )
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        produce(kafka_bootstrap, topic(unique, "events"), leak_then_use(key, user))
        waiting = run_in(database, "contain-leaked-credential", "waiting")
        asks = slack.wait_for(lambda calls: len(calls) >= 1)
        assert any(b.get("block_id") == "approval" for b in asks[0]["payload"]["blocks"])
        assert moto.key_status(user, key) == "Active"  # nothing before the decision

        command(kafka_bootstrap, unique, Decision(run_id=waiting.id, approved=True, by="alice"))
        done = run_in(database, "contain-leaked-credential", "completed")
        assert moto.key_status(user, key) == "Inactive"
        assert moto.count("UpdateAccessKey", AccessKeyId=key, Status="Inactive") == 1
        with Session(make_engine(database)) as session:
            steps = steps_of(session, done.id)
            incident = get_incident(session, done.incident_id)
        assert steps["approve"].decided_by == "alice"
        assert steps["deactivate"].output["user_name"] == user
        assert incident is not None and incident.status == "acknowledged"
        posts = [c for c in slack.calls_to("chat.postMessage") if c["token"] == TOKEN]
        assert any("Deactivated leaked AWS access key" in p["payload"]["text"] for p in posts)
        assert slack.calls_to("chat.update")  # the approval request shows the decision

        # An analyst says it was a false positive: the deactivation is undone.
        command(
            kafka_bootstrap,
            unique,
            IncidentCommand(incident_id=done.incident_id, status="false_positive", by="carol"),
        )
        run_in(database, "contain-leaked-credential", "undone")
        assert moto.key_status(user, key) == "Active"
        assert chain_ok(database)
    finally:
        worker.stop()


def test_killed_between_steps_the_run_completes_with_each_side_effect_once(
    kafka_bootstrap: str,
    database: str,
    unique: str,
    tmp_path: Path,
    moto: MotoServer,
    slack: SlackServer,
    tickets: TicketServer,
) -> None:
    playbooks = tmp_path / "playbooks"
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
    user, key = moto.create_user_with_key(f"svc-{unique}")
    env = env_for(kafka_bootstrap, database, unique, playbooks=playbooks, moto=moto, slack=slack)
    env["RESPONDER_HTTP__ALLOWED_HOSTS"] = json.dumps([tickets.host])
    env["RESPONDER_PLAYBOOKS__VARS"] = json.dumps({"ticket_url": tickets.url})
    tickets.hold.clear()  # the first ticket request hangs: the worker dies in step 2

    first = Worker(env, tmp_path / "first.log").start()
    produce(kafka_bootstrap, topic(unique, "events"), leak_then_use(key, user))
    assert tickets.received.wait(60), first.log()[-3000:]
    assert moto.key_status(user, key) == "Inactive"  # step 1 is done
    first.kill()
    tickets.hold.set()

    second = Worker(env, tmp_path / "second.log").start()
    try:
        done = run_in(database, "contain-then-ticket", "completed")
        assert moto.count("UpdateAccessKey", AccessKeyId=key, Status="Inactive") == 1
        assert len(tickets.requests) == 2  # the interrupted step ran again ...
        keys = {r["headers"]["Idempotency-Key"] for r in tickets.requests}
        assert keys == {f"{done.id}:ticket"}  # ... with the same idempotency key
        notes = [c for c in slack.calls_to("chat.postMessage") if "ticket T-" in str(c["payload"])]
        assert len(notes) == 1
        with Session(make_engine(database)) as session:
            steps = steps_of(session, done.id)
        assert (steps["deactivate"].attempts, steps["ticket"].attempts) == (1, 2)
        assert chain_ok(database)
    finally:
        second.stop()


def test_vulnerable_serving_image_notifies_and_opens_a_ticket(
    kafka_bootstrap: str,
    database: str,
    unique: str,
    tmp_path: Path,
    moto: MotoServer,
    slack: SlackServer,
    tickets: TicketServer,
) -> None:
    env = env_for(
        kafka_bootstrap, database, unique, playbooks=ROOT / "playbooks", moto=moto, slack=slack
    )
    env["RESPONDER_HTTP__ALLOWED_HOSTS"] = json.dumps([tickets.host])
    env["RESPONDER_PLAYBOOKS__VARS"] = json.dumps({"ticket_url": tickets.url})
    image = f"registry/ml/serving-{unique}:1.4"
    event = {
        "id": f"trivy-{unique}",
        "source": "trivy",
        "type": "vulnerability.found",
        "time": at(0),
        "severity": "critical",
        "title": "CVE-2025-1234 in libfoo",
        "resource": {"kind": "image", "id": image},
        "attributes": {"cve": "CVE-2025-1234", "cvss": 9.8},
        "labels": {"component": "model-serving", "env": "prod"},
    }
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        produce(kafka_bootstrap, topic(unique, "events"), [json.dumps(event).encode()])
        run_in(database, "vulnerable-serving-image", "completed")
        [ticket] = tickets.requests
        assert ticket["json"]["cves"] == ["CVE-2025-1234"]
        assert ticket["json"]["image"] == image
        [note] = slack.calls_to("chat.postMessage")
        assert "CVE-2025-1234" in note["payload"]["text"]
    finally:
        worker.stop()


def test_compromised_model_is_rolled_back_to_last_known_good_and_undone(
    kafka_bootstrap: str,
    database: str,
    unique: str,
    tmp_path: Path,
    moto: MotoServer,
    slack: SlackServer,
) -> None:
    from tests.support.mlflow_registry import create_registry

    registry = create_registry(tmp_path / "mlflow", name=f"fraud-{unique}", versions=3, clean=(1,))
    assert registry.alias() == "3"
    env = env_for(
        kafka_bootstrap, database, unique, playbooks=ROOT / "playbooks", moto=moto, slack=slack
    )
    env["RESPONDER_MLFLOW__TRACKING_URI"] = registry.tracking_uri
    event = {
        "id": f"modelscan-{unique}",
        "source": "modelscan",
        "type": "model.unsafe_file",
        "time": at(0),
        "severity": "critical",
        "title": "Pickle with os.system in model.pkl",
        "resource": {"kind": "model", "id": f"models:/{registry.name}/3", "name": registry.name,
                     "version": "3"},
    }  # fmt: skip
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        produce(kafka_bootstrap, topic(unique, "events"), [json.dumps(event).encode()])
        done = run_in(database, "rollback-compromised-model", "completed")
        assert registry.alias() == "1"  # version 2 is not clean, version 3 is implicated
        assert registry.predict() == "1"  # serving `@champion` loads the rolled-back model
        with Session(make_engine(database)) as session:
            [incident] = list_incidents(session)
        command(
            kafka_bootstrap,
            unique,
            IncidentCommand(incident_id=incident.id, status="false_positive", by="dana"),
        )
        run_in(database, "rollback-compromised-model", "undone")
        assert registry.alias() == "3"
        assert done.incident_id == incident.id
        assert chain_ok(database)
    finally:
        worker.stop()
