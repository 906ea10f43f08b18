"""Slack clicks over Socket Mode (`responder slack`): no public URL, an outbound WebSocket.

slack-sdk's aiohttp `SocketModeClient` opens the connection with the app-level token
(`apps.connections.open`, scope `connections:write`) and reconnects when Slack asks it to or the
connection goes stale. Each `interactive` envelope is acknowledged at once (Slack wants it
within 3 seconds), then handed to `SlackFront`: the connection is authenticated by the token, so
there is no signature to check, but the payload's shape, the click's age and replays are checked
as for HTTP. Several processes may run it: Slack delivers each envelope to one connection.
"""

from __future__ import annotations

import asyncio
import logging

import structlog
from pydantic import SecretStr
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from responder.service.errors import Invalid
from responder.service.slack.front import SlackFront

log = structlog.get_logger(__name__)

APP_TOKEN_PREFIX = "xapp-"  # noqa: S105  (the documented prefix, not a secret)


def checked_app_token(token: SecretStr | None) -> SecretStr:
    """The app-level token, or Invalid (which never repeats a value: a bot token pasted here
    must not reach a terminal or a log)."""
    if token is None:
        raise Invalid("Socket Mode needs RESPONDER_SLACK__APP_TOKEN (an xapp-... token)")
    if not token.get_secret_value().startswith(APP_TOKEN_PREFIX):
        raise Invalid("RESPONDER_SLACK__APP_TOKEN must be an app-level token (xapp-...)")
    return token


class SocketModeFront:
    def __init__(
        self,
        front: SlackFront,
        *,
        app_token: SecretStr,
        base_url: str | None = None,
        ping_interval_s: float = 10.0,
    ) -> None:
        self.front = front
        self._token = checked_app_token(app_token)
        self._base_url = base_url
        self.ping_interval_s = ping_interval_s
        self.connected = asyncio.Event()
        self.handled = 0

    def __repr__(self) -> str:  # never the token
        return f"SocketModeFront(base_url={self._base_url!r})"

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Connect and take clicks until `stop` is set (or the task is cancelled)."""
        from slack_sdk.socket_mode.aiohttp import SocketModeClient

        web = AsyncWebClient(retry_handlers=[])
        if self._base_url:  # the SDK joins method names onto it with urljoin: it needs the /
            url = self._base_url
            web.base_url = url if url.endswith("/") else url + "/"
        client = SocketModeClient(
            app_token=self._token.get_secret_value(),
            web_client=web,
            ping_interval=self.ping_interval_s,
            logger=logging.getLogger("slack_sdk.socket_mode"),
        )
        client.socket_mode_request_listeners.append(self._on_request)
        try:
            await client.connect()  # type: ignore[no-untyped-call]
            self.connected.set()
            log.info("slack socket mode connected")
            await (stop or asyncio.Event()).wait()
        finally:
            self.connected.clear()
            await client.close()  # type: ignore[no-untyped-call]
            log.info("slack socket mode closed")

    async def _on_request(
        self, client: AsyncBaseSocketModeClient, request: SocketModeRequest
    ) -> None:
        # the acknowledgement first: whatever follows may take longer than Slack waits
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        if request.type != "interactive":
            log.info("slack envelope ignored", type=request.type[:40])
            return
        click = await self.front.receive_envelope(request.payload)
        if click is not None:
            await self.front.handle(click)
            self.handled += 1
