"""Live pages: server-sent events that redraw parts of a page when the database changes.

One poller per process (`Changes`) reads the newest audit sequence number every
`RESPONDER_WEB__POLL_S` (1 s) while anyone listens: every change responder makes to an
incident or a run appends an audit record, so a new number means "look again". Each open page
then renders its fragments (the same templates as the page) and sends those that differ from
what it last sent, as `swap` events: `{"target": element id, "html": ...}`. Pages are also
redrawn every `TICK_S` (SLA clocks move with time) and a comment line keeps idle connections
honest. Connections per process are bounded (`RESPONDER_WEB__MAX_LIVE`, 503 beyond), each ends
after `RESPONDER_WEB__LIVE_MAX_S` (the browser reconnects), and a session that ends (logout,
expiry, revoked token) ends its streams with a `logout` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import orjson
import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from responder.api.context import ApiContext
from responder.api.web import render, screens
from responder.api.web.login import context, resume, session_id
from responder.audit.store import AuditRecord
from responder.service import sessions
from responder.service.errors import ServiceError
from responder.service.sessions import Login

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/ui/live", include_in_schema=False)

TICK_S = 15.0  # redraw at least this often (SLA clocks, "5m ago")
RETRY_MS = 3000  # how soon a browser reconnects after a stream ends

Fragments = dict[str, str]
"""Element id: its new inner HTML."""


def newest_audit_seq(engine: Engine) -> int:
    with Session(engine) as db:
        return int(db.exec(select(func.max(AuditRecord.seq))).one() or 0)


class Full(Exception):
    """No more live connections in this process."""


class Changes:
    """The shared poller: `stamp` moves whenever the database has something new."""

    def __init__(self, read: Callable[[], int], *, poll_s: float, limit: int) -> None:
        self.read = read
        self.poll_s = poll_s
        self.limit = limit
        self.stamp = 0
        self.listeners = 0
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def changed(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        if self.listeners >= self.limit:
            raise Full
        self.listeners += 1
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._poll())
        try:
            yield
        finally:
            self.listeners -= 1

    async def _poll(self) -> None:
        failing = False
        while self.listeners:
            try:
                stamp = await anyio.to_thread.run_sync(self.read)
            except Exception as exc:  # the database is away: say so once, keep trying
                if not failing:
                    log.warning("live pages cannot read the database", error=str(exc)[:200])
                failing = True
            else:
                failing = False
                if stamp != self.stamp:
                    self.stamp = stamp
                    changed, self._changed = self.changed, asyncio.Event()
                    changed.set()
            await asyncio.sleep(self.poll_s)

    async def wait(self, seen: int, timeout: float) -> int:
        """The stamp once it differs from `seen`, or after `timeout` anyway."""
        if self.stamp == seen:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.changed.wait()
        return self.stamp


def for_app(ctx: ApiContext) -> Changes:
    """The poller an app's live pages share (`site.install` puts it in `app.state.changes`)."""
    web = ctx.settings.web
    return Changes(lambda: newest_audit_seq(ctx.engine), poll_s=web.poll_s, limit=web.max_live)


def event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def stream(
    ctx: ApiContext, hub: Changes, sid: str, draw: Callable[[Session, Login], Fragments]
) -> AsyncIterator[bytes]:
    """The events of one live page until the session ends or the connection is old enough."""
    gauge = ctx.metrics.live

    def redraw() -> Fragments | None:
        with Session(ctx.engine) as db:
            who = sessions.resume(db, sid)
            return None if who is None else draw(db, who)

    yield f"retry: {RETRY_MS}\n\n".encode()
    sent: Fragments = {}
    seen = -1
    ends = time.monotonic() + ctx.settings.web.live_max_s
    gauge.inc()
    try:
        while time.monotonic() < ends:
            seen = await hub.wait(seen, TICK_S)
            fragments = await anyio.to_thread.run_sync(redraw)
            if fragments is None:
                yield event("logout", {})
                return
            fresh = {k: v for k, v in fragments.items() if sent.get(k) != v}
            for target, html in fresh.items():
                yield event("swap", {"target": target, "html": html})
            sent.update(fresh)
            if not fresh:
                yield b": idle\n\n"
    finally:
        gauge.dec()


def _respond(request: Request, draw: Callable[[Session, Login], Fragments]) -> Response:
    ctx = context(request)
    sid = session_id(request)
    if resume(ctx, sid) is None:
        return Response("sign in first", status_code=401, media_type="text/plain")
    hub: Changes = request.app.state.changes
    if hub.listeners >= hub.limit:
        return Response("too many live pages", status_code=503, headers={"Retry-After": "30"})

    async def body() -> AsyncIterator[bytes]:
        try:
            async with hub.listening():
                async for chunk in stream(ctx, hub, sid or "", draw):
                    yield chunk
        except Full:
            yield event("busy", {})

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )


@router.get("/queue")
def live_queue(request: Request) -> Response:
    chosen = screens.QueueFilter.parse(request.query_params)
    targets = context(request).sla_targets

    def draw(db: Session, who: Login) -> Fragments:
        rows = screens.queue(db, chosen, targets)
        return {"queue-rows": render.fragment("_queue_rows.html", incidents=rows)}

    return _respond(request, draw)


@router.get("/incidents/{incident_id}")
def live_incident(request: Request, incident_id: str) -> Response:
    targets = context(request).sla_targets

    def draw(db: Session, who: Login) -> Fragments:
        try:
            screen = screens.incident(db, incident_id[:64], targets)
        except ServiceError:
            return {}
        can = screens.Can.of(who.principal)
        values = {"screen": screen, "login": who, "can": can}
        parts = {
            "incident-summary": "_summary.html",
            "incident-runs": "_runs.html",
            "incident-evidence": "_evidence.html",
            "incident-comments": "_comments.html",
            "incident-timeline": "_timeline.html",
        }
        if can.act:
            parts["incident-actions"] = "_status_actions.html"
        return {
            target: render.fragment(name, back="incident", **values)
            for target, name in parts.items()
        }

    return _respond(request, draw)


@router.get("/approvals")
def live_approvals(request: Request) -> Response:
    def draw(db: Session, who: Login) -> Fragments:
        values = {"waiting": screens.approvals(db), "login": who}
        return {
            "approvals-list": render.fragment(
                "_approvals.html", can=screens.Can.of(who.principal), **values
            )
        }

    return _respond(request, draw)
