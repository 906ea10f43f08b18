"""/v1/tokens (admin): list, create (the secret is in the answer, once), revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from responder.api.auth import Caller, GuardedRoute, needs
from responder.api.context import Db
from responder.api.problems import responses
from responder.service import tokens as ops
from responder.service.identity import Role

router = APIRouter(prefix="/tokens", tags=["tokens"], route_class=GuardedRoute)


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    role: Role
    expires_in_s: Annotated[int | None, Field(ge=60, le=10 * 365 * 86400)] = None


class Issued(BaseModel):
    token: ops.TokenView
    secret: str = Field(description="shown once: store it now")


@router.get(
    "",
    response_model=list[ops.TokenView],
    openapi_extra=needs(Role.admin),
    summary="List tokens (never their secrets)",
)
def list_tokens(db: Db, include_revoked: bool = False) -> list[ops.TokenView]:
    return ops.list_tokens(db, include_revoked=include_revoked)


@router.post(
    "",
    status_code=201,
    response_model=Issued,
    openapi_extra=needs(Role.admin),
    responses=responses(409, 413, 422),
    summary="Create a token",
)
def create(db: Db, caller: Caller, body: NewToken) -> Issued:
    ttl = timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    with db.begin():
        view, secret = ops.issue(
            db, name=body.name, role=body.role.value, actor=f"analyst:{caller.by}", ttl=ttl
        )
    return Issued(token=view, secret=secret)


@router.delete(
    "/{token}",
    response_model=ops.TokenView,
    openapi_extra=needs(Role.admin),
    responses=responses(404, 409, 422),
    summary="Revoke a token (by id or name)",
)
def revoke(
    db: Db, caller: Caller, token: Annotated[str, Path(min_length=1, max_length=64)]
) -> ops.TokenView:
    with db.begin():
        return ops.revoke(db, token, actor=f"analyst:{caller.by}")
