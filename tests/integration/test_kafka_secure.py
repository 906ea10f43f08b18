"""Kafka with authentication and ACLs: a broker of this module's own (`scripts/kafka up-secure`:
SASL_SSL with SCRAM, client certificates required, the StandardAuthorizer), not the shared one.

The worker consumes and produces over SASL_SSL as `worker`; an integration may write events but
not commands; a command issuer's signed command is applied; a wrong password, a client without
a certificate and plaintext are refused."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from sqlmodel import Session

from responder.commands import KillSwitch, send_command
from responder.incidents.store import Incident, list_incidents
from responder.kafka_clients import client_options
from responder.playbooks.runs import kill_switch_on
from responder.settings import KafkaSettings
from responder.storage.database import make_engine, upgrade
from tests.support.harness import EACH_RULE, Worker, event_json, wait_for, worker_env, write_rules
from tests.support.signing import SIGNER

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kafka"


def free_port_pair() -> int:
    """A port whose next one (the controller's) is free too."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free consecutive ports")


@dataclass(frozen=True)
class SecureBroker:
    settings: dict[str, str]  # RESPONDER_KAFKA__... of client.env
    passwords: dict[str, str]

    def env(self, user: str, password: str | None = None) -> dict[str, str]:
        return {
            **self.settings,
            "RESPONDER_KAFKA__SASL_USERNAME": user,
            "RESPONDER_KAFKA__SASL_PASSWORD": password or self.passwords[user],
        }

    def kafka(self, user: str, password: str | None = None, **fields: object) -> KafkaSettings:
        prefix = "RESPONDER_KAFKA__"
        values = {k[len(prefix) :].lower(): v for k, v in self.env(user, password).items()}
        return KafkaSettings.model_validate({**values, **fields})


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[SecureBroker]:
    port = free_port_pair()
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m"}
    started = subprocess.run(
        [str(SCRIPT), "up-secure"], env=env, capture_output=True, text=True, timeout=300
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        line = next(x for x in started.stdout.splitlines() if "client.env" in x)
        credentials = Path(line.rsplit(" ", 1)[1])
        pairs = dict(
            x.split("=", 1)
            for x in credentials.read_text().splitlines()
            if x and not x.startswith("#")
        )
        yield SecureBroker(
            {k: v for k, v in pairs.items() if k.startswith("RESPONDER_KAFKA__")},
            {
                k.removeprefix("KAFKA_PASSWORD_").lower(): v
                for k, v in pairs.items()
                if k.startswith("KAFKA_PASSWORD_")
            },
        )
    finally:
        subprocess.run([str(SCRIPT), "reset-secure"], env=env, capture_output=True, timeout=120)


async def produce_as(kafka: KafkaSettings, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(**client_options(kafka), acks="all", request_timeout_ms=15000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


def test_the_worker_runs_over_sasl_ssl_and_only_issuers_write_commands(
    secure_broker: SecureBroker, pg_schema_url: str, unique: str, tmp_path: Path
) -> None:
    upgrade(make_engine(pg_schema_url))
    env = worker_env("unused", pg_schema_url, write_rules(tmp_path / "rules", EACH_RULE), unique)
    for name in list(env):  # the default topic names: those the ACLs are written for
        if name.startswith("RESPONDER_KAFKA__TOPICS__"):
            del env[name]
    env.update(secure_broker.env("worker"))
    env["RESPONDER_KAFKA__GROUP_PREFIX"] = f"responder-{unique}"
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        topics = KafkaSettings().topics
        integration = secure_broker.kafka("integration")
        event = event_json("s1", type="secret.leaked", resource="k1", severity="high")
        asyncio.run(produce_as(integration, topics.events, event))
        engine = make_engine(pg_schema_url)

        def incidents() -> list[Incident]:
            with Session(engine) as session:
                return list(list_incidents(session))

        [incident] = wait_for(incidents, 60)  # ingest, correlate, sink: all over SASL_SSL
        assert incident.event_ids == [{"source": "detector", "id": "s1"}]

        forged = KillSwitch(on=True, by="mallory").model_dump_json().encode()
        with pytest.raises(TopicAuthorizationFailedError):
            asyncio.run(produce_as(integration, topics.commands, forged))

        api = secure_broker.kafka("api")
        asyncio.run(send_command(api, KillSwitch(on=True, by="token:alice"), SIGNER))

        def switched() -> bool:
            with Session(engine) as session:
                return kill_switch_on(session)

        assert wait_for(switched, 60)
        assert worker.proc is not None and worker.proc.poll() is None
        assert "worker started" in worker.log() and "SASL_SSL" in worker.log()
        assert secure_broker.passwords["worker"] not in worker.log()
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("change", "password"),
    [
        ({}, "not-the-password"),  # wrong password
        ({"ssl_certfile": None, "ssl_keyfile": None}, None),  # no client certificate
        ({"security_protocol": "SSL"}, None),  # TLS without SASL: no user
    ],
    ids=["wrong-password", "no-client-certificate", "no-sasl"],
)
def test_clients_that_do_not_authenticate_are_refused(
    secure_broker: SecureBroker, change: dict[str, object], password: str | None
) -> None:
    kafka = secure_broker.kafka("integration", password, **change)
    with pytest.raises(KafkaError):
        asyncio.run(produce_as(kafka, KafkaSettings().topics.events, b"{}"))
