"""The sink's batched transaction: rows are written once per batch unless a playbook run starts,
and what is stored is the same either way (runs, evidence, audit records, idempotence)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from responder.audit.store import AuditRecord, verify_chain
from responder.incidents.store import Incident, IncidentEvent
from responder.playbooks.loader import load_playbooks
from responder.playbooks.runs import PlaybookRun
from responder.playbooks.start_sql import RunStarter
from responder.settings import KafkaSettings
from responder.streams.sink import SinkStage
from tests.integration.test_runner import CONTAIN
from tests.support.runner_kit import change, event


def stored(db: Engine) -> dict[str, Any]:
    with Session(db) as s:
        return {
            "incidents": sorted(
                (r.id, r.version, r.event_count, len(r.event_ids)) for r in s.exec(select(Incident))
            ),
            "evidence": sorted(
                (e.incident_id, e.event_id, e.position) for e in s.exec(select(IncidentEvent))
            ),
            "runs": sorted(
                (r.incident_id, r.incident_version, [e["id"] for e in r.events])
                for r in s.exec(select(PlaybookRun))
            ),
            "audit": sorted(
                (a.subject, a.action, a.data.get("version"))
                for a in s.exec(select(AuditRecord).order_by(col(AuditRecord.seq)))
            ),
        }


def test_a_mixed_batch_stores_everything_once_and_runs_see_their_evidence(
    db: Engine, tmp_path: Path
) -> None:
    """One batch: an incident that starts a run (opened, then updated in the same batch) and
    one no playbook matches. The run reads the evidence written so far in the transaction; the
    other changes are written at the end; a redelivered batch changes nothing."""
    (tmp_path / "pb").mkdir()
    (tmp_path / "pb" / "contain.yaml").write_text(CONTAIN)
    sink = SinkStage(KafkaSettings(), db, on_applied=RunStarter(load_playbooks(tmp_path / "pb")))
    batch = [
        change(1, incident_id="inc-a"),
        change(1, incident_id="inc-b", severity="low"),  # `contain` wants high or above
        change(2, incident_id="inc-a", change_kind="updated", events=[event("e2", 2)]),
        change(
            2, incident_id="inc-b", severity="low", change_kind="updated", events=[event("e2b", 2)]
        ),
    ]
    assert sink._apply(batch) == 4
    first = stored(db)
    assert first["incidents"] == [("inc-a", 2, 2, 2), ("inc-b", 2, 2, 2)]
    assert first["evidence"] == [
        ("inc-a", "e1", 0),
        ("inc-a", "e2", 1),
        ("inc-b", "e1", 0),
        ("inc-b", "e2b", 1),
    ]
    # `contain` (opened, high or above) matched inc-a's opening only; the run holds the
    # evidence written before it in the same transaction
    assert first["runs"] == [("inc-a", 1, ["e1"])]
    changes = [a for a in first["audit"] if a[1].startswith("incident.")]
    assert changes == [
        ("inc-a", "incident.opened", 1),
        ("inc-a", "incident.updated", 2),
        ("inc-b", "incident.opened", 1),
        ("inc-b", "incident.updated", 2),
    ]
    with Session(db) as s:
        assert verify_chain(s)[1] is None

    assert sink._apply(batch) == 0  # redelivered: nothing twice
    assert stored(db) == first
