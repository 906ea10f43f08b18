"""Starting runs in SQL: the run rows an applied incident change triggers, in the sink's transaction.

The sink calls `RunStarter` for every change it applies (`apply_changes(on_applied=...)`), so a
run exists exactly when its triggering change is stored: a crash cannot lose it, and a
redelivered change (skipped by version) cannot start it twice. The run id is derived from
(playbook, incident, version) as a second guard. Which playbooks match is decided by the pure
`trigger` and `schema.Trigger.matches`; this module writes the rows and their audit records.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlmodel import Session

from responder.audit.store import append as audit_append
from responder.incidents.model import IncidentChange
from responder.incidents.store import Incident, incident_events
from responder.playbooks.blast_guard import blast_guard
from responder.playbooks.blast_sql import BlastRadii
from responder.playbooks.loader import PlaybookSet
from responder.playbooks.runs import PlaybookRun, kill_switch_on, now, run_id, runs_in_last_hour
from responder.playbooks.schema import Playbook
from responder.playbooks.statuses import BLOCKED, PENDING
from responder.playbooks.step_rules import guard_policy
from responder.playbooks.trigger import TriggerChange, change_kind, incident_view

log = structlog.get_logger(__name__)


class RunStarter:
    def __init__(
        self,
        playbooks: PlaybookSet,
        *,
        kill_switch: bool = False,
        blast_radii: BlastRadii | None = None,
    ) -> None:
        self.playbooks = playbooks
        self.kill_switch = kill_switch
        self.blast_radii = blast_radii  # incident.blast_radius, kept in SQL (blast_sql)

    def wants(self, change: IncidentChange, previous_status: str | None, status: str) -> bool:
        """Whether `__call__` must see this change (only then does it read the database): it
        starts a run, or an asset graph exists and the incident's blast radius is kept."""
        radius = None
        if self.blast_radii is not None:
            if self.blast_radii.active():
                return True
            radius = self.blast_radii.empty()
        return bool(self._matching(change, previous_status, status, radius)[2])

    def _matching(
        self,
        change: IncidentChange,
        previous_status: str | None,
        status: str,
        radius: dict[str, Any] | None = None,
    ) -> tuple[TriggerChange, dict[str, Any], list[Playbook]]:
        trigger = change_kind(change, previous_status)
        view = incident_view(change, previous_status=previous_status, status=status)
        if radius is not None:
            view["blast_radius"] = radius
        return trigger, view, self.playbooks.matching(view, trigger)

    def __call__(
        self,
        session: Session,
        change: IncidentChange,
        incident: Incident,
        previous_status: str | None,
    ) -> list[str]:
        """Create the runs this applied change triggers; return their ids (none if redelivered)."""
        radius = None if self.blast_radii is None else self.blast_radii(session, change)
        trigger, view, matching = self._matching(change, previous_status, incident.status, radius)
        if not matching:
            return []
        created: list[str] = []
        events = [e.body for e in incident_events(session, incident.id)]
        killed = self.kill_switch or kill_switch_on(session)
        for playbook in matching:
            rid = run_id(playbook.id, incident.id, change.version)
            if session.get(PlaybookRun, rid) is not None:
                continue
            mode = "dry_run" if killed else playbook.mode
            limit = playbook.guards.max_runs_per_hour
            blocked = (
                limit is not None
                and mode != "dry_run"
                and runs_in_last_hour(session, playbook.id) >= limit
            )
            guard = f"max_runs_per_hour={limit}"
            reason = f"guard {guard} reached: a human must approve"
            held = (
                None
                if mode == "dry_run"
                else blast_guard(playbook.guards, view.get("blast_radius"))
            )
            if held is not None and playbook.guards.blast_radius_action == "dry_run":
                mode, held = "dry_run", f"{held}: planned only (guards.blast_radius_action)"
            elif held is not None and not blocked:
                blocked, reason = True, f"{held}: a human must approve"
                guard = held.removeprefix("guard ").split(":")[0]
            at = now()
            session.add(
                PlaybookRun(
                    id=rid,
                    playbook_id=playbook.id,
                    incident_id=incident.id,
                    trigger=trigger,
                    incident_version=change.version,
                    mode=mode,
                    status=BLOCKED if blocked else PENDING,
                    incident=view,
                    events=events,
                    error=reason if blocked else held,
                    approval={**guard_policy(playbook).to_json(), "votes": []} if blocked else None,
                    created_at=at,
                    updated_at=at,
                )
            )
            data: dict[str, Any] = {
                "playbook": playbook.id,
                "incident": incident.id,
                "trigger": trigger,
                "mode": mode,
            }
            if blocked:
                data["blocked_by_guard"] = guard
            elif held is not None:
                data["dry_run_by_guard"] = held
            audit_append(
                session,
                [
                    (
                        f"playbook:{playbook.id}",
                        "run.blocked_by_guard" if blocked else "run.created",
                        rid,
                        data,
                    )
                ],
            )
            created.append(rid)
            log.info("playbook run created", run_id=rid, playbook=playbook.id, mode=mode)
        return created
