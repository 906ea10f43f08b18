"""GET /v1/metrics: the API process's Prometheus metrics, for a `metrics` token (or admin)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Response

from responder.api.auth import GuardedRoute, needs
from responder.api.context import Ctx
from responder.metrics.api import CONTENT_TYPE
from responder.service.identity import Role

router = APIRouter(prefix="/metrics", tags=["metrics"], route_class=GuardedRoute)


@router.get(
    "",
    response_class=Response,
    openapi_extra=needs(Role.metrics),
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics of this API process (text exposition format)",
)
async def metrics(ctx: Ctx) -> Response:
    body = await anyio.to_thread.run_sync(ctx.metrics.exposition)  # the SLA gauge reads SQL
    return Response(body, media_type=CONTENT_TYPE)
