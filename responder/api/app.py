"""The FastAPI application: routers, error handlers, middleware and the OpenAPI document.

`create_app(context)` is pure wiring; `bootstrap.api_app(settings)` builds the context (engine,
the process's one Kafka producer) and calls it. The producer starts and stops with the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from responder import __version__
from responder.api.auth import DECLARE_BEARER
from responder.api.context import ApiContext
from responder.api.middleware import API_PREFIX, Authenticate, BodyLimit, RequestId
from responder.api.problems import Problem, install, responses
from responder.api.routes import (
    audit,
    events,
    health,
    incidents,
    metrics,
    runs,
    slack,
    switch,
    tokens,
    webhooks,
)
from responder.metrics.labels import Routes

DESCRIPTION = """Incidents, playbook runs, the audit log and event intake.

Every `/v1` operation needs `Authorization: Bearer <token>` (`responder tokens create`); the
role each one needs is its `x-required-role`. The exceptions are `POST /v1/slack/actions`,
Slack's request URL for button clicks, which checks Slack's request signature instead, and
`POST /v1/webhooks/mlflow`, MLflow's registry webhooks, which checks the webhook's HMAC. Writes answer 202 with the id of the command
they put on `responder.commands`: a worker applies it, or refuses it to the DLQ with a reason
(for instance when the incident changed after the `If-Match` ETag was read). Errors are RFC
9457 problem details."""


def create_app(context: ApiContext) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await context.start()
        try:
            yield
        finally:
            await context.stop()

    app = FastAPI(
        title="responder API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.context = context
    install(app)
    v1 = APIRouter(
        prefix=API_PREFIX, dependencies=[DECLARE_BEARER], responses=responses(400, 401, 403, 422)
    )
    for module in (incidents, runs, audit, switch, events, tokens, metrics):
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(slack.router)  # Slack signs its requests: no bearer token
    app.include_router(webhooks.router)  # so does MLflow
    app.include_router(health.router)
    pages: list[str] = []
    if context.settings.web.enabled:
        from responder.api.web import site

        pages = site.install(app, context)
    limits = context.settings.api
    app.add_middleware(
        BodyLimit,
        default=limits.max_body_bytes,
        per_path={f"{API_PREFIX}/events": limits.max_events_bytes},
    )
    app.add_middleware(
        Authenticate,
        lookup=context.lookup,
        exempt=frozenset({slack.SLACK_ACTIONS_PATH, webhooks.MLFLOW_WEBHOOK_PATH}),
    )
    app.add_middleware(RequestId, metrics=context.metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    context.metrics.routes = Routes([*openapi()["paths"], *pages])
    return app
