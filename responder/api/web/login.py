"""Who is logged in: a session cookie naming a server-side session (`service/sessions.py`).

The cookie is HttpOnly, SameSite=Strict, Secure over https (then named with the `__Host-`
prefix), and holds a random session id; the token typed into the login form is only ever in
that one POST body. Every state-changing form carries the session's CSRF secret, and a POST
whose Origin names another site is refused before anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import anyio
from fastapi import Request, Response
from sqlmodel import Session

from responder.api.context import ApiContext
from responder.service import sessions
from responder.service.sessions import Login

COOKIE = "responder_session"
SECURE_COOKIE = "__Host-responder_session"
MAX_FIELDS = 20
FORM = "application/x-www-form-urlencoded"


class Refused(Exception):
    """A request the dashboard will not act on (status and a message safe to show)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


def secure(request: Request) -> bool:
    chosen = context(request).settings.web.secure_cookie
    return request.url.scheme == "https" if chosen is None else chosen


def cookie_name(request: Request) -> str:
    return SECURE_COOKIE if secure(request) else COOKIE


def session_id(request: Request) -> str | None:
    return request.cookies.get(cookie_name(request))


def resume(ctx: ApiContext, sid: str | None) -> Login | None:
    """The login behind a session id (a database read: call it from a worker thread)."""
    if not sid:
        return None
    with Session(ctx.engine) as db:
        return sessions.resume(db, sid)


async def current(request: Request) -> Login | None:
    return await anyio.to_thread.run_sync(resume, context(request), session_id(request))


def set_cookie(request: Request, response: Response, sid: str) -> None:
    response.set_cookie(
        cookie_name(request),
        sid,
        max_age=int(context(request).settings.web.session_ttl_s),
        path="/",
        secure=secure(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        cookie_name(request), path="/", secure=secure(request), httponly=True, samesite="strict"
    )


def same_origin(request: Request) -> bool:
    """False when the browser says the form was posted from another site."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def form(request: Request) -> dict[str, str]:
    """A posted urlencoded form (the body limit applies), one value per field."""
    if not same_origin(request):
        raise Refused(403, "This form was posted from another site.")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM:
        raise Refused(415, "Forms are posted as application/x-www-form-urlencoded.")
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        fields = parse_qs(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise Refused(400, "Too many form fields.") from None
    return {name: values[0] for name, values in fields.items()}


def check_csrf(login: Login, fields: Mapping[str, str]) -> None:
    if not sessions.csrf_ok(login, fields.get("csrf")):
        raise Refused(403, "This form has expired or was not sent from this dashboard; reload it.")
