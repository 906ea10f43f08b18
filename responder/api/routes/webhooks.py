"""POST /v1/webhooks/mlflow: MLflow's model-registry webhooks (`service.mlflow_webhooks`).

Not behind the API's bearer tokens: MLflow signs each delivery with the webhook's secret
(`RESPONDER_ASSETS__WEBHOOK_SECRET`; `middleware.Authenticate` exempts exactly this path).
A refused delivery gets a problem document with the status `assets.webhooks` gives (401
unauthenticated, 400 malformed or out of time, 409 already received, 413 too large; 404 when
no secret is configured: not served here), and nothing about timing or content unless the
signature matched.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from responder.api.context import Ctx
from responder.api.problems import ProblemError, responses
from responder.assets.webhooks import WebhookRejected

MLFLOW_WEBHOOK_PATH = "/v1/webhooks/mlflow"

router = APIRouter(tags=["webhooks"])

_DOCUMENT: dict[str, Any] = {
    "security": [],  # no bearer token: the webhook's HMAC signature authenticates the request
    "x-authenticated-by": "mlflow-webhook-signature",
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}


class WebhookAccepted(BaseModel):
    delivery_id: str
    event_type: str | None
    graph_updated: bool


@router.post(
    MLFLOW_WEBHOOK_PATH,
    status_code=202,
    response_model=WebhookAccepted,
    responses=responses(400, 401, 404, 409, 413),
    openapi_extra=_DOCUMENT,
    summary="MLflow webhook delivery (model versions, aliases, tags), signed with the secret",
)
async def mlflow_webhook(ctx: Ctx, request: Request) -> WebhookAccepted:
    body = await request.body()
    try:
        accepted = await ctx.mlflow_webhooks.receive(body, request.headers)
    except WebhookRejected as exc:
        raise ProblemError(exc.status, str(exc), kind="webhook-refused") from None
    return WebhookAccepted(
        delivery_id=accepted.delivery_id,
        event_type=accepted.event_type,
        graph_updated=accepted.applied,
    )
