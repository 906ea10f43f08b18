"""A Socket Mode look-alike for tests: the WebSocket end of `apps.connections.open`.

An aiohttp server on a free loopback port, with its own event loop in a daemon thread (slack-sdk's
aiohttp client needs a real WebSocket). Like Slack it greets each connection with `hello`;
`push(envelope)` sends an envelope to the connected client, and the acknowledgements that come
back (`{"envelope_id": ...}`) are recorded with the time they took.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import TracebackType
from typing import Any, Self

from aiohttp import WSMsgType, web


class SocketModeServer:
    def __init__(self) -> None:
        self.acks: dict[str, float] = {}  # envelope id → seconds from push to acknowledgement
        self.connections = 0
        self._pushed: dict[str, float] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._changed = threading.Condition()
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self._changed:
            self._sockets.append(ws)
            self.connections += 1
            self._changed.notify_all()
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1}))
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            envelope_id = json.loads(message.data).get("envelope_id")
            with self._changed:
                if envelope_id in self._pushed and envelope_id not in self.acks:
                    self.acks[envelope_id] = time.monotonic() - self._pushed[envelope_id]
                self._changed.notify_all()
        with self._changed:
            self._sockets.remove(ws)
        return ws

    # --- what tests do -----------------------------------------------------------------------

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._sockets:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no Socket Mode client connected")
                self._changed.wait(left)

    def push(self, envelope: dict[str, Any]) -> None:
        """Send an envelope to the newest connection."""
        self.wait_connected()
        ws = self._sockets[-1]
        with self._changed:
            self._pushed[str(envelope["envelope_id"])] = time.monotonic()
        text = json.dumps(envelope)
        asyncio.run_coroutine_threadsafe(ws.send_str(text), self._loop).result(10)

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> float:
        """Seconds the client took to acknowledge the envelope."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while envelope_id not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"envelope {envelope_id} was not acknowledged")
                self._changed.wait(left)
            return self.acks[envelope_id]

    async def wait_ack_async(self, envelope_id: str, timeout: float = 10.0) -> float:
        return await asyncio.to_thread(self.wait_ack, envelope_id, timeout)
