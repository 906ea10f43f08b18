"""The dashboard's pages and the analyst actions behind its buttons.

Pages are plain GETs rendered on the server; actions are POSTed forms (CSRF secret and origin
checked) that call the same service operations as the REST API, as `token:NAME` of the
logged-in token, and answer with a redirect back (post/redirect/get). A role that may not use a
button does not see it, and is refused here anyway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio
import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from sqlmodel import Session

from responder.api.problems import service_status
from responder.api.web import render, screens
from responder.api.web.login import (
    Refused,
    check_csrf,
    clear_cookie,
    context,
    current,
    form,
    resume,
    session_id,
    set_cookie,
)
from responder.commands import AnyCommand
from responder.service import incidents as incident_ops
from responder.service import runs as run_ops
from responder.service import sessions
from responder.service.errors import ServiceError
from responder.service.identity import Role, permits
from responder.service.sessions import Login
from responder.service.writer import Writer

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/ui", include_in_schema=False)
root = APIRouter(include_in_schema=False)

SENT = {
    "ack": "Acknowledgement sent.",
    "resolve": "Resolution sent.",
    "false-positive": "Marked as a false positive; playbook steps with an undo will be undone.",
    "reopen": "Reopening sent.",
    "assign": "Assignment sent.",
    "comment": "Comment sent.",
    "approve": "Approval sent.",
    "deny": "Denial sent.",
}
PENDING = " A worker applies it in a moment; this page updates by itself."


def to(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def to_login() -> RedirectResponse:
    return to("/ui/login")


def failure(status: int, message: str, login: Login | None, back: str | None = None) -> Response:
    titles = {403: "Not allowed", 404: "Not found", 409: "Not possible now", 503: "Unavailable"}
    return render.page(
        "error.html",
        status=status,
        title=titles.get(status, "Refused"),
        message=message,
        login=login,
        back=back,
    )


def status_of(exc: ServiceError) -> int:
    return service_status(exc, (400, "refused"))[0]


def notice(request: Request) -> str | None:
    sent = SENT.get(request.query_params.get("sent", ""))
    return None if sent is None else sent + PENDING


# --- signing in and out -------------------------------------------------------------------


@root.get("/")
def home() -> RedirectResponse:
    return to("/ui/")


@router.get("/login")
def login_page(request: Request) -> Response:
    if resume(context(request), session_id(request)) is not None:
        return to("/ui/")
    return _login_form(request)


def _login_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    return render.page(
        "login.html",
        status=status,
        error=error,
        login=None,
        ttl=render.duration(context(request).settings.web.session_ttl_s),
    )


@router.post("/login")
async def login(request: Request) -> Response:
    try:
        fields = await form(request)
    except Refused as refused:
        return _login_form(request, refused.message, refused.status)
    ctx = context(request)
    ttl = timedelta(seconds=ctx.settings.web.session_ttl_s)

    def start() -> tuple[str, Login] | None:
        with Session(ctx.engine) as db, db.begin():
            return sessions.start(db, fields.get("token", ""), ttl=ttl, need=Role.viewer)

    started = await anyio.to_thread.run_sync(start)
    if started is None:
        log.warning("dashboard sign-in refused")
        return _login_form(
            request,
            "That token cannot sign in: it is unknown, expired or revoked, or its role cannot "
            "read incidents.",
            401,
        )
    sid, who = started
    log.info("dashboard sign-in", actor=who.principal.by)
    response = to("/ui/")
    set_cookie(request, response, sid)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    who = await current(request)
    response = to("/ui/login")
    if who is not None:
        try:
            check_csrf(who, await form(request))
        except Refused as refused:
            return failure(refused.status, refused.message, who)
        ctx, sid = context(request), session_id(request) or ""

        def end() -> None:
            with Session(ctx.engine) as db, db.begin():
                sessions.end(db, sid)

        await anyio.to_thread.run_sync(end)
    clear_cookie(request, response)
    return response


# --- pages --------------------------------------------------------------------------------


@router.get("/")
def queue_page(request: Request) -> Response:
    ctx = context(request)
    who = resume(ctx, session_id(request))
    if who is None:
        return to_login()
    chosen = screens.QueueFilter.parse(request.query_params)
    with Session(ctx.engine) as db:
        incidents = screens.queue(db, chosen, ctx.sla_targets)
    return render.page(
        "queue.html",
        login=who,
        nav="queue",
        live_url="/ui/live/queue?" + chosen.query(),
        chosen=chosen,
        incidents=incidents,
        status_choices=screens.STATUS_CHOICES,
        severity_choices=screens.SEVERITY_CHOICES,
    )


@router.get("/incidents/{incident_id}")
def incident_page(request: Request, incident_id: str) -> Response:
    ctx = context(request)
    who = resume(ctx, session_id(request))
    if who is None:
        return to_login()
    try:
        with Session(ctx.engine) as db:
            screen = screens.incident(db, incident_id[:64], ctx.sla_targets)
    except ServiceError as exc:
        return failure(status_of(exc), str(exc), who)
    return render.page(
        "incident.html",
        login=who,
        notice=notice(request),
        live_url=f"/ui/live/incidents/{screen.incident.id}",
        screen=screen,
        can=screens.Can.of(who.principal),
        back="incident",
    )


@router.get("/incidents/{incident_id}/events/{position}")
def event_page(request: Request, incident_id: str, position: int) -> Response:
    ctx = context(request)
    who = resume(ctx, session_id(request))
    if who is None:
        return to_login()
    try:
        with Session(ctx.engine) as db:
            detail = incident_ops.incident_detail(
                db, incident_id[:64], events_limit=1000, targets=ctx.sla_targets
            )
    except ServiceError as exc:
        return failure(status_of(exc), str(exc), who)
    event = next((e for e in detail.events if e.position == position), None)
    if event is None:
        return failure(404, f"incident {detail.id} has no event {position}", who)
    return render.page("event.html", login=who, incident=detail, event=event)


@router.get("/approvals")
def approvals_page(request: Request) -> Response:
    ctx = context(request)
    who = resume(ctx, session_id(request))
    if who is None:
        return to_login()
    with Session(ctx.engine) as db:
        waiting = screens.approvals(db)
    return render.page(
        "approvals.html",
        login=who,
        nav="approvals",
        notice=notice(request),
        live_url="/ui/live/approvals",
        waiting=waiting,
        can=screens.Can.of(who.principal),
    )


# --- actions ------------------------------------------------------------------------------

Action = Callable[[Writer, str, str, dict[str, str]], Awaitable[AnyCommand]]

INCIDENT_ACTIONS: dict[str, Action] = {
    "ack": lambda w, by, iid, f: incident_ops.acknowledge(w, by, iid),
    "resolve": lambda w, by, iid, f: incident_ops.resolve(w, by, iid),
    "false-positive": lambda w, by, iid, f: incident_ops.mark_false_positive(w, by, iid),
    "reopen": lambda w, by, iid, f: incident_ops.set_status(w, by, iid, "open"),
    "assign": lambda w, by, iid, f: incident_ops.assign(w, by, iid, f.get("assignee", "")),
    "comment": lambda w, by, iid, f: incident_ops.comment(w, by, iid, f.get("text", "")),
}


async def _authorized(request: Request, need: Role) -> tuple[Login, dict[str, str]] | Response:
    """The login and its form, or the response that refuses the request."""
    who = await current(request)
    if who is None:
        return to_login()
    try:
        fields = await form(request)
        check_csrf(who, fields)
    except Refused as refused:
        return failure(refused.status, refused.message, who)
    if not permits(who.principal.role, need):
        return failure(
            403,
            f"This needs the {need.value} role; your token has {who.principal.role.value}.",
            who,
        )
    return who, fields


@router.post("/incidents/{incident_id}/{action}")
async def incident_action(request: Request, incident_id: str, action: str) -> Response:
    act = INCIDENT_ACTIONS.get(action)
    if act is None:
        return failure(404, "No such action.", None)
    checked = await _authorized(request, Role.analyst)
    if isinstance(checked, Response):
        return checked
    who, fields = checked
    back = f"/ui/incidents/{incident_id[:64]}"
    try:
        await act(context(request).writer, who.principal.by, incident_id[:64], fields)
    except ServiceError as exc:
        return failure(status_of(exc), str(exc), who, back)
    return to(f"{back}?sent={action}")


@router.post("/runs/{run_id}/{decision}")
async def run_decision(request: Request, run_id: str, decision: str) -> Response:
    if decision not in ("approve", "deny"):
        return failure(404, "No such decision.", None)
    checked = await _authorized(request, Role.responder)
    if isinstance(checked, Response):
        return checked
    who, fields = checked
    writer = context(request).writer
    try:
        run = await writer.read(run_ops.find_run, run_id[:64])
        await run_ops.decide(
            writer,
            who.principal.by,
            run.id,
            approved=decision == "approve",
            step=fields.get("step") or None,
        )
    except ServiceError as exc:
        return failure(status_of(exc), str(exc), who)
    if fields.get("back") == "approvals":
        return to(f"/ui/approvals?sent={decision}")
    return to(f"/ui/incidents/{run.incident_id}?sent={decision}")
