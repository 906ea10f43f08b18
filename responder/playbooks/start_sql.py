"""Starting runs in SQL: the run rows a batch's applied incident changes trigger, in its transaction.

The sink's batch step (`streams.sink.store_changes`) calls `RunStarter` once per batch with the
changes it applied, after their rows are written, so a run exists exactly when its triggering
change is stored: a crash cannot lose it, and a redelivered change (skipped by version) cannot
start it twice. The run id is derived from (playbook, incident, version) as a second guard.
Which playbooks match is decided by the pure `trigger` and `schema.Trigger.matches`, with each
change's blast radius as `BlastRadii` computed it for the batch; this module writes the rows
(one bulk insert a batch) and adds their audit records to the changes that started them. Each
run sees the incident's evidence as it stood once its change was applied: it holds the count of
evidence rows then (`runs.run_events` reads them), evidence rows being only ever appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlmodel import Session

from responder.correlation.match import MISSING, get_path
from responder.incidents.model import IncidentChange
from responder.incidents.store import Applied
from responder.playbooks.blast_guard import blast_guard
from responder.playbooks.loader import PlaybookSet
from responder.playbooks.runs import (
    PlaybookRun,
    kill_switch_on,
    lock_run_limits,
    now,
    run_id,
    runs_in_last_hour,
)
from responder.playbooks.schema import Playbook
from responder.playbooks.statuses import BLOCKED, PENDING
from responder.playbooks.step_rules import guard_policy
from responder.playbooks.trigger import TriggerChange, change_kind, incident_view
from responder.storage.bulk import among, insert_rows, table_of

log = structlog.get_logger(__name__)

MAX_MATCHED = 4096  # remembered matchings (by change kind and the fields the conditions read)
_SCALARS = (str, int, bool, type(None))  # floats: -0.0 == 0.0, but their texts differ


@dataclass(frozen=True, slots=True)
class _Start:
    """A run an applied change triggers (unless a run of that id exists)."""

    done: Applied
    playbook: Playbook
    trigger: TriggerChange
    view: dict[str, Any]
    id: str


class RunStarter:
    def __init__(self, playbooks: PlaybookSet, *, kill_switch: bool = False) -> None:
        self.playbooks = playbooks
        self.kill_switch = kill_switch
        self._by_change: dict[str, list[Playbook]] = {}  # the playbooks each change kind may start
        for playbook in playbooks.playbooks.values():
            for kind in playbook.on.change:
                self._by_change.setdefault(kind, []).append(playbook)
        self._paths = {  # the incident fields the `on:` conditions of those playbooks read
            kind: tuple(dict.fromkeys(c.condition.path for p in candidates for c in p.on.compiled))
            for kind, candidates in self._by_change.items()
        }
        self._matched: dict[tuple[Any, ...], list[Playbook]] = {}

    def _matching(
        self,
        change: IncidentChange,
        previous_status: str | None,
        status: str,
        radius: dict[str, Any] | None = None,
    ) -> tuple[TriggerChange, dict[str, Any], list[Playbook]]:
        """The change kind, the incident as the runs see it, and the playbooks it starts (the
        view is built only when some playbook answers this kind of change)."""
        trigger = change_kind(change, previous_status)
        candidates = self._by_change.get(trigger)
        if not candidates:
            return trigger, {}, []
        view = incident_view(change, previous_status=previous_status, status=status)
        if radius is not None:
            view["blast_radius"] = radius
        key = self._key(trigger, view)
        found = None if key is None else self._matched.get(key)
        if found is None:
            found = [p for p in candidates if p.on.matches(view, trigger)]
            if key is not None:
                if len(self._matched) >= MAX_MATCHED:
                    self._matched.clear()
                self._matched[key] = found
        return trigger, view, found

    def _key(self, trigger: str, view: dict[str, Any]) -> tuple[Any, ...] | None:
        """What the matching depends on: the change kind and the value (with its type) at each
        path the conditions read, as a condition is a function of the value at its path
        (`correlation.match.Condition`); None where a value is not a plain scalar."""
        key: list[Any] = [trigger]
        for path in self._paths[trigger]:
            value = get_path(view, path)
            if value is not MISSING and type(value) not in _SCALARS:
                return None
            key.append((type(value), value))
        return tuple(key)

    def __call__(
        self,
        session: Session,
        applied: Sequence[Applied],
        radii: Sequence[dict[str, Any]] | None = None,
    ) -> list[str]:
        """Create the runs the batch's applied changes trigger, in order; return their ids.

        `radii`: each change's blast radius (`BlastRadii`), which runs see as
        `incident.blast_radius` (none without an asset snapshot)."""
        starts = []
        for i, done in enumerate(applied):
            radius = None if radii is None else radii[i]
            trigger, view, matching = self._matching(
                done.change, done.previous_status, done.status, radius
            )
            for playbook in matching:
                rid = run_id(playbook.id, done.change.incident_id, done.change.version)
                starts.append(_Start(done, playbook, trigger, view, rid))
        if not starts:
            return []
        table = table_of(PlaybookRun)
        ids = [s.id for s in starts]
        found = session.connection().execute(
            select(table.c.id).where(among(session, table.c.id, ids))
        )
        taken = set(found.scalars())
        starts = [s for s in starts if s.id not in taken]
        if not starts:
            return []
        killed = self.kill_switch or kill_switch_on(session)
        limited = (  # playbooks whose run limit counts these runs (a dry run counts toward none)
            []
            if killed
            else [
                s.playbook.id
                for s in starts
                if s.playbook.guards.max_runs_per_hour is not None and s.playbook.mode != "dry_run"
            ]
        )
        lock_run_limits(session, limited)
        recent = runs_in_last_hour(session, limited)  # by playbook, after the locks
        at = now()
        rows: list[dict[str, Any]] = []
        for start in starts:
            if start.id in taken:
                continue
            taken.add(start.id)
            playbook, done = start.playbook, start.done
            mode = "dry_run" if killed else playbook.mode
            limit = playbook.guards.max_runs_per_hour
            blocked = (
                limit is not None and mode != "dry_run" and recent.get(playbook.id, 0) >= limit
            )
            guard = f"max_runs_per_hour={limit}"
            reason = f"guard {guard} reached: a human must approve"
            held = (
                None
                if mode == "dry_run"
                else blast_guard(playbook.guards, start.view.get("blast_radius"))
            )
            if held is not None and playbook.guards.blast_radius_action == "dry_run":
                mode, held = "dry_run", f"{held}: planned only (guards.blast_radius_action)"
            elif held is not None and not blocked:
                blocked, reason = True, f"{held}: a human must approve"
                guard = held.removeprefix("guard ").split(":")[0]
            if limit is not None and mode != "dry_run":  # (the blast guard may make it one)
                recent[playbook.id] = recent.get(playbook.id, 0) + 1
            incident_id = done.change.incident_id
            rows.append(
                {
                    "id": start.id,
                    "playbook_id": playbook.id,
                    "incident_id": incident_id,
                    "trigger": start.trigger,
                    "incident_version": done.change.version,
                    "mode": mode,
                    "status": BLOCKED if blocked else PENDING,
                    "incident": start.view,
                    # its events (`runs.run_events`): the evidence rows as of its change, by
                    # count (not copied: a run row was ~1.5 KB of repeated bodies), then the
                    # change's events past the evidence limit
                    "evidence": done.evidence,
                    "events": done.not_kept,
                    "error": reason if blocked else held,
                    "approval": (
                        {**guard_policy(playbook).to_json(), "votes": []} if blocked else None
                    ),
                    "lease_owner": None,
                    "lease_until": None,
                    "wake_at": None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            data: dict[str, Any] = {
                "playbook": playbook.id,
                "incident": incident_id,
                "trigger": start.trigger,
                "mode": mode,
            }
            if blocked:
                data["blocked_by_guard"] = guard
            elif held is not None:
                data["dry_run_by_guard"] = held
            action = "run.blocked_by_guard" if blocked else "run.created"
            done.audit.append((f"playbook:{playbook.id}", action, start.id, data))
        insert_rows(session, table, rows)
        if rows:  # one line a batch: a line a run cost more than creating the run
            log.info(
                "playbook runs created",
                runs=len(rows),
                playbooks=sorted({row["playbook_id"] for row in rows}),
                blocked=sum(row["status"] == BLOCKED for row in rows),
            )
        return [row["id"] for row in rows]
