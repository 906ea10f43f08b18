"""Slack clicks end to end in one test process: the runner kit's database and fakes, a runner
that posts to the Slack test server, the commands stage on the real broker, and payloads built
like Slack's (signed with the signing secret for the request URL)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr
from sqlmodel import Session, col, select

from responder import bootstrap
from responder.actions.ports import Ports
from responder.actions.slack import SlackWebAdapter
from responder.audit.store import AuditRecord
from responder.incidents.store import SqlIncidents
from responder.playbooks.loader import load_playbooks
from responder.playbooks.runner import Runner
from responder.service.slack.signature import sign
from responder.settings import Settings, merged
from responder.streams.playbooks import CommandStage, Wakeup
from responder.streams.topics import ensure_topics
from tests.support.api import api_settings
from tests.support.runner_kit import Kit
from tests.support.signing import GATE
from tests.support.slack_server import SlackServer
from tests.support.stages import running

SECRET = SecretStr("8f742231b10e8888abcd99b1c2d3e4f5")
TEAM = "T0001"
GROUPS = {"secops": ["U1", "U2"]}

APPROVE_THEN_DEACTIVATE = """
id: contain
title: Contain a used leaked key
on: {kind: credential_compromise}
guards: {require_evidence: false}  # about Slack approvals, not evidence (test_evidence.py)
steps:
  - id: approve
    action: approval.request
    with: {prompt: "Deactivate {{ incident.group['resource.id'] }}?", approvers: APPROVERS, quorum: QUORUM}
  - id: deactivate
    action: aws.iam.deactivate_access_key
    if: "{{ steps.approve.output.approved }}"
    with: {access_key_id: "{{ incident.group['resource.id'] }}", user_name: ci-bot}
"""


def contain(approvers: str = "[U1]", quorum: int = 1) -> str:
    return APPROVE_THEN_DEACTIVATE.replace("APPROVERS", approvers).replace("QUORUM", str(quorum))


def slack_settings(
    db_url: str, kafka: str, unique: str, server: SlackServer, **slack: Any
) -> Settings:
    return merged(
        api_settings(db_url, kafka, unique),
        {
            "slack": {
                "bot_token": server.token,
                "signing_secret": SECRET.get_secret_value(),
                "base_url": server.base_url,
                "channel": "#secops-incidents",
                "team_id": TEAM,
                "groups": GROUPS,
                "apply_wait_s": 30,
                **slack,
            }
        },
    )


def click(
    *,
    user: str,
    action_id: str,
    value: str,
    channel: str,
    message_ts: str,
    team: str = TEAM,
    action_ts: float | None = None,
    **user_fields: Any,
) -> dict[str, Any]:
    """A `block_actions` payload as Slack sends it for one button click."""
    at = time.time() if action_ts is None else action_ts
    return {
        "type": "block_actions",
        "user": {
            "id": user,
            "username": "someone",
            "name": "someone",
            "team_id": team,
            **user_fields,
        },
        "api_app_id": "A0001",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "trigger_id": f"{int(at)}.{secrets.randbelow(10**9)}.{secrets.token_hex(8)}",
        "team": {"id": team, "domain": "example"},
        "channel": {"id": channel, "name": "secops-incidents"},
        "message": {"type": "message", "ts": message_ts},
        "response_url": "https://hooks.slack.example/actions/T0001/1/x",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "approval",
                "value": value,
                "action_ts": f"{at:.6f}",
            }
        ],
    }


def signed(
    payload: dict[str, Any], *, at: float | None = None, secret: SecretStr = SECRET
) -> tuple[bytes, dict[str, str]]:
    """The form body Slack posts and its signature headers."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = int(time.time() if at is None else at)
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(body, timestamp=ts, secret=secret),
    }


@dataclass
class Rig:
    kit: Kit
    server: SlackServer
    settings: Settings
    stage: CommandStage

    def runner(self) -> Runner:
        slack = SlackWebAdapter(
            token=SecretStr(self.server.token),
            base_url=self.server.base_url,
            default_channel=self.settings.slack.channel,
        )
        ports = Ports(
            slack=slack, iam=self.kit.iam, http=self.kit.http, incidents=SqlIncidents(self.kit.db)
        )
        return Runner(
            engine=self.kit.db,
            playbooks=load_playbooks(self.kit.directory),
            ports=ports,
            settings=self.kit.settings,
        )

    async def drive(self) -> None:
        await self.kit.drive(self.runner())

    def request_of(self, rid: str) -> tuple[str, str]:
        """(channel id, ts) of the approval request the runner posted for run `rid`."""
        for call in self.server.calls_to("chat.postMessage"):
            if f"{rid}:" in json.dumps(call["payload"].get("blocks")):
                return str(call["answer"]["channel"]), str(call["answer"]["ts"])
        raise AssertionError(f"no approval request posted for {rid}")

    async def until(self, what: Any, timeout: float = 30.0) -> Any:
        """Poll `what()` (in a thread) until it is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = await asyncio.to_thread(what)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.1)

    def refusals(self) -> list[AuditRecord]:
        with Session(self.kit.db) as session:
            query = select(AuditRecord).where(AuditRecord.action == "slack.refused")
            return list(session.exec(query.order_by(col(AuditRecord.seq))).all())


@asynccontextmanager
async def rig(kit: Kit, server: SlackServer, settings: Settings) -> AsyncIterator[Rig]:
    """The commands stage running in this loop for the test's duration."""
    await ensure_topics(settings.kafka)
    stage = CommandStage(settings.kafka, kit.db, Wakeup(), GATE, bootstrap.directory(settings))
    async with running(stage):
        yield Rig(kit, server, settings, stage)
