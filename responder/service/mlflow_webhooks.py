"""MLflow webhook deliveries: verified, applied to the asset graph, produced as events.

`MlflowWebhooks.receive` is what `POST /v1/webhooks/mlflow` calls with the raw body and headers:
`assets.webhooks.verify` (secret, timestamp tolerance, this process's replay guard, shape);
for a moved alias the graph's facts from before the move (`store.alias_facts`, read before
`store.apply_update`) so the event carries the release check; the update and the event's
production happen in that order, the event only once the graph took the update (a stale
delivery still becomes evidence). The event (SecurityEvent v1, source `mlflow`, id = the
delivery id) goes to the events topic keyed by its resource id, like `POST /v1/events`, and
is validated the same way first. Refusals raise `WebhookRejected` with the HTTP status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
import structlog
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session

from responder.assets import store
from responder.assets.webhooks import (
    Delivery,
    Received,
    ReplayGuard,
    WebhookRejected,
    alias_of,
    convert,
    verify,
)
from responder.events.fast import parse_event_doc
from responder.events.schema import Rejection
from responder.service.publish import Publisher, Record

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Accepted:
    delivery_id: str
    event_type: str | None  # None: a delivery about something that is not an asset
    applied: bool  # the graph took the update (False: stale, a later claim exists)


@dataclass
class MlflowWebhooks:
    engine: Engine
    publisher: Publisher
    events_topic: str
    secret: SecretStr | None
    tolerance_s: float
    guard: ReplayGuard = field(default_factory=ReplayGuard)

    async def receive(self, body: bytes, headers: Mapping[str, str]) -> Accepted:
        if self.secret is None or not self.secret.get_secret_value():
            raise WebhookRejected(
                "not_configured",
                "MLflow webhooks are not served here (RESPONDER_ASSETS__WEBHOOK_SECRET enables them)",
                404,
            )
        delivery = verify(
            body,
            headers,
            self.secret,
            now=time.time(),
            tolerance_s=self.tolerance_s,
            guard=self.guard,
        )
        received, applied = await asyncio.to_thread(self._apply, delivery)
        event = received.event
        if event is not None:
            raw = orjson.dumps(event)
            parsed = parse_event_doc(raw)
            if isinstance(parsed, Rejection):  # our conversion's fault, never the sender's
                log.error("webhook event invalid", reason=parsed.reason, delivery=delivery.id)
                raise WebhookRejected("malformed", f"not a valid event: {parsed.reason}", 400)
            key = str(parsed[0]["resource"]["id"]).encode()
            headers_out = [("responder.source.actor", b"mlflow-webhook")]
            await self.publisher.send_all([Record(self.events_topic, raw, key, headers_out)])
        log.info(
            "mlflow webhook received",
            delivery=delivery.id,
            kind=delivery.event,
            applied=applied,
        )
        return Accepted(delivery.id, None if event is None else str(event["type"]), applied)

    def _apply(self, delivery: Delivery) -> tuple[Received, bool]:
        moved = alias_of(delivery)
        with Session(self.engine) as session, session.begin():
            facts = None if moved is None else store.alias_facts(session, *moved)
            received = convert(delivery, facts=facts)
            applied = store.apply_update(session, received.update)
        return received, applied
