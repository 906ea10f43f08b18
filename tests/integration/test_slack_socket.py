"""Slack clicks over Socket Mode: slack-sdk's aiohttp client against the Slack test server
(apps.connections.open) and a local WebSocket that pushes envelopes like Slack's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from responder import bootstrap
from responder.actions.slack import APPROVE_ACTION_ID
from responder.service.errors import Invalid
from responder.service.slack.socket_mode import SocketModeFront
from responder.settings import Settings
from tests.support.runner_kit import KEY, Kit, change
from tests.support.slack_rig import click, contain, rig, slack_settings
from tests.support.slack_server import SlackServer
from tests.support.slack_socket import SocketModeServer

pytestmark = pytest.mark.integration


@pytest.fixture
def sockets() -> Iterator[SocketModeServer]:
    with SocketModeServer() as running:
        yield running


@pytest.fixture
def server(sockets: SocketModeServer) -> Iterator[SlackServer]:
    with SlackServer(token="xoxb-responder-bot", app_token="xapp-1-responder") as running:
        running.socket_url = sockets.url
        yield running


@pytest.fixture
def settings(db_url: str, kafka_bootstrap: str, unique: str, server: SlackServer) -> Settings:
    return slack_settings(
        db_url, kafka_bootstrap, unique, server, mode="socket", app_token=server.app_token
    )


def envelope(number: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "envelope_id": f"env-{number}",
        "type": "interactive",
        "accepts_response_payload": False,
        "payload": payload,
    }


async def test_a_click_over_socket_mode_is_acknowledged_at_once_and_applied(
    kit: Kit, server: SlackServer, sockets: SocketModeServer, settings: Settings
) -> None:
    """Socket Mode: acked within 3 s, applied, acted on once; redelivered and late clicks refused."""
    kit.playbook("contain", contain())
    [rid] = kit.apply(change())
    publisher = bootstrap.kafka_publisher(settings)
    front = bootstrap.socket_mode(settings, kit.db, publisher)
    stop = asyncio.Event()
    async with rig(kit, server, settings) as r:
        await publisher.start()
        task = asyncio.ensure_future(front.run(stop))
        try:
            async with asyncio.timeout(30):
                await front.connected.wait()
            await r.drive()
            channel, ts = r.request_of(rid)
            payload = click(
                user="U1",
                action_id=APPROVE_ACTION_ID,
                value=f"{rid}:approve",
                channel=channel,
                message_ts=ts,
            )
            await asyncio.to_thread(sockets.push, envelope(1, payload))
            assert await sockets.wait_ack_async("env-1") < 3
            await r.until(lambda: kit.steps(rid)["approve"].decision == "approved")
            await r.until(
                lambda: any(
                    "*Approved* by <@U1>" in json.dumps(c) for c in server.calls_to("chat.update")
                )
            )
            await r.drive()

            await asyncio.to_thread(sockets.push, envelope(2, payload))  # redelivered
            late = {
                **payload,
                "actions": [{**payload["actions"][0], "action_ts": f"{time.time() - 600:.6f}"}],
            }
            await asyncio.to_thread(sockets.push, envelope(3, late))
            await sockets.wait_ack_async("env-3")
            await r.until(lambda: len(r.refusals()) == 2)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                async with asyncio.timeout(30):
                    await task
            await publisher.stop()

    assert kit.run(rid).status == "completed"
    assert kit.iam.keys[KEY].status == "Inactive"
    assert kit.iam.calls["set_access_key_status"] == 1
    assert sorted(record.data["reason"] for record in r.refusals()) == ["late", "replayed"]
    assert {record.data["via"] for record in r.refusals()} == {"socket"}
    assert server.calls_to("apps.connections.open")[0]["token"] == "xapp-1-responder"


def test_socket_mode_wants_an_app_level_token_and_never_repeats_it(
    kit: Kit, settings: Settings
) -> None:
    """A bot token given as the app-level token is refused by name, its value not shown."""
    front = bootstrap.slack_front(settings, kit.db, bootstrap.kafka_publisher(settings))
    with pytest.raises(Invalid) as info:
        SocketModeFront(front, app_token=SecretStr("xoxb-not-an-app-token"))
    assert "xapp-" in str(info.value) and "xoxb-not" not in str(info.value)
    assert "xapp" not in repr(SocketModeFront(front, app_token=SecretStr("xapp-1-secret")))
