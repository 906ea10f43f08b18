"""/v1/runs: playbook runs with their steps; approve, deny, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from responder.api.auth import Caller, GuardedRoute, needs
from responder.api.context import Ctx, Db
from responder.api.problems import responses
from responder.api.routes.accepted import accepted, command_route
from responder.api.schemas import Accepted, CancelBody, DecisionBody
from responder.service import runs as ops
from responder.service.identity import Role
from responder.service.views import Page, RunDetail, RunView

router = APIRouter(prefix="/runs", tags=["runs"], route_class=GuardedRoute)

RunId = Annotated[str, Path(min_length=1, max_length=64, description="run id or a unique prefix")]
ACTION = command_route(Role.responder, 404, 409, 413, 422, 503)


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


def _decision_route(approved: bool, name: str, summary: str) -> Any:
    """POST /{run_id}/<name>: approve or deny the step the run waits on."""

    async def route(
        ctx: Ctx, caller: Caller, run_id: RunId, body: DecisionBody | None = None
    ) -> Accepted:
        body = body or DecisionBody()
        sent = await ops.decide(
            ctx.writer, caller.by, run_id, approved=approved, step=body.step, reason=body.reason
        )
        return accepted(sent, "run_id")

    route.__name__ = route.__qualname__ = name
    return router.post(f"/{{run_id}}/{name}", summary=summary, **ACTION)(route)


approve = _decision_route(True, "approve", "Approve the step the run waits on")
deny = _decision_route(False, "deny", "Deny the step the run waits on")


@router.post("/{run_id}/cancel", summary="Cancel a run before its next step", **ACTION)
async def cancel(
    ctx: Ctx, caller: Caller, run_id: RunId, body: CancelBody | None = None
) -> Accepted:
    sent = await ops.cancel(ctx.writer, caller.by, run_id, reason=body.reason if body else None)
    return accepted(sent, "run_id")
