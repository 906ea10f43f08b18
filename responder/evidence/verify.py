"""Verifying an incident's evidence: each bundle against the hash the audit chain recorded.

For each `evidence.snapshot` record of the incident (or the one asked for):

1. the record itself is intact: its hash is the hash of its content and the next record links
   to it (`responder audit verify` checks the whole chain);
2. the bundle's `manifest.json`, read from the store now, has the recorded sha256;
3. every member matches its sha256 in the manifest, none is missing and none was added
   (`bundle.check`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from responder.audit.store import AuditRecord, record_problem
from responder.evidence import bundle as B
from responder.evidence.collect import snapshots
from responder.evidence.store import BundleMissing, EvidenceStore


@dataclass
class Checked:
    """One snapshot and what is wrong with it (nothing: it verifies)."""

    seq: int
    at: str
    actor: str
    bundle: str
    manifest_sha256: str
    location: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def _record_problems(session: Session, record: AuditRecord) -> list[str]:
    problems = []
    problem = record_problem(session, record)
    if problem is not None:
        problems.append(f"audit record {record.seq} {problem}")
    following = session.exec(
        select(AuditRecord.prev_hash).where(AuditRecord.seq == record.seq + 1)
    ).first()
    if following is not None and following != record.hash:
        problems.append(f"audit record {record.seq + 1} does not link to record {record.seq}")
    return problems


def check_snapshot(session: Session, store: EvidenceStore, record: AuditRecord) -> Checked:
    data = record.data
    checked = Checked(
        seq=record.seq,
        at=record.entry().at.isoformat(),
        actor=record.actor,
        bundle=str(data.get("bundle", "")),
        manifest_sha256=str(data.get("manifest_sha256", "")),
        location=str(data.get("location", "")),
        problems=_record_problems(session, record),
    )
    recorded_store = data.get("store")
    if recorded_store != store.kind:
        checked.problems.append(
            f"the bundle was stored in the {recorded_store} store ({checked.location}); "
            f"the configured store is {store.kind}"
        )
        return checked
    try:
        files = store.get(B.checked_id(checked.bundle))
    except (BundleMissing, B.BadBundleId) as exc:
        checked.problems.append(str(exc))
        return checked
    checked.problems += B.check(
        files,
        bundle=checked.bundle,
        incident_id=record.subject,
        manifest_sha256=checked.manifest_sha256,
    )
    return checked


def verify_incident(
    session: Session, store: EvidenceStore, incident_id: str, *, bundle: str | None = None
) -> list[Checked]:
    """Every snapshot of the incident (or only `bundle`), checked; empty: none recorded."""
    return [
        check_snapshot(session, store, record)
        for record in snapshots(session, incident_id)
        if bundle is None or record.data.get("bundle") == bundle
    ]


def newest_assets(store: EvidenceStore, checked: list[Checked]) -> dict[str, Any] | None:
    """`assets.json` of the newest bundle that verifies (None: no such bundle)."""
    for c in reversed(checked):
        if c.ok:
            files = store.get(B.checked_id(c.bundle))
            parsed = json.loads(files["assets.json"])
            return parsed if isinstance(parsed, dict) else None
    return None
