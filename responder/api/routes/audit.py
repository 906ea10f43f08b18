"""/v1/audit: audit records by subject, actor, action and time; chain verification."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Query
from pydantic import AwareDatetime
from sqlmodel import Session

from responder.api.auth import GuardedRoute, needs
from responder.api.context import Ctx, Db
from responder.api.problems import responses
from responder.service import audit as ops
from responder.service.identity import Role
from responder.service.views import AuditView, Page

router = APIRouter(prefix="/audit", tags=["audit"], route_class=GuardedRoute)

Field200 = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get(
    "",
    response_model=Page[AuditView],
    openapi_extra=needs(Role.viewer),
    responses=responses(422),
    summary="Query the audit log",
)
def query(
    db: Db,
    subject: Field200 = None,
    actor: Field200 = None,
    action: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    order: Literal["seq", "-seq"] = "seq",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Page[AuditView]:
    return ops.query_audit(
        db,
        subject=subject,
        actor=actor,
        action=action,
        since=since,
        until=until,
        order=order,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/verify",
    response_model=ops.Verification,
    openapi_extra=needs(Role.viewer),
    responses=responses(422),
    summary="Recompute the hash chain (and check an anchor taken earlier)",
)
async def verify(
    ctx: Ctx,
    anchor: Annotated[
        str | None,
        Query(
            pattern=r"^\d{1,18}:[0-9a-f]{64}$",
            description="SEQ:HASH as `responder audit head` printed it",
        ),
    ] = None,
) -> ops.Verification:
    def work() -> ops.Verification:
        with Session(ctx.engine) as session:
            return ops.verify(session, anchor)

    return await anyio.to_thread.run_sync(work, limiter=ctx.verifications)
