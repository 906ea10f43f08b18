"""API tokens: issued once, stored as a SHA-256 digest, checked on every request, revocable.

A token is `rsp_` + 43 url-safe characters (32 random bytes); only its digest is stored, so the
table holds nothing a caller could present. Names are unique for ever (a revoked name is not
reused), so `token:NAME` in the audit log always means one token. Issuing and revoking are
audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import Column, DateTime, delete
from sqlmodel import Field, Session, SQLModel, col, or_, select

from responder.audit.store import append as audit_append
from responder.service.errors import Conflict, Invalid, NotFound
from responder.service.identity import ACTOR_PREFIX, TOKEN_NAME, Principal, Role
from responder.service.views import Utc, as_utc

SECRET_PREFIX = "rsp_"  # noqa: S105  (a recognisable prefix, not a secret)
SHAPE = re.compile(r"^rsp_[A-Za-z0-9_-]{43}$")


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)
    digest: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_by: str = Field(max_length=200)
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    revoked_by: str | None = Field(default=None, max_length=200)


class WebSession(SQLModel, table=True):
    """A dashboard login: the digest of its random id and the token it stands for
    (`service/sessions.py`); revoking the token ends it."""

    __tablename__ = "web_sessions"

    digest: str = Field(primary_key=True, max_length=64)
    token_id: str = Field(foreign_key="api_tokens.id", max_length=32, index=True)
    csrf: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class TokenView(BaseModel):
    """A token as listed: never its secret or digest."""

    id: str
    name: str
    role: Role
    created_at: Utc
    created_by: str
    expires_at: Utc | None = None
    revoked_at: Utc | None = None
    revoked_by: str | None = None

    @classmethod
    def of(cls, row: ApiToken) -> TokenView:
        return cls(
            id=row.id,
            name=row.name,
            role=Role(row.role),
            created_at=row.created_at,
            created_by=row.created_by,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            revoked_by=row.revoked_by,
        )


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def issue(
    session: Session, *, name: str, role: str, actor: str, ttl: timedelta | None = None
) -> tuple[TokenView, str]:
    """A new token (view, secret) in the caller's transaction; the secret is shown once."""
    if not TOKEN_NAME.match(name):
        raise Invalid("a token name is 1-64 letters, digits, '.', '_' or '-' (first: alphanumeric)")
    try:
        chosen = Role(role)
    except ValueError:
        raise Invalid(f"unknown role {role!r}: use one of {', '.join(Role)}") from None
    if session.exec(select(ApiToken.id).where(ApiToken.name == name)).first() is not None:
        raise Conflict(f"a token named {name!r} exists (names are never reused)")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    at = _now()
    row = ApiToken(
        id=uuid.uuid4().hex,
        name=name,
        role=chosen.value,
        digest=digest(secret),
        created_at=at,
        created_by=actor,
        expires_at=at + ttl if ttl is not None else None,
    )
    session.add(row)
    session.flush()
    audit_append(
        session,
        [
            (
                actor,
                "token.created",
                f"{ACTOR_PREFIX}{name}",
                {"id": row.id, "role": chosen.value, "expires_at": row.expires_at},
            )
        ],
    )
    return TokenView.of(row), secret


def list_tokens(session: Session, *, include_revoked: bool = False) -> list[TokenView]:
    query = select(ApiToken).order_by(col(ApiToken.created_at), col(ApiToken.name))
    if not include_revoked:
        query = query.where(col(ApiToken.revoked_at).is_(None))
    return [TokenView.of(r) for r in session.exec(query).all()]


def revoke(session: Session, key: str, *, actor: str) -> TokenView:
    """Revoke the token with this id or name (in the caller's transaction); audited."""
    row = session.exec(
        select(ApiToken).where(or_(col(ApiToken.id) == key, col(ApiToken.name) == key))
    ).first()
    if row is None:
        raise NotFound(f"no token {key!r}")
    if row.revoked_at is not None:
        raise Conflict(f"token {row.name!r} is already revoked")
    row.revoked_at, row.revoked_by = _now(), actor
    session.add(row)
    session.execute(delete(WebSession).where(col(WebSession.token_id) == row.id))
    session.flush()
    audit_append(session, [(actor, "token.revoked", f"{ACTOR_PREFIX}{row.name}", {"id": row.id})])
    return TokenView.of(row)


def authenticate(session: Session, presented: str) -> Principal | None:
    """The principal of a presented token, or None (unknown, malformed, revoked or expired)."""
    if not SHAPE.match(presented):
        return None
    wanted = digest(presented)
    row = session.exec(select(ApiToken).where(ApiToken.digest == wanted)).first()
    if row is None or not hmac.compare_digest(row.digest, wanted):
        return None
    if row.revoked_at is not None:
        return None
    if row.expires_at is not None and as_utc(row.expires_at) <= _now():
        return None
    return Principal(token_id=row.id, name=row.name, role=Role(row.role))
