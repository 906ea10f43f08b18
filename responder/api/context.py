"""What the API's handlers need, built once by `bootstrap.api_app`, and the dependencies that
hand it out (a Session per request, the writer for operations)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated

import anyio
from fastapi import Depends, Request
from sqlalchemy import Engine, text
from sqlmodel import Session

from responder.incidents.sla import Target, targets
from responder.metrics.api import ApiMetrics
from responder.service import tokens
from responder.service.identity import Principal
from responder.service.mlflow_webhooks import MlflowWebhooks
from responder.service.publish import KafkaPublisher
from responder.service.sla import breach_counts
from responder.service.slack.front import SlackFront
from responder.service.writer import Writer
from responder.settings import Settings
from responder.streams.topics import ensure_topics


@dataclass
class ApiContext:
    settings: Settings
    engine: Engine
    publisher: KafkaPublisher
    verifications: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(1)
    )  # recomputing the chain is heavy: one at a time per process
    slack: SlackFront | None = None  # POST /v1/slack/actions, when Slack clicks come this way

    @cached_property
    def sla_targets(self) -> dict[str, Target]:
        return targets(self.settings.sla)

    @cached_property
    def metrics(self) -> ApiMetrics:
        return ApiMetrics(breaches=self.breaches)

    def breaches(self) -> dict[tuple[str, str], int]:
        with Session(self.engine) as session:
            return breach_counts(session, self.sla_targets, datetime.now(UTC))

    @cached_property
    def mlflow_webhooks(self) -> MlflowWebhooks:
        """POST /v1/webhooks/mlflow; one replay guard per process."""
        assets = self.settings.assets
        return MlflowWebhooks(
            engine=self.engine,
            publisher=self.publisher,
            events_topic=self.settings.kafka.topics.events,
            secret=assets.webhook_secret,
            tolerance_s=assets.webhook_tolerance_s,
        )

    @property
    def writer(self) -> Writer:
        return Writer(self.engine, self.publisher)

    async def start(self) -> None:
        await ensure_topics(self.settings.kafka)
        await self.publisher.start()

    async def stop(self) -> None:
        await self.publisher.stop()

    def lookup(self, credential: str) -> Principal | None:
        with Session(self.engine) as session:
            return tokens.authenticate(session, credential)

    def database_reachable(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any driver error means not ready
            return False
        return True


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


def session(ctx: Annotated[ApiContext, Depends(context)]) -> Iterator[Session]:
    with Session(ctx.engine) as db:
        yield db


Ctx = Annotated[ApiContext, Depends(context)]
Db = Annotated[Session, Depends(session)]
