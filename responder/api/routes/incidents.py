"""/v1/incidents: list, one with its events, timeline and runs, and the analyst's actions."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import AwareDatetime

from responder.api.auth import Caller, GuardedRoute, needs
from responder.api.context import Ctx, Db
from responder.api.problems import ProblemError, responses
from responder.api.routes.accepted import accepted, command_route
from responder.api.schemas import (
    Accepted,
    AssignBody,
    CommentBody,
    SeverityBody,
    StatusBody,
)
from responder.events.schema import SeverityName
from responder.service import incidents as ops
from responder.service.identity import Role
from responder.service.views import IncidentDetail, IncidentView, Page

router = APIRouter(prefix="/incidents", tags=["incidents"], route_class=GuardedRoute)

IncidentId = Annotated[
    str, Path(min_length=1, max_length=64, description="incident id or a unique prefix")
]
StatusName = Literal["open", "acknowledged", "resolved", "false_positive"]
Short = Annotated[str, Query(min_length=1, max_length=128)]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=200,
        description="the ETag of GET /v1/incidents/{id}: refused with 412 if the incident "
        "changed since; absent means unconditional",
    ),
]
TAG = re.compile(r'^(?:"([0-9a-f]{32})"|([0-9a-f]{32}))$')


def expected_tag(if_match: str | None) -> str | None:
    """The entity tag the caller expects, None for none or `*`; 412 for one that cannot match."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = TAG.match(if_match.strip())
    if match is None:
        raise ProblemError(
            412, "If-Match does not name a current ETag of this incident", kind="stale"
        )
    return match.group(1) or match.group(2)


@router.get(
    "",
    response_model=Page[IncidentView],
    openapi_extra=needs(Role.viewer),
    responses=responses(422),
    summary="List incidents",
)
def list_incidents(
    db: Db,
    ctx: Ctx,
    status: Annotated[list[StatusName] | None, Query(max_length=4)] = None,
    severity: Annotated[list[SeverityName] | None, Query(max_length=5)] = None,
    kind: Annotated[list[Short] | None, Query(max_length=20)] = None,
    rule: Annotated[list[Short] | None, Query(max_length=20)] = None,
    assignee: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    since: Annotated[AwareDatetime | None, Query(description="last seen at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="first seen at or before")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="text in the title")
    ] = None,
    sla: Annotated[
        Literal["breached"] | None,
        Query(description="only incidents with a breached SLA clock (acknowledge or resolve)"),
    ] = None,
    sort: ops.IncidentSort = "-first_seen",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> Page[IncidentView]:
    query = ops.IncidentFilter(
        status=status or (),
        severity=severity or (),
        kind=kind or (),
        rule=rule or (),
        assignee=assignee,
        since=since,
        until=until,
        text=q,
        sla=sla,
    )
    return ops.list_incidents(
        db, query, sort=sort, limit=limit, cursor=cursor, targets=ctx.sla_targets
    )


@router.get(
    "/{incident_id}",
    response_model=IncidentDetail,
    openapi_extra=needs(Role.viewer),
    responses=responses(404, 422),
    summary="One incident with its events, timeline (audit records), comments and runs",
)
def get_incident(
    db: Db,
    ctx: Ctx,
    incident_id: IncidentId,
    response: Response,
    events_limit: Annotated[int, Query(ge=0, le=1000)] = 200,
) -> IncidentDetail:
    detail = ops.incident_detail(
        db, incident_id, events_limit=events_limit, targets=ctx.sla_targets
    )
    response.headers["ETag"] = f'"{detail.etag}"'
    return detail


ACTION = command_route(Role.analyst, 404, 412, 413, 422, 503)


def _status_route(status: ops.StatusName, name: str, path: str, summary: str) -> Any:
    """POST /{incident_id}/<path>: set the status, with an optional comment."""

    async def route(
        ctx: Ctx,
        caller: Caller,
        incident_id: IncidentId,
        if_match: IfMatch = None,
        body: StatusBody | None = None,
    ) -> Accepted:
        sent = await ops.set_status(
            ctx.writer,
            caller.by,
            incident_id,
            status,
            comment=body.comment if body else None,
            expected=expected_tag(if_match),
        )
        return accepted(sent, "incident_id")

    route.__name__ = route.__qualname__ = name
    return router.post(f"/{{incident_id}}/{path}", summary=summary, **ACTION)(route)


acknowledge = _status_route("acknowledged", "acknowledge", "ack", "Acknowledge")
resolve = _status_route("resolved", "resolve", "resolve", "Resolve")
false_positive = _status_route(
    "false_positive",
    "false_positive",
    "false-positive",
    "Mark a false positive (undoes playbook steps that have an undo)",
)


@router.post("/{incident_id}/assign", summary="Assign", **ACTION)
async def assign(
    ctx: Ctx, caller: Caller, incident_id: IncidentId, body: AssignBody, if_match: IfMatch = None
) -> Accepted:
    sent = await ops.assign(
        ctx.writer, caller.by, incident_id, body.assignee, expected=expected_tag(if_match)
    )
    return accepted(sent, "incident_id")


@router.post("/{incident_id}/comment", summary="Comment", **ACTION)
async def comment(
    ctx: Ctx, caller: Caller, incident_id: IncidentId, body: CommentBody, if_match: IfMatch = None
) -> Accepted:
    sent = await ops.comment(
        ctx.writer, caller.by, incident_id, body.text, expected=expected_tag(if_match)
    )
    return accepted(sent, "incident_id")


@router.post("/{incident_id}/severity", summary="Change the severity", **ACTION)
async def severity(
    ctx: Ctx,
    caller: Caller,
    incident_id: IncidentId,
    body: SeverityBody,
    if_match: IfMatch = None,
) -> Accepted:
    sent = await ops.change_severity(
        ctx.writer,
        caller.by,
        incident_id,
        body.severity,
        comment=body.comment,
        expected=expected_tag(if_match),
    )
    return accepted(sent, "incident_id")
