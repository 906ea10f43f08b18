"""Incident sink: `responder.incidents` → SQL (incidents, evidence, audit), a transaction a batch.

Changes of one incident share a partition (keyed by incident id), so a single sink owns each
incident at a time. `apply_changes` skips versions already stored, so a redelivered batch after
a crash or rebalance changes nothing. A message that is not a valid change goes to the DLQ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from responder.events.schema import Rejection
from responder.incidents.model import IncidentChange
from responder.incidents.store import Incident, OnApplied, apply_changes
from responder.metrics.worker import INCIDENTS_OPENED, kinds
from responder.settings import KafkaSettings
from responder.streams.kafka import Batch, TopicStage

log = structlog.get_logger(__name__)


@dataclass
class SinkStats:
    changes: int = 0
    applied: int = 0
    rejected: int = 0


class SinkStage(TopicStage):
    def __init__(
        self,
        kafka: KafkaSettings,
        engine: Engine,
        *,
        on_applied: OnApplied | None = None,
        applied_hook: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(kafka, kafka.topics.incidents, "sink", max_records=2000)
        self.engine = engine
        self.on_applied = on_applied  # creates playbook runs in the same transaction
        self.applied_hook = applied_hook  # wakes the runner in this process
        self.stats = SinkStats()

    async def handle(self, batch: Batch) -> None:
        changes = []
        for messages in batch.values():
            for msg in messages:
                try:
                    changes.append(IncidentChange.model_validate_json(msg.value or b""))
                except ValidationError as exc:
                    self.stats.rejected += 1
                    reason = Rejection(reason=f"invalid incident change: {exc.errors()[0]['msg']}")
                    log.error("incident change rejected to DLQ", reason=reason.reason)
                    await self.reject(msg, reason.reason)
        if changes:
            applied = await self._apply_with_retry(changes)
            self.stats.changes += len(changes)
            self.stats.applied += applied
            log.debug("incident changes stored", received=len(changes), applied=applied)
            if applied and self.applied_hook is not None:
                self.applied_hook()
        await self.done(batch)

    async def _apply_with_retry(self, changes: list[IncidentChange]) -> int:
        delay = 0.5
        while True:
            try:
                return await asyncio.to_thread(self._apply, changes)
            except OperationalError as exc:  # database down or locked: wait, never drop
                log.warning("database unavailable, retrying", error=str(exc)[:200], delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _apply(self, changes: list[IncidentChange]) -> int:
        opened: list[tuple[str, str]] = []

        def on_applied(
            session: Session,
            change: IncidentChange,
            incident: Incident,
            previous_status: str | None,
        ) -> None:
            if previous_status is None:
                opened.append((kinds(change.kind), change.severity))
            if self.on_applied is not None:
                self.on_applied(session, change, incident, previous_status)

        with Session(self.engine) as session:
            applied = apply_changes(session, changes, on_applied)
            session.commit()
        for kind, severity in opened:  # counted once the transaction holds them
            INCIDENTS_OPENED.labels(kind, severity).inc()
        return applied
