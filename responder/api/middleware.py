"""ASGI middleware, outermost first: request id (security headers, request metrics), authentication of
every `/v1` request, and request body limits. Pure ASGI, so they run before routing and before
FastAPI reads or validates a body."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import anyio
import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from responder.api.problems import BodyTooLarge, problem
from responder.metrics.api import ApiMetrics
from responder.service.identity import Principal

log = structlog.get_logger(__name__)

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
API_PREFIX = "/v1"
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # no-referrer would turn form posts' Origin into "null"
    # the dashboard's pages: no inline script or style, nothing from elsewhere, never framed
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
}


def _state(scope: Scope) -> dict[str, object]:
    state: dict[str, object] = scope.setdefault("state", {})
    return state


def under_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


class RequestId:
    """`X-Request-ID`: the caller's if it is a plain token of up to 128 characters, else a new
    one; bound to every log line of the request and returned on every response. Each request's
    time goes to the metrics under its route template (never its path)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id")
        request_id = given if given and REQUEST_ID.match(given) else uuid.uuid4().hex
        _state(scope)["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers.append("X-Request-ID", request_id)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_headers)
            finally:
                seconds = time.perf_counter() - started
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    ms=round(seconds * 1000, 1),
                )
                if self.metrics is not None:
                    self.metrics.observe(scope["method"], scope["path"], status, seconds)


class Authenticate:
    """Every `/v1` request needs `Authorization: Bearer <token>` naming a live token, else 401
    before anything else happens (routing, body, validation). The principal goes to the scope.

    `exempt` paths (exactly these, compared whole) authenticate their callers otherwise: the
    Slack request URL checks Slack's signature."""

    def __init__(
        self,
        app: ASGIApp,
        lookup: Callable[[str], Principal | None],
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.lookup = lookup
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not under_api(path) or path in self.exempt:
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, credential = header.partition(" ")
        principal = None
        if scheme.lower() == "bearer" and credential.strip():
            principal = await anyio.to_thread.run_sync(self.lookup, credential.strip())
        if principal is None:
            challenge = 'Bearer realm="responder"'
            if header:
                challenge += ', error="invalid_token"'
            response = problem(
                401,
                "a valid API token is required (Authorization: Bearer <token>)",
                kind="unauthenticated",
                path=scope["path"],
                request_id=str(_state(scope).get("request_id")),
                headers={"WWW-Authenticate": challenge},
            )
            await response(scope, receive, send)
            return
        _state(scope)["principal"] = principal
        with structlog.contextvars.bound_contextvars(actor=principal.by):
            await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over the limit (per path) while they are read: the route has
    authenticated and authorized the caller by then, so a 413 never hides a 401 or 403."""

    def __init__(self, app: ASGIApp, *, default: int, per_path: dict[str, int]) -> None:
        self.app = app
        self.default = default
        self.per_path = per_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope["path"], self.default)
        declared = Headers(scope=scope).get("content-length")
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)
