"""slack.notify and http.request through their real adapters (slack-sdk, aiohttp) over loopback.

Slack is `tests.support.slack_server.SlackServer` (a Web API look-alike in a thread); the HTTP target is
an aiohttp app started in the test. No network beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from structlog.testing import capture_logs

from responder.actions.http import AiohttpAdapter, HttpRequest, http_request
from responder.actions.ports import Ports
from responder.actions.registry import ActionError
from responder.actions.slack import (
    SlackNotify,
    SlackWebAdapter,
    notify,
    refresh_incident_message,
)
from tests.support.actions import INCIDENT, ctx
from tests.support.slack_server import SlackServer, channel_id

pytestmark = pytest.mark.integration

CHANNEL = "#secops-incidents"


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Slack -------------------------------------------------------------------------------------


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    with SlackServer(token="xoxb-right-token") as server:
        yield server


def adapter_for(server: SlackServer, token: str | None = None) -> SlackWebAdapter:
    return SlackWebAdapter(
        token=SecretStr(token or server.token), base_url=server.base_url, default_channel=CHANNEL
    )


async def test_notify_posts_the_incident_with_the_bot_token(slack_server: SlackServer) -> None:
    slack = adapter_for(slack_server)

    out = await notify(
        SlackNotify(text="Key revoked", links={"Runbook": "https://wiki.example.com/rb"}),
        ctx(Ports(slack=slack)),
    )

    [call] = slack_server.calls
    assert call["method"] == "chat.postMessage"
    assert call["token"] == "xoxb-right-token"
    payload = call["payload"]
    assert payload["channel"] == CHANNEL
    assert payload["text"].startswith("[CRITICAL] Leaked key AKIA123 used")
    assert payload["blocks"][0]["text"]["text"] == ":red_circle: CRITICAL: Leaked key AKIA123 used"
    assert "<https://wiki.example.com/rb|Runbook>" in str(payload["blocks"])
    assert out == {"sent": True, "channel": channel_id(CHANNEL), "ts": call["answer"]["ts"]}


async def test_notify_with_ts_updates_the_posted_message(slack_server: SlackServer) -> None:
    slack = adapter_for(slack_server)
    first = await notify(SlackNotify(), ctx(Ports(slack=slack)))

    second = await notify(
        SlackNotify(channel=first["channel"], ts=first["ts"]),
        ctx(Ports(slack=slack), {**INCIDENT, "status": "resolved"}),
    )

    assert second == first
    [update] = slack_server.calls_to("chat.update")
    assert update["payload"]["ts"] == first["ts"]
    stored = slack_server.messages[(first["channel"], first["ts"])]
    assert "*Status*\nresolved" in [f["text"] for f in stored["blocks"][1]["fields"]]


async def test_refresh_incident_message_redraws_it(slack_server: SlackServer) -> None:
    slack = adapter_for(slack_server)
    posted = await slack.post_message(channel=CHANNEL, text="x", blocks=[])

    await refresh_incident_message(
        slack, channel=posted["channel"], ts=posted["ts"], incident={**INCIDENT, "event_count": 7}
    )

    stored = slack_server.messages[(posted["channel"], posted["ts"])]
    assert "*Events*\n7" in [f["text"] for f in stored["blocks"][1]["fields"]]


async def test_an_invalid_token_is_not_retryable_and_never_logged(
    slack_server: SlackServer,
) -> None:
    slack = adapter_for(slack_server, token="xoxb-wrong-token")

    with capture_logs() as logs, pytest.raises(ActionError) as err:
        await notify(SlackNotify(), ctx(Ports(slack=slack)))

    assert err.value.code == "invalid_auth"
    assert not err.value.retryable
    assert slack_server.calls[0]["token"] == "xoxb-wrong-token"
    assert "xoxb-wrong-token" not in f"{err.value} {logs} {slack!r}"
    assert err.value.__cause__ is None


async def test_unknown_channel_is_not_retryable(slack_server: SlackServer) -> None:
    slack_server.unknown_channels.add("#nope")

    with pytest.raises(ActionError) as err:
        await notify(SlackNotify(channel="#nope"), ctx(Ports(slack=adapter_for(slack_server))))

    assert (err.value.code, err.value.retryable) == ("channel_not_found", False)


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, "ratelimited"), (500, "internal_error"), (503, "service_unavailable")],
)
async def test_throttling_and_server_errors_are_retryable_once_each(
    slack_server: SlackServer, status: int, error: str
) -> None:
    slack = adapter_for(slack_server)
    slack_server.fail_next(1, error=error, status=status, retry_after=3)

    with pytest.raises(ActionError) as err:
        await notify(SlackNotify(), ctx(Ports(slack=slack)))
    assert (err.value.code, err.value.retryable) == (error, True)
    assert "retry after 3s" in str(err.value)

    out = await notify(SlackNotify(), ctx(Ports(slack=slack)))
    assert out["sent"] is True
    assert len(slack_server.calls) == 2  # the SDK did not retry behind the runner's back


async def test_unreachable_slack_is_retryable() -> None:
    slack = SlackWebAdapter(
        token=SecretStr("xoxb-t"),
        base_url=f"http://127.0.0.1:{closed_port()}/api/",
        default_channel=CHANNEL,
    )

    with pytest.raises(ActionError) as err:
        await slack.post_message(channel=CHANNEL, text="x", blocks=[])

    assert (err.value.code, err.value.retryable) == ("connection_error", True)


async def test_not_configured_returns_sent_false(slack_server: SlackServer) -> None:
    with capture_logs() as logs:
        out = await notify(SlackNotify(), ctx(Ports(slack=None)))

    assert out == {"sent": False, "reason": "slack is not configured"}
    assert [e["log_level"] for e in logs] == ["warning"]
    assert slack_server.calls == []


async def test_slack_server_speaks_form_bodies_and_knows_its_methods(
    slack_server: SlackServer,
) -> None:
    client = AsyncWebClient(token=slack_server.token, base_url=slack_server.base_url)

    answer = await client.api_call(
        "chat.postMessage", data={"channel": "C0TEST", "text": "hi", "blocks": "[]"}
    )
    with pytest.raises(SlackApiError) as err:
        await client.api_call("auth.test")

    assert answer["channel"] == "C0TEST"
    assert err.value.response["error"] == "unknown_method"
    calls = await slack_server.wait_for_async(lambda calls: len(calls) == 2, timeout=5)
    assert calls[0]["payload"] == {"channel": "C0TEST", "text": "hi", "blocks": []}


# --- HTTP --------------------------------------------------------------------------------------


@dataclass
class Target:
    server: TestServer
    seen: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    app = web.Application()
    state = Target(server=TestServer(app, host="127.0.0.1"))

    async def record(request: web.Request) -> None:
        body = await request.json() if request.can_read_body else None
        state.seen.append({"path": request.path, "headers": dict(request.headers), "json": body})

    async def hook(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"ok": True})

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound(location=state.url("/hook"))

    async def fail(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=500, text="boom")

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await state.release.wait()
        return web.Response(text="late")

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="x" * 100_000)

    app.router.add_route("*", "/hook", hook)
    app.router.add_get("/redirect", redirect)
    app.router.add_post("/fail", fail)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    await state.server.start_server()
    try:
        yield state
    finally:
        state.release.set()
        await state.server.close()


def http_ports(target: Target) -> Ports:
    return Ports(http=AiohttpAdapter(allowed_hosts=[target.host], timeout_s=5))


async def test_request_carries_the_idempotency_key_and_body(target: Target) -> None:
    params = HttpRequest.model_validate(
        {"url": target.url("/hook"), "headers": {"X-Team": "sec"}, "json": {"incident": "inc-42"}}
    )

    out = await http_request(params, ctx(http_ports(target)))

    assert out == {"status": 200, "json": {"ok": True}}
    [seen] = target.seen
    assert seen["headers"]["Idempotency-Key"] == "run-1:notify"
    assert seen["headers"]["X-Team"] == "sec"
    assert seen["json"] == {"incident": "inc-42"}


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/hook",  # same server, but not the listed name
        "http://127.0.0.1:{other}/hook",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
async def test_a_refused_host_is_never_contacted(target: Target, url: str) -> None:
    url = url.format(port=target.server.port, other=closed_port())

    with pytest.raises(ActionError) as err:
        await http_request(HttpRequest(url=url), ctx(http_ports(target)))

    assert (err.value.code, err.value.retryable) == ("host_not_allowed", False)
    assert target.seen == []


async def test_redirects_are_returned_not_followed(target: Target) -> None:
    adapter = AiohttpAdapter(allowed_hosts=[target.host])

    resp = await adapter.request(
        method="GET", url=target.url("/redirect"), headers={}, json=None, timeout_s=5
    )
    with pytest.raises(ActionError) as err:
        await http_request(
            HttpRequest(method="GET", url=target.url("/redirect")), ctx(Ports(http=adapter))
        )
    out = await http_request(
        HttpRequest(method="GET", url=target.url("/redirect"), ok_status=[302]),
        ctx(Ports(http=adapter)),
    )

    assert resp.status == 302
    assert resp.headers["Location"].endswith("/hook")
    assert (err.value.code, err.value.retryable) == ("http_302", False)
    assert out["status"] == 302
    assert [s["path"] for s in target.seen] == ["/redirect"] * 3


async def test_a_5xx_is_retryable(target: Target) -> None:
    with pytest.raises(ActionError) as err:
        await http_request(HttpRequest(url=target.url("/fail")), ctx(http_ports(target)))

    assert (err.value.code, err.value.retryable) == ("http_500", True)
    assert "boom" in str(err.value)


async def test_a_timeout_is_retryable(target: Target) -> None:
    with pytest.raises(ActionError) as err:
        await http_request(
            HttpRequest(method="GET", url=target.url("/slow"), timeout_s=2),  # it never answers
            ctx(http_ports(target)),
        )

    assert (err.value.code, err.value.retryable) == ("timeout", True)
    assert [s["path"] for s in target.seen] == ["/slow"]


async def test_a_refused_connection_is_retryable() -> None:
    port = closed_port()
    adapter = AiohttpAdapter(allowed_hosts=[f"127.0.0.1:{port}"])

    with pytest.raises(ActionError) as err:
        await http_request(HttpRequest(url=f"http://127.0.0.1:{port}/"), ctx(Ports(http=adapter)))

    assert (err.value.code, err.value.retryable) == ("connection_error", True)


async def test_a_large_body_is_truncated(target: Target) -> None:
    out = await http_request(
        HttpRequest(method="GET", url=target.url("/big")), ctx(http_ports(target))
    )

    assert out["truncated"] is True
    assert len(out["body"]) == 64 * 1024
