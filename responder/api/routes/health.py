"""/healthz (the process answers) and /readyz (the database and Kafka answer too)."""

from __future__ import annotations

from typing import Literal

import anyio
from fastapi import APIRouter
from pydantic import BaseModel

from responder.api.context import Ctx
from responder.api.problems import ProblemError, responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Health,
    responses=responses(503),
    summary="Readiness: the database and Kafka are reachable",
)
async def readyz(ctx: Ctx) -> Health:
    database = await anyio.to_thread.run_sync(ctx.database_reachable)
    kafka = await ctx.publisher.reachable()
    if not (database and kafka):
        down = [name for name, ok in (("database", database), ("kafka", kafka)) if not ok]
        raise ProblemError(503, f"not reachable: {', '.join(down)}", kind="not-ready")
    return Health()
