"""Slack clicks through the signed request URL, POST /v1/slack/actions: the real API on a socket,
the Slack test server, the commands stage on the real broker, the runner from the runner kit."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from responder import bootstrap
from responder.actions.slack import (
    ACK_INCIDENT_ACTION_ID,
    APPROVE_ACTION_ID,
    APPROVE_INCIDENT_ACTION_ID,
)
from responder.audit.store import AuditRecord
from responder.incidents.store import get_incident
from responder.settings import Settings
from tests.support.api import serving
from tests.support.runner_kit import KEY, Kit, change
from tests.support.slack_rig import Rig, click, contain, rig, signed, slack_settings
from tests.support.slack_server import SlackServer

pytestmark = pytest.mark.integration

PATH = "/v1/slack/actions"


@pytest.fixture
def server() -> Iterator[SlackServer]:
    with SlackServer(token="xoxb-responder-bot") as running:
        yield running


@pytest.fixture
def settings(db_url: str, kafka_bootstrap: str, unique: str, server: SlackServer) -> Settings:
    return slack_settings(db_url, kafka_bootstrap, unique, server)


@asynccontextmanager
async def api(kit: Kit, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    with serving(bootstrap.api_app(settings, engine=kit.db)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield client


@asynccontextmanager
async def waiting(
    kit: Kit, server: SlackServer, settings: Settings
) -> AsyncIterator[tuple[str, Rig, httpx.AsyncClient]]:
    """A run of the `contain` playbook waiting for approval, the commands stage, the API."""
    kit.playbook("contain", contain())
    [rid] = kit.apply(change())
    async with rig(kit, server, settings) as r, api(kit, settings) as client:
        await r.drive()
        yield rid, r, client


async def post(client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post(PATH, content=body, headers=headers)


def approve(r: Rig, rid: str, user: str, **kw: Any) -> dict[str, Any]:
    channel, ts = r.request_of(rid)
    return click(
        user=user,
        action_id=APPROVE_ACTION_ID,
        value=f"{rid}:approve",
        channel=channel,
        message_ts=ts,
        **kw,
    )


def reasons(r: Rig) -> list[str]:
    return [record.data["reason"] for record in r.refusals()]


async def test_an_approval_click_resumes_the_run_and_the_side_effect_happens_once(
    kit: Kit, server: SlackServer, settings: Settings
) -> None:
    """A signed click: 200 (empty body), applied as slack:U1, redrawn, acted on once; a replay: 401."""
    async with waiting(kit, server, settings) as (rid, r, client):
        body, headers = signed(approve(r, rid, "U1"))
        answer = await post(client, body, headers)
        assert answer.status_code == 200 and answer.content == b""

        def decided() -> bool:
            return kit.steps(rid)["approve"].decision == "approved"

        await r.until(decided)
        redrawn = await r.until(
            lambda: [c for c in server.calls_to("chat.update") if "Approved" in json.dumps(c)]
        )
        assert "*Approved* by <@U1>" in json.dumps(redrawn[0]["payload"]["blocks"])
        await r.drive()
        replayed = await post(client, body, headers)

    assert kit.run(rid).status == "completed"
    assert kit.iam.keys[KEY].status == "Inactive"
    assert kit.iam.calls["set_access_key_status"] == 1
    assert kit.steps(rid)["approve"].decided_by == "slack:U1"
    assert replayed.status_code == 401
    assert replayed.headers["content-type"] == "application/problem+json"
    assert reasons(r) == ["replayed"]
    [refused] = r.refusals()
    assert refused.actor == "analyst:slack:U1" and refused.data["via"] == "http"
    assert "payload" not in json.dumps(refused.data) and "v0=" not in json.dumps(refused.data)
    approvals = [a for a in kit.audit() if a.action == "approval.approved"]
    assert [a.actor for a in approvals] == ["analyst:slack:U1"]
    assert kit.chain_ok()


async def test_tampered_unsigned_and_late_requests_are_refused_and_audited(
    kit: Kit, server: SlackServer, settings: Settings
) -> None:
    """Tampered, unsigned, forged and late requests: 401 each, nothing decided, audited bodiless."""
    async with waiting(kit, server, settings) as (rid, r, client):
        body, headers = signed(approve(r, rid, "U1"))
        tampered = body.replace(b"U1", b"U2")
        assert (await post(client, tampered, headers)).status_code == 401
        unsigned = {"Content-Type": headers["Content-Type"]}
        assert (await post(client, body, unsigned)).status_code == 401
        old = time.time() - 301
        late_body, late_headers = signed(approve(r, rid, "U1", action_ts=old), at=old)
        assert (await post(client, late_body, late_headers)).status_code == 401
        forged = {**headers, "X-Slack-Signature": "v0=" + "0" * 64}
        assert (await post(client, body, forged)).status_code == 401

    assert reasons(r) == ["bad_signature", "unsigned", "late", "bad_signature"]
    assert {record.actor for record in r.refusals()} == {"slack:unverified"}
    assert all("v0=" not in json.dumps(record.data) for record in r.refusals())
    assert kit.steps(rid)["approve"].decision is None
    assert server.calls_to("chat.update") == []


async def test_someone_who_may_not_approve_is_told_so_and_it_is_audited(
    kit: Kit, server: SlackServer, settings: Settings
) -> None:
    """A non-approver named like one, a foreign guest, a moved button: told privately, audited."""
    async with waiting(kit, server, settings) as (rid, r, client):
        intruder = approve(r, rid, "U9", name="U1", username="U1")
        guest = approve(r, rid, "U1", team="T0666")
        moved = approve(r, rid, "U1")
        moved["container"]["message_ts"] = "1700000999.000001"
        for told, payload in enumerate((intruder, guest, moved), start=1):
            assert (await post(client, *signed(payload))).status_code == 200
            await r.until(lambda n=told: len(server.ephemeral) == n)

    assert "not among the approvers" in server.ephemeral_to("U9")[0]
    assert "Only members of this workspace" in server.ephemeral_to("U1")[0]
    assert "not on the request's message" in server.ephemeral_to("U1")[1]
    assert reasons(r) == ["not_approver", "foreign_team", "wrong_message"]
    assert [record.actor for record in r.refusals()] == [
        "analyst:slack:U9",
        "analyst:slack:U1",
        "analyst:slack:U1",
    ]
    assert all(record.subject == rid for record in r.refusals()[::2])
    step = kit.steps(rid)["approve"]
    assert step.decision is None and (step.approval or {})["votes"] == []
    assert r.stage.stats.applied == 0


async def test_quorum_two_counts_each_approver_once_and_then_resumes(
    kit: Kit, server: SlackServer, settings: Settings
) -> None:
    """Quorum 2: U1 waits (1 of 2 shown), U1 again is told no, U2 approves and the run acts once."""
    kit.playbook("contain", contain('["group:secops"]', 2))
    [rid] = kit.apply(change())
    async with rig(kit, server, settings) as r, api(kit, settings) as client:
        await r.drive()
        assert (await post(client, *signed(approve(r, rid, "U1")))).status_code == 200

        def one_vote() -> bool:
            votes = (kit.steps(rid)["approve"].approval or {}).get("votes") or []
            return len(votes) == 1

        await r.until(one_vote)
        await r.until(
            lambda: any("(1 of 2)" in json.dumps(c) for c in server.calls_to("chat.update"))
        )
        await r.drive()
        assert kit.run(rid).status == "waiting"
        assert (await post(client, *signed(approve(r, rid, "U1")))).status_code == 200
        await r.until(lambda: server.ephemeral_to("U1"))
        assert (await post(client, *signed(approve(r, rid, "U2")))).status_code == 200
        await r.until(lambda: kit.steps(rid)["approve"].decision == "approved")
        await r.drive()

    assert "voted on this step already" in server.ephemeral_to("U1")[0]
    assert reasons(r) == ["already_voted"]
    assert kit.steps(rid)["approve"].decided_by == "slack:U1, slack:U2"
    assert kit.run(rid).status == "completed"
    assert kit.iam.calls["set_access_key_status"] == 1


async def test_incident_buttons_acknowledge_and_approve_what_waits(
    kit: Kit, server: SlackServer, settings: Settings
) -> None:
    """Incident buttons acknowledge the incident as slack:U2 and approve the one step that waits."""
    kit.playbook("contain", contain("[]"))
    [rid] = kit.apply(change())
    async with rig(kit, server, settings) as r, api(kit, settings) as client:
        await r.drive()
        channel, ts = "C0INCIDENT", "1700000100.000100"
        for action in (ACK_INCIDENT_ACTION_ID, APPROVE_INCIDENT_ACTION_ID):
            payload = click(
                user="U2", action_id=action, value="inc-1", channel=channel, message_ts=ts
            )
            assert (await post(client, *signed(payload))).status_code == 200

        def acknowledged() -> bool:
            with Session(kit.db) as session:
                incident = get_incident(session, "inc-1")
                return incident is not None and incident.status == "acknowledged"

        await r.until(acknowledged)
        await r.until(lambda: kit.steps(rid)["approve"].decision == "approved")
        await r.drive()

    assert kit.iam.calls["set_access_key_status"] == 1
    acks = [a for a in kit.audit() if a.subject == "inc-1" and a.actor == "analyst:slack:U2"]
    assert acks and all(isinstance(a, AuditRecord) for a in acks)
    assert kit.steps(rid)["approve"].decided_by == "slack:U2"
