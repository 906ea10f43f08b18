"""Incident sink: `responder.incidents` → SQL (incidents, evidence, audit), a transaction a batch.

Changes of one incident share a partition (keyed by incident id), so a single sink owns each
incident at a time. `apply_changes` skips versions already stored, so a redelivered batch after
a crash or rebalance changes nothing. A message that is not a valid change goes to the DLQ. If
storing the batch fails for any other reason than the database being away, the changes are
stored one by one (a transaction each, in order) and those that still fail go to the DLQ with
the exception class: one bad change never stops the sink. Two sinks may meet on a partition
across a rebalance (the old owner still storing a batch the new one fetched again): the
second's update of an incident the first stored meanwhile raises `StaleRows` (the rows are
written only over older versions), and its insert of an incident the first created raises a
unique violation. Either way the batch is stored again at once: read again, what the first
stored is skipped as redeliveries (`storage.bulk.written_meanwhile`); only if that fails too
is it stored change by change.

A batch is stored in a fixed number of statements whatever its size (`store_changes`): the
incidents it touches are read at once, their rows and evidence written in bulk, then the blast
radii of the applied changes are computed and stored (`BlastRadii`), then the playbook runs they
trigger are created (`RunStarter`, which reads those radii), then every audit record of the
batch is appended at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from responder.incidents.model import IncidentChange
from responder.incidents.store import MAX_EVIDENCE, Applied, apply_changes
from responder.metrics.worker import INCIDENTS_OPENED, kinds
from responder.playbooks.blast_sql import BlastRadii
from responder.playbooks.start_sql import RunStarter
from responder.settings import KafkaSettings
from responder.storage.bulk import written_meanwhile
from responder.storage.signals import RUNS_CHANNEL, notify
from responder.streams.collector import batch_uncollected
from responder.streams.db_retry import call_with_db_retry
from responder.streams.failures import failure_detail, failure_reason
from responder.streams.kafka import Batch, TopicStage
from responder.streams.standby import Standby

log = structlog.get_logger(__name__)


@dataclass
class Stored:
    """What storing one batch did."""

    applied: int = 0
    runs: list[str] = field(default_factory=list)  # ids of the playbook runs it created
    opened: list[tuple[str, str]] = field(default_factory=list)  # (kind label, severity)
    filled: list[str] = field(default_factory=list)  # incidents whose evidence just filled up


def store_changes(
    session: Session,
    changes: Sequence[IncidentChange],
    starter: RunStarter | None = None,
    blast_radii: BlastRadii | None = None,
    *,
    max_evidence: int = MAX_EVIDENCE,
) -> Stored:
    """The sink's batch step, in the caller's transaction (see the module docstring)."""
    stored = Stored()

    def after_writes(session: Session, applied: list[Applied]) -> None:
        radii = None if blast_radii is None else blast_radii(session, applied)
        if starter is not None:
            stored.runs = starter(session, applied, radii)
        stored.opened = [
            (kinds(done.change.kind), done.change.severity)
            for done in applied
            if done.previous_status is None
        ]
        stored.filled = [  # the change that took the incident to its limit
            done.change.incident_id
            for done in applied
            if done.evidence - len(done.added) < max_evidence <= done.evidence
        ]

    stored.applied = apply_changes(session, changes, after_writes, max_evidence=max_evidence)
    return stored


@dataclass
class SinkStats:
    changes: int = 0
    applied: int = 0
    rejected: int = 0
    redone: int = 0  # batches stored change by change after a failure
    retried: int = 0  # batches stored again at once after another sink wrote some of them
    batches: int = 0  # fetched batches that held changes (a transaction each, unless redone)


GATHER_BYTES = 1024 * 1024
"""The broker holds the sink's fetch until this many bytes of incident changes are there..."""
GATHER_MS = 250
"""... or this long (at most 250: `WorkerSettings.gather_ms` says why)."""


class SinkStage(TopicStage):
    """Off the event → incident path, the sink stores changes in transactions of up to
    GATHER_MS worth, whatever the load: a quiet stream costs a transaction per GATHER_MS, not
    per change, and a busy one (~1,100 changes of ~900 B fill GATHER_BYTES) a few a second."""

    def __init__(
        self,
        kafka: KafkaSettings,
        engine: Engine,
        *,
        on_applied: RunStarter | None = None,
        blast_radii: BlastRadii | None = None,
        runs_created: Callable[[], None] | None = None,
        notify_runs: bool = False,
        max_evidence: int = MAX_EVIDENCE,
        standby_backlog: int = 0,
    ) -> None:
        # with a standby backlog, in the sinks' group only while it has one (`standby.py`)
        standby = Standby(standby_backlog) if standby_backlog else None
        super().__init__(kafka, kafka.topics.incidents, "sink", max_records=2000, standby=standby)
        self.max_evidence = max_evidence  # events an incident keeps as evidence
        self.engine = engine
        self.on_applied = on_applied  # creates playbook runs in the same transaction
        self.blast_radii = blast_radii  # incident.blast_radius, kept in SQL (blast_sql)
        # wakes the runner in this process, only after a transaction that created runs: a
        # change that starts nothing costs the runner no database round trip
        self.runs_created = runs_created
        # no runner in this process: a transaction that created runs notifies the runner's
        # process through the database (`storage.signals`, PostgreSQL), at its commit
        self.notify_runs = notify_runs
        self.created = 0  # runs created by the batch being stored
        self.stats = SinkStats()

    def consumer_options(self) -> dict[str, Any]:
        return {"fetch_min_bytes": GATHER_BYTES, "fetch_max_wait_ms": GATHER_MS}

    async def handle(self, batch: Batch) -> None:
        changes: list[tuple[Any, IncidentChange]] = []
        for messages in batch.values():
            for msg in messages:
                try:
                    changes.append((msg, IncidentChange.model_validate_json(msg.value or b"")))
                except ValidationError as exc:
                    errors = exc.errors(include_url=False)
                    await self._dead(msg, f"invalid incident change: {errors[0]['msg']}", [])
                except Exception as exc:
                    await self._dead(msg, failure_reason("sink", exc), failure_detail(exc))
        if changes:
            applied = await self._store(changes)
            self.stats.batches += 1
            self.stats.changes += len(changes)
            self.stats.applied += applied
            log.debug("incident changes stored", received=len(changes), applied=applied)
            if self.created and self.runs_created is not None:
                self.runs_created()
            self.created = 0
        await self.done(batch)

    async def _store(self, changes: list[tuple[Any, IncidentChange]]) -> int:
        batch = [change for _, change in changes]
        try:
            return await self._apply_with_retry(batch)
        except Exception as exc:
            failed = exc
        if written_meanwhile(failed):  # another sink had the partition (a rebalance)
            # read again, what it stored is skipped: one transaction, not one a change
            self.stats.retried += 1
            log.info("incident batch partly stored by another sink; storing the rest")
            try:
                return await self._apply_with_retry(batch)
            except Exception as exc:
                failed = exc
        if len(changes) == 1:
            await self._dead(changes[0][0], failure_reason("sink", failed), failure_detail(failed))
            return 0
        self.stats.redone += 1
        log.warning("incident batch failed; storing change by change", error=repr(failed)[:300])
        applied = 0
        for msg, change in changes:
            try:
                applied += await self._apply_with_retry([change])
            except Exception as exc:
                await self._dead(msg, failure_reason("sink", exc), failure_detail(exc))
        return applied

    async def _dead(self, msg: Any, reason: str, detail: list[str]) -> None:
        self.stats.rejected += 1
        log.error("incident change rejected to DLQ", reason=reason, offset=msg.offset)
        await self.reject(msg, reason, detail)

    async def _apply_with_retry(self, changes: list[IncidentChange]) -> int:
        return await call_with_db_retry(
            self.engine, lambda: self._apply(changes), what="store incident changes"
        )

    def _apply(self, changes: list[IncidentChange]) -> int:
        with batch_uncollected(), Session(self.engine) as session:
            stored = store_changes(
                session,
                changes,
                self.on_applied,
                self.blast_radii,
                max_evidence=self.max_evidence,
            )
            if stored.runs and self.notify_runs:
                notify(session, RUNS_CHANNEL)
            session.commit()
        self.created += len(stored.runs)
        # counted once the transaction holds them
        for (kind, severity), opened in Counter(stored.opened).items():
            INCIDENTS_OPENED.labels(kind, severity).inc(opened)
        for incident_id in stored.filled:  # once an incident: its later changes say it too
            log.warning(
                "incident evidence is full: its later events are counted, not stored",
                incident_id=incident_id,
                max_evidence=self.max_evidence,
            )
        return stored.applied
