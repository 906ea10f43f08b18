"""/v1/runs: playbook runs with their steps; approve, deny, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from responder.api.auth import Caller, GuardedRoute, needs
from responder.api.context import Ctx, Db
from responder.api.problems import responses
from responder.api.schemas import Accepted, CancelBody, DecisionBody
from responder.commands import AnyCommand
from responder.service import runs as ops
from responder.service.identity import Role
from responder.service.views import Page, RunDetail, RunView

router = APIRouter(prefix="/runs", tags=["runs"], route_class=GuardedRoute)

RunId = Annotated[str, Path(min_length=1, max_length=64, description="run id or a unique prefix")]
ACTION: dict[str, Any] = {
    "status_code": 202,
    "response_model": Accepted,
    "openapi_extra": needs(Role.responder),
    "responses": responses(404, 409, 413, 422, 503),
}


def _accepted(command: AnyCommand) -> Accepted:
    return Accepted.of(command, getattr(command, "run_id", ""))


@router.get(
    "",
    response_model=Page[RunView],
    openapi_extra=needs(Role.viewer),
    responses=responses(422),
    summary="List playbook runs, newest first",
)
def list_runs(
    db: Db,
    status: Annotated[
        list[Annotated[str, Query(min_length=1, max_length=32)]] | None, Query(max_length=10)
    ] = None,
    playbook: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    incident: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Page[RunView]:
    return ops.list_runs(
        db, status=status or (), playbook=playbook, incident=incident, limit=limit, cursor=cursor
    )


@router.get(
    "/{run_id}",
    response_model=RunDetail,
    openapi_extra=needs(Role.viewer),
    responses=responses(404, 422),
    summary="One run with its steps, parameters, outputs and decisions",
)
def get_run(db: Db, run_id: RunId) -> RunDetail:
    return ops.run_detail(db, run_id)


@router.post("/{run_id}/approve", summary="Approve the step the run waits on", **ACTION)
async def approve(
    ctx: Ctx, caller: Caller, run_id: RunId, body: DecisionBody | None = None
) -> Accepted:
    body = body or DecisionBody()
    sent = await ops.decide(
        ctx.writer, caller.by, run_id, approved=True, step=body.step, reason=body.reason
    )
    return _accepted(sent)


@router.post("/{run_id}/deny", summary="Deny the step the run waits on", **ACTION)
async def deny(
    ctx: Ctx, caller: Caller, run_id: RunId, body: DecisionBody | None = None
) -> Accepted:
    body = body or DecisionBody()
    sent = await ops.decide(
        ctx.writer, caller.by, run_id, approved=False, step=body.step, reason=body.reason
    )
    return _accepted(sent)


@router.post("/{run_id}/cancel", summary="Cancel a run before its next step", **ACTION)
async def cancel(
    ctx: Ctx, caller: Caller, run_id: RunId, body: CancelBody | None = None
) -> Accepted:
    sent = await ops.cancel(ctx.writer, caller.by, run_id, reason=body.reason if body else None)
    return _accepted(sent)
