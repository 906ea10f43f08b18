"""Taking a snapshot: `Snapshotter`, the `EvidencePort` the `evidence.snapshot` action calls.

1. read the incident, its events and runs, and the audit chain's head (one SQL session);
2. ask the `AssetSource` which models are affected and the model registry what they are made of;
3. build the bundle (`bundle.build`: canonical members, manifest, manifest hash);
4. write it to the `EvidenceStore` (write-once);
5. append `evidence.snapshot` (subject: the incident id) with the manifest hash and where the
   bundle is to the audit chain.

A crash between 4 and 5 leaves a bundle the chain does not know; it is never adopted later (a
bundle planted in the store must not become evidence), the retry writes a new one. A step retried
after 5 finds its record by idempotency key and returns it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlmodel import Session

from responder.actions.evidence import SNAPSHOT_ACTION
from responder.actions.ports import ModelRegistryPort
from responder.audit.store import AuditRecord, head, lock_chain
from responder.audit.store import append as audit_append
from responder.evidence import bundle as B
from responder.evidence.assets import AssetSource, EventAssets, describe_models
from responder.evidence.collect import IncidentRecord, incident_record, snapshot_by_key
from responder.evidence.settings_view import public_settings
from responder.evidence.store import EvidenceStore, Stored
from responder.settings import Settings

log = structlog.get_logger(__name__)


def summary(record: AuditRecord) -> dict[str, Any]:
    """What the action returns for a recorded snapshot (the step's output)."""
    data = record.data
    return {
        "incident_id": record.subject,
        "bundle": data.get("bundle"),
        "manifest_sha256": data.get("manifest_sha256"),
        "location": data.get("location"),
        "audit_seq": record.seq,
    }


class Snapshotter:
    """`EvidencePort` over SQL, the model registry (None: not configured) and a store."""

    def __init__(
        self,
        *,
        engine: Engine,
        store: EvidenceStore,
        models: ModelRegistryPort | None,
        settings: Settings,
        assets: AssetSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.store = store
        self.models = models
        self.settings = settings
        self.assets: AssetSource = assets or EventAssets()
        self.clock = clock

    async def snapshot(
        self, incident_id: str, *, actor: str, key: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        found = await asyncio.to_thread(self._read, incident_id, key)
        if isinstance(found, AuditRecord):
            log.info("evidence: snapshot already recorded", key=key, seq=found.seq)
            return summary(found)
        record, chain_head = found
        refs = self.assets.affected_models(record.incident, record.events)
        assets = await describe_models(
            self.models,
            refs,
            source=self.assets.name,
            max_bytes=self.settings.evidence.max_artifact_bytes,
            max_files=self.settings.evidence.max_artifacts,
        )
        now = self.clock()
        made = B.build(
            B.bundle_id(record.id, now, secrets.token_hex(4)),
            {
                "incident": record.incident,
                "events": record.events,
                "runs": record.runs,
                "assets": assets,
                "settings": public_settings(self.settings),
            },
            header={
                "incident_id": record.id,
                "created_at": now.isoformat(),
                "created_by": actor,
                "reason": reason,
                "key": key,
                "audit_head": chain_head,
            },
        )
        stored = await asyncio.to_thread(self.store.put, made.id, made.files)
        recorded = await asyncio.to_thread(self._record, record.id, made, stored, actor, key)
        log.info(
            "evidence: snapshot recorded",
            incident_id=record.id,
            bundle=made.id,
            manifest_sha256=made.manifest_sha256,
            location=stored.location,
        )
        return summary(recorded)

    def _read(
        self, incident_id: str, key: str | None
    ) -> AuditRecord | tuple[IncidentRecord, dict[str, Any] | None]:
        with Session(self.engine) as session:
            record = incident_record(session, incident_id)
            if key is not None:
                earlier = snapshot_by_key(session, record.id, key)
                if earlier is not None:
                    return earlier
            newest = head(session)
            chain_head = None if newest is None else {"seq": newest[0], "hash": newest[1]}
            return record, chain_head

    def _record(
        self, incident_id: str, made: B.Bundle, stored: Stored, actor: str, key: str | None
    ) -> AuditRecord:
        with Session(self.engine, expire_on_commit=False) as session:
            lock_chain(session)
            if key is not None:  # a concurrent retry of the same step got here first
                earlier = snapshot_by_key(session, incident_id, key)
                if earlier is not None:
                    return earlier
            data = {
                "bundle": made.id,
                "manifest_sha256": made.manifest_sha256,
                **stored.to_json(),
                "members": sorted(made.files),
                "key": key,
            }
            seq = audit_append(session, [(actor, SNAPSHOT_ACTION, incident_id, data)])
            row = session.get(AuditRecord, seq)
            session.commit()
            assert row is not None
            return row
