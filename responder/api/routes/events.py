"""POST /v1/events: one SecurityEvent or a JSON array of them, validated like the worker does."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from responder.api.auth import Caller, GuardedRoute, needs
from responder.api.context import Ctx
from responder.api.problems import ProblemError, responses
from responder.metrics.labels import reason
from responder.service.events import IngestResult, TooMany, ingest, split
from responder.service.identity import Role

router = APIRouter(prefix="/events", tags=["events"], route_class=GuardedRoute)


def _request_body() -> dict[str, Any]:
    event = {"type": "object", "description": "a SecurityEvent v1 (see `responder schema event`)"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"anyOf": [event, {"type": "array", "items": event}]}
                }
            },
        }
    }


@router.post(
    "",
    status_code=202,
    response_model=IngestResult,
    openapi_extra={**needs(Role.ingest), **_request_body()},
    responses=responses(413, 415, 422, 503),
    summary="Post events: each accepted one goes to the events topic, each rejected one to "
    "the DLQ with its reason; answered once Kafka has them all",
)
async def post_events(ctx: Ctx, caller: Caller, request: Request) -> IngestResult:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise ProblemError(415, "send application/json", kind="media-type")
    body = await request.body()
    try:
        items = split(body, max_items=ctx.settings.api.max_batch_events)
    except TooMany as exc:
        raise ProblemError(413, str(exc), kind="too-large") from None
    request_id = str(request.scope.get("state", {}).get("request_id", ""))
    result = await ingest(
        ctx.publisher,
        ctx.settings.kafka.topics,
        items,
        by=caller.by,
        request_id=request_id,
    )
    ctx.metrics.events_accepted.inc(result.accepted)
    for item in result.items:
        if item.reason is not None:
            ctx.metrics.events_rejected.labels(reason(item.reason)).inc()
    return result
