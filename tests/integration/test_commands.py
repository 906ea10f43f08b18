"""The commands stage on the real broker: valid commands change SQL, bad ones reach the DLQ."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import Engine
from sqlmodel import Session, select

from responder.audit.store import AuditRecord
from responder.commands import Decision, IncidentCommand, send_command
from responder.incidents.store import apply_changes, get_incident
from responder.security.signatures import Signer, generate, private_key
from responder.storage.database import make_engine, upgrade
from responder.streams.playbooks import CommandStage, Wakeup
from responder.streams.topics import ensure_topics
from tests.support.harness import consume_all, kafka_settings, topic
from tests.support.runner_kit import ASK, change
from tests.support.signing import GATE, ISSUER, SIGNER, VERIFIER, command_env
from tests.support.stages import running, settle

pytestmark = pytest.mark.integration


async def test_commands_apply_or_go_to_the_dlq_with_a_reason(
    kafka_bootstrap: str, db: Engine, unique: str, tmp_path: Path
) -> None:
    kafka = kafka_settings(kafka_bootstrap, unique)
    await ensure_topics(kafka)
    with Session(db) as session, session.begin():
        apply_changes(session, [change()])
    wakeup = Wakeup()
    now = time.time_ns() // 10**6
    acknowledge = IncidentCommand(incident_id="inc-1", status="acknowledged", by="al")
    resolve = IncidentCommand(incident_id="inc-1", status="resolved", by="mallory")
    value = resolve.model_dump_json().encode()
    intruder = Signer("tests", private_key(generate()[0]))  # the right name, another key
    stranger = Signer("stranger", private_key(generate()[0]))
    tampered = value.replace(b"mallory", b"al")
    forged: list[tuple[bytes, list[tuple[str, bytes]]]] = [
        (value, []),  # unsigned, as anyone who can write the topic would send it
        (value, intruder.headers(value, now_ms=now)),
        (value, stranger.headers(value, now_ms=now)),
        (tampered, SIGNER.headers(value, now_ms=now)),  # signed, then changed
        (value, SIGNER.headers(value, now_ms=now - 301_000)),  # expired
    ]
    async with running(CommandStage(kafka, db, wakeup, GATE)) as stage:
        await send_command(kafka, acknowledge, SIGNER)
        await send_command(kafka, Decision(run_id="no-such-run", approved=True, by="al"), SIGNER)
        invalid = b'{"type": "decision", "run_id": 1'
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                kafka.topics.commands, invalid, headers=SIGNER.headers(invalid, now_ms=now)
            )
            for raw, headers in forged:
                await producer.send_and_wait(kafka.topics.commands, raw, b"inc-1", headers=headers)
            dead = await consume_all(kafka_bootstrap, kafka.topics.dlq, 7, timeout=30)
            applied = await consume_all(kafka_bootstrap, kafka.topics.commands, 8, timeout=30)
            # the signed acknowledgement, copied to the topic again by someone who read it
            copy = next(m for m in applied if b"acknowledged" in m.value)
            await producer.send_and_wait(
                kafka.topics.commands, copy.value, copy.key, headers=list(copy.headers)
            )
            dead = await consume_all(kafka_bootstrap, kafka.topics.dlq, 8, timeout=30)
        finally:
            await producer.stop()
        # commands on other partitions may still be on their way
        await settle(lambda: bool(stage.stats.applied))
    reasons = sorted(dict(m.headers)["responder.reason"].decode() for m in dead)
    assert reasons == [
        "command does not apply",
        *["command refused: not authenticated"] * 6,
        "invalid command",
    ]
    details = sorted(
        json.loads(dict(m.headers)["responder.detail"])[0].split(":")[0]
        for m in dead
        if dict(m.headers)["responder.reason"] == b"command refused: not authenticated"
    )
    assert details == [
        "bad signature for issuer 'tests'",
        "bad signature for issuer 'tests'",
        "expired",
        "replayed",
        "unknown issuer 'stranger'",
        "unsigned",
    ]
    unknown = next(m for m in dead if b"no-such-run" in m.value)
    assert b"no playbook run" in dict(unknown.headers)["responder.detail"]
    assert dict(unknown.headers)["responder.source.topic"] == kafka.topics.commands.encode()
    with Session(db) as session:
        incident = get_incident(session, "inc-1")
        assert incident is not None and incident.status == "acknowledged"  # never resolved
        audit = session.exec(select(AuditRecord).where(AuditRecord.action == "command.refused"))
        refusals = sorted(r.data["reason"].split(":")[0] for r in audit)
    assert refusals == details  # every refusal audited, with why
    assert stage.stats.applied == 1 and stage.stats.refused == 8


async def test_runs_cli_lists_shows_and_sends_a_decision(
    kafka_bootstrap: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from responder.cli import app
    from tests.support.runner_kit import Kit

    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    kit = Kit(db=make_engine(db_url), directory=tmp_path / "playbooks")
    upgrade(kit.db)
    kit.playbook("ask", ASK)
    [rid] = kit.apply(change())
    await kit.drive()
    commands = topic(unique, "commands")
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    monkeypatch.setenv("RESPONDER_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("RESPONDER_KAFKA__TOPICS__COMMANDS", commands)
    cli = CliRunner()

    listed = cli.invoke(app, ["runs", "list"])
    assert listed.exit_code == 0, listed.output
    assert rid[:8] in listed.output and "waiting" in listed.output
    shown = cli.invoke(app, ["runs", "show", rid[:8]])
    assert "responder runs approve" in " ".join(shown.output.split())
    missing = cli.invoke(app, ["runs", "show", "nope"])
    assert missing.exit_code == 1

    state = cli.invoke(app, ["playbooks", "kill-switch"])
    assert state.exit_code == 0 and "kill switch: off" in state.output
    unsigned = await asyncio.to_thread(
        cli.invoke, app, ["playbooks", "kill-switch", "on", "--by", "bob", "--wait", "0"]
    )
    assert unsigned.exit_code != 0
    assert "RESPONDER_COMMANDS__SIGNING_KEY" in " ".join(unsigned.output.split())
    for name, value in command_env().items():
        monkeypatch.setenv(name, value)
    switched = await asyncio.to_thread(
        cli.invoke, app, ["playbooks", "kill-switch", "on", "--by", "bob", "--wait", "0"]
    )
    assert switched.exit_code == 0, switched.output
    [switch] = await consume_all(kafka_bootstrap, commands, 1, timeout=30)
    assert json.loads(switch.value)["type"] == "kill_switch"
    signed = VERIFIER.verify(switch.value, switch.headers, now_ms=time.time_ns() // 10**6)
    assert signed.issuer == ISSUER

    sent = await asyncio.to_thread(
        cli.invoke, app, ["runs", "approve", rid[:8], "--by", "alice", "--wait", "0"]
    )
    assert sent.exit_code == 0, sent.output
    message = (await consume_all(kafka_bootstrap, commands, 2, timeout=30))[-1]
    assert message.key == rid.encode()
    decision = json.loads(message.value)
    assert len(decision.pop("id")) == 32  # every command has an id of its own
    assert decision == {
        "type": "decision",
        "run_id": rid,
        "step_id": None,
        "approved": True,
        "by": "alice",
        "reason": None,
    }
