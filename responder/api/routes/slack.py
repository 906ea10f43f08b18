"""POST /v1/slack/actions: Slack's interactivity request URL (button clicks), mode `http`.

Not behind the API's bearer tokens: Slack signs each request instead (`middleware.Authenticate`
exempts exactly this path). The click is verified and acknowledged at once (Slack waits 3
seconds); the decision is sent, and the message redrawn, after the answer has gone
(`service.slack.front.SlackFront.handle`, a background task).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response

from responder.api.context import Ctx
from responder.api.problems import ProblemError, responses
from responder.service.slack.signature import RequestRefused

SLACK_ACTIONS_PATH = "/v1/slack/actions"

router = APIRouter(tags=["slack"])

_DOCUMENT: dict[str, Any] = {
    "security": [],  # no bearer token: the Slack signature authenticates the request
    "x-authenticated-by": "slack-signature",
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"payload": {"type": "string", "description": "JSON"}},
                    "required": ["payload"],
                }
            }
        },
    },
}


@router.post(
    SLACK_ACTIONS_PATH,
    status_code=200,
    response_class=Response,
    responses={
        200: {"description": "acknowledged (empty body)", "content": {}},
        **responses(400, 401, 404, 413),
    },
    openapi_extra=_DOCUMENT,
    summary="Slack interactivity (button clicks), signed by Slack with the signing secret",
)
async def slack_actions(ctx: Ctx, request: Request, background: BackgroundTasks) -> Response:
    front = ctx.slack
    if front is None:
        raise ProblemError(
            404,
            "Slack interactivity is not served here (RESPONDER_SLACK__MODE=http and "
            "RESPONDER_SLACK__SIGNING_SECRET enable it)",
            kind="not-found",
        )
    body = await request.body()
    remote = request.client.host if request.client else None
    try:
        click = await front.receive_request(body, request.headers, remote=remote)
    except RequestRefused as exc:
        detail = "not a valid, fresh Slack request" if exc.status == 401 else exc.detail
        raise ProblemError(exc.status, detail, kind="slack-refused") from None
    if click is not None:
        background.add_task(front.handle, click)
    return Response(status_code=200)
