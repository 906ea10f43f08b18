"""/v1/kill-switch: every playbook run becomes a dry run, for every worker at once."""

from __future__ import annotations

from fastapi import APIRouter

from responder.api.auth import Caller, GuardedRoute, needs
from responder.api.context import Ctx, Db
from responder.api.problems import responses
from responder.api.schemas import Accepted, KillSwitchBody
from responder.service import switch as ops
from responder.service.identity import Role

router = APIRouter(prefix="/kill-switch", tags=["kill switch"], route_class=GuardedRoute)


@router.get(
    "",
    response_model=ops.KillSwitchState,
    openapi_extra=needs(Role.viewer),
    summary="The kill switch's state",
)
def state(ctx: Ctx, db: Db) -> ops.KillSwitchState:
    return ops.kill_switch_state(db, setting=ctx.settings.playbooks.kill_switch)


@router.put(
    "",
    status_code=202,
    response_model=Accepted,
    openapi_extra=needs(Role.responder),
    responses=responses(413, 422, 503),
    summary="Turn the kill switch on or off",
)
async def switch(ctx: Ctx, caller: Caller, body: KillSwitchBody) -> Accepted:
    sent = await ops.set_kill_switch(ctx.writer, caller.by, on=body.on, reason=body.reason)
    return Accepted.of(sent, "kill_switch")
