"""A small Slack-Web-API-compatible server for tests (slack-sdk's own mock server is not shipped).

It runs `http.server` in a background thread on 127.0.0.1, so in-process async tests and worker
subprocesses (given `base_url` through RESPONDER_SLACK__BASE_URL) reach the same server. It keeps
what a test wants to assert on: every call with its token and payload, and the current text and
blocks of each message. Like Slack, it answers API errors with HTTP 200 and `{"ok": false}`
(except throttling: HTTP 429 with Retry-After), returns channel ids (not names) from
chat.postMessage, and wants that id back in chat.update. chat.postEphemeral is kept per user;
apps.connections.open wants the app-level token and answers with `socket_url` (a
`SocketModeServer`'s, which a test sets).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from tests.support.threaded import ThreadedServer

Call = dict[str, Any]


def channel_id(channel: str) -> str:
    """A stable, Slack-looking id for a channel name (ids pass through unchanged)."""
    if channel[:1] in ("C", "G", "D") and channel[1:].isalnum() and channel.isupper():
        return channel
    digest = hashlib.sha1(channel.lstrip("#").encode(), usedforsecurity=False).hexdigest()
    return "C" + digest[:10].upper()


class SlackServer(ThreadedServer):
    name = "slack-server"

    def __init__(self, token: str = "xoxb-test-token", app_token: str = "xapp-test-token") -> None:
        super().__init__()
        self.token = token
        self.app_token = app_token
        self.socket_url: str | None = None  # what apps.connections.open hands out
        self.ephemeral: list[dict[str, Any]] = []  # chat.postEphemeral payloads, in order
        self.unknown_channels: set[str] = set()  # names answered with channel_not_found
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel id, ts) → payload
        self._calls: list[Call] = []
        self._changed = threading.Condition()
        self._failures: list[tuple[int, str, int]] = []  # (status, error, retry_after)
        self._seq = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def make_server(self) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        return server

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # --- what tests look at ------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot: `{"method", "token", "payload", "status"}` per request, in order."""
        with self._changed:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c["method"] == method]

    def fail_next(
        self, count: int = 1, *, error: str = "ratelimited", status: int = 429, retry_after: int = 1
    ) -> None:
        """Answer the next `count` calls with `error` (default: Slack's throttling answer)."""
        with self._changed:
            self._failures.extend([(status, error, retry_after)] * count)

    def wait_for(
        self, predicate: Callable[[list[Call]], bool], timeout: float = 10.0
    ) -> list[Call]:
        """Block until `predicate(calls)` holds; the calls, or AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._calls)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"SlackServer: condition not met within {timeout}s; calls: {self._calls}"
                    )
                self._changed.wait(left)
            return list(self._calls)

    async def wait_for_async(
        self, predicate: Callable[[list[Call]], bool], timeout: float = 10.0
    ) -> list[Call]:
        """`wait_for` without blocking the event loop (for code under test on the same loop)."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout)

    # --- the API -----------------------------------------------------------------------------

    def handle(
        self, method: str, token: str | None, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One API call → (HTTP status, JSON answer, extra headers); records the call."""
        with self._changed:
            status, answer, headers = self._answer(method, token, payload)
            self._calls.append(
                {
                    "method": method,
                    "token": token,
                    "payload": payload,
                    "status": status,
                    "answer": answer,
                }
            )
            self._changed.notify_all()
        return status, answer, headers

    def _answer(
        self, method: str, token: str | None, payload: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self._failures:
            status, error, retry_after = self._failures.pop(0)
            return status, {"ok": False, "error": error}, {"Retry-After": str(retry_after)}
        if token is None:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if method == "apps.connections.open":
            if token != self.app_token or self.socket_url is None:
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            return 200, {"ok": True, "url": self.socket_url}, {}
        if token != self.token:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if method == "chat.postEphemeral":
            return self._ephemeral(payload)
        if method == "chat.postMessage":
            return self._post(payload)
        if method == "chat.update":
            return self._update(payload)
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def _post(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        channel = str(payload.get("channel") or "")
        if not channel or channel in self.unknown_channels:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if not payload.get("text") and not payload.get("blocks"):
            return 200, {"ok": False, "error": "no_text"}, {}
        self._seq += 1
        ts = f"{1_700_000_000 + self._seq}.{self._seq:06d}"
        cid = channel_id(channel)
        self.messages[(cid, ts)] = payload
        return (
            200,
            {"ok": True, "channel": cid, "ts": ts, "message": {"text": payload.get("text")}},
            {},
        )

    def _ephemeral(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not payload.get("channel") or not payload.get("user"):
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if not payload.get("text") and not payload.get("blocks"):
            return 200, {"ok": False, "error": "no_text"}, {}
        self._seq += 1
        self.ephemeral.append(payload)
        return 200, {"ok": True, "message_ts": f"{1_700_000_000 + self._seq}.{self._seq:06d}"}, {}

    def ephemeral_to(self, user: str) -> list[str]:
        """The texts of the ephemeral messages `user` was shown."""
        with self._changed:
            return [str(e.get("text")) for e in self.ephemeral if e.get("user") == user]

    def _update(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        key = (str(payload.get("channel")), str(payload.get("ts")))
        if key not in self.messages:
            known_channel = any(c == key[0] for c, _ in self.messages)
            error = "message_not_found" if known_channel else "channel_not_found"
            return 200, {"ok": False, "error": error}, {}
        self.messages[key] = payload
        return 200, {"ok": True, "channel": key[0], "ts": key[1], "text": payload.get("text")}, {}


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        data = json.loads(raw or b"{}")
        return data if isinstance(data, dict) else {}
    payload: dict[str, Any] = dict(parse_qsl(raw.decode(), keep_blank_values=True))
    for key in ("blocks", "attachments", "metadata"):  # form posts carry these as JSON text
        if isinstance(payload.get(key), str):
            with contextlib.suppress(ValueError):
                payload[key] = json.loads(payload[key])
    return payload


def _handler(server: SlackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if not self.path.startswith("/api/"):
                self._send(404, {"ok": False, "error": "not_found"}, {})
                return
            method = self.path[len("/api/") :].split("?", 1)[0]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = _parse_body(self.headers.get("Content-Type", ""), raw)
            auth = self.headers.get("Authorization", "")
            token = (
                auth[len("Bearer ") :] if auth.startswith("Bearer ") else payload.pop("token", None)
            )
            self._send(*server.handle(method, token, payload))

        def _send(self, status: int, answer: dict[str, Any], headers: dict[str, str]) -> None:
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler
