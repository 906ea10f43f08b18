"""Dashboard sessions: a login with an API token becomes a random session id in a cookie.

The cookie holds the session id, never the token; the table holds only the id's SHA-256, the
token it stands for and a CSRF secret. Every use checks the token again (revoked or expired
ends its sessions at once) and the session's own expiry. Starting and ending a session is
audited under the token's identity.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from responder.audit.store import append as audit_append
from responder.service.identity import Principal, Role, permits
from responder.service.tokens import ApiToken, WebSession, authenticate, digest
from responder.service.views import as_utc


@dataclass(frozen=True)
class Login:
    """A live session: who is behind it and the secret its forms must carry."""

    principal: Principal
    csrf: str


def _now() -> datetime:
    return datetime.now(UTC)


def start(
    session: Session, token: str, *, ttl: timedelta, need: Role = Role.viewer
) -> tuple[str, Login] | None:
    """A new session for a live token whose role permits `need` (in the caller's transaction):
    (session id, login); None for any other token."""
    principal = authenticate(session, token.strip())
    if principal is None or not permits(principal.role, need):
        return None
    sid = secrets.token_urlsafe(32)
    at = _now()
    csrf = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            digest=digest(sid),
            token_id=principal.token_id,
            csrf=csrf,
            created_at=at,
            expires_at=at + ttl,
        )
    )
    session.flush()
    audit_append(session, [(principal.by, "session.started", principal.by, {})])
    return sid, Login(principal, csrf)


def resume(session: Session, sid: str) -> Login | None:
    """The login behind a session id, or None (unknown, expired, or its token is not live)."""
    if not sid or len(sid) > 128:
        return None
    wanted = digest(sid)
    found = session.exec(
        select(WebSession, ApiToken)
        .join(ApiToken, col(ApiToken.id) == col(WebSession.token_id))
        .where(WebSession.digest == wanted)
    ).first()
    if found is None:
        return None
    row, token = found
    now = _now()
    if not hmac.compare_digest(row.digest, wanted) or as_utc(row.expires_at) <= now:
        return None
    if token.revoked_at is not None:
        return None
    if token.expires_at is not None and as_utc(token.expires_at) <= now:
        return None
    return Login(Principal(token_id=token.id, name=token.name, role=Role(token.role)), row.csrf)


def end(session: Session, sid: str) -> None:
    """Log out (in the caller's transaction); expired sessions of any token are dropped too."""
    login = resume(session, sid)
    session.execute(delete(WebSession).where(col(WebSession.digest) == digest(sid)))
    session.execute(delete(WebSession).where(col(WebSession.expires_at) <= _now()))
    if login is not None:
        by = login.principal.by
        audit_append(session, [(by, "session.ended", by, {})])


def csrf_ok(login: Login, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(login.csrf, presented)
