"""The run journal: every state change of a run or step as SQL rows plus an audit record.

Each method runs in a worker thread inside one transaction opened by the runner, so a step's
start is durable before its action is called and its output right after. Everything stored and
audited (parameters, outputs, undo outputs, error texts) passes through `security.redact` first,
so secrets never reach the database or the chain; a value masked by key (an output's
`access_token`) is masked wherever it turns up later in the same run (`RunState.secrets`).
The runner hands a step's raw output to the steps after it in memory (`RunState.outputs`); a
run resumed from the database (another worker, a restart) sees the masked values, so a secret
an action returns is usable only within one pass.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session

from responder.audit.store import append as audit_append
from responder.metrics.worker import RUNS_FINISHED, playbooks
from responder.playbooks import runs as R
from responder.playbooks import statuses as S
from responder.playbooks.plan import PlannedRun
from responder.playbooks.run_state import LeaseLost, RunState, StepFailed
from responder.playbooks.schema import Step
from responder.security.redact import mask_text, remember, scrub, scrub_any


class Journal:
    def __init__(self, owner: str, lease: timedelta) -> None:
        self.owner = owner
        self.lease = lease

    def release(self, session: Session, rid: str) -> None:
        run = session.get(R.PlaybookRun, rid)
        if run is not None and run.lease_owner == self.owner:
            run.lease_owner, run.lease_until = None, None
            session.add(run)
            session.commit()

    def _audit(
        self,
        session: Session,
        run: R.PlaybookRun,
        action: str,
        data: dict[str, Any],
        known: set[str] | None = None,
    ) -> None:
        audit_append(
            session, [(f"playbook:{run.playbook_id}", action, run.id, scrub(data, known or ()))]
        )

    def _row(self, session: Session, state: RunState, position: int, step: Step) -> R.StepRun:
        row = session.get(R.StepRun, (state.run.id, step.id))
        if row is None:
            row = R.StepRun(
                run_id=state.run.id,
                step_id=step.id,
                position=position,
                action=step.action,
                status=S.STEP_RUNNING,
            )
        return row

    def started(
        self,
        session: Session,
        state: RunState,
        position: int,
        step: Step,
        params: Any,
        attempt: int,
    ) -> None:
        """Record an attempt's start before its action is called; `LeaseLost` (nothing recorded,
        the action is not called) if another runner holds the run now."""
        self.hold(session, state.run.id)
        row = self._row(session, state, position, step)
        row.status, row.attempts = S.STEP_RUNNING, row.attempts + 1
        remember(state.secrets, params)
        row.params = (
            scrub({"with": params}, state.secrets)["with"] if isinstance(params, dict) else {}
        )
        row.started_at = row.started_at or R.now()
        session.add(row)
        if attempt == 1:
            self._audit(
                session,
                state.run,
                "step.started",
                {"step": step.id, "action": step.action, "with": row.params},
                state.secrets,
            )

    def record(
        self,
        session: Session,
        state: RunState,
        position: int,
        step: Step,
        status: str,
        *,
        output: Any = None,
        params: Any = None,
        note: str | None = None,
        deadline: Any = None,
        notice: dict[str, Any] | None = None,
        approval: dict[str, Any] | None = None,
    ) -> None:
        # the run row before the audit chain, as everywhere. An outcome is recorded even if the
        # lease was lost meanwhile (the action took place); what follows checks it (`_live`)
        R.renew_lease(session, state.run.id, self.owner, self.lease)
        row = self._row(session, state, position, step)
        remember(state.secrets, output)
        remember(state.secrets, params)
        output = scrub_any(output, state.secrets)
        note = None if note is None else mask_text(note, state.secrets)
        row.status, row.output = status, output
        if status == S.STEP_BLOCKED:  # blocked again after an approval: it needs a new one
            row.decision, row.decided_by, row.decided_at = None, None, None
        if params is not None:
            row.params = (
                scrub({"with": params}, state.secrets)["with"]
                if isinstance(params, dict)
                else scrub({"items": params}, state.secrets)
            )
        if note is not None:
            row.error = note
        if deadline is not None:
            row.deadline = deadline
        if notice is not None:
            row.notice = notice
        if approval is not None:  # who may decide and how many; votes are added by decisions
            row.approval = {**approval, "votes": []}
        if status in S.FINISHED_STEPS or status == S.STEP_DENIED:
            row.finished_at = R.now()
        session.add(row)
        state.steps[step.id] = row
        data: dict[str, Any] = {"step": step.id, "action": step.action}
        if output is not None:
            data["output"] = output
        if note:
            data["note"] = note
        if approval is not None and (approval.get("approvers") or approval.get("quorum", 1) > 1):
            data["approval"] = approval
        if status == S.STEP_PLANNED:
            data["with"] = row.params
        self._audit(session, state.run, f"step.{status}", data, state.secrets)

    def record_plan(self, session: Session, state: RunState, planned: PlannedRun) -> None:
        by_step: dict[str, list[dict[str, Any]]] = {}
        for planned_step in planned.steps:
            by_step.setdefault(planned_step.id, []).append(planned_step.to_json())
        for position, step in enumerate(state.playbook.steps):
            items = by_step.get(step.id, [])
            skipped = next((i.get("skipped") for i in items if i.get("skipped")), None)
            row = self._row(session, state, position, step)
            row.status = S.STEP_SKIPPED if skipped else S.STEP_PLANNED
            row.error = None if skipped is None else mask_text(skipped)
            if len(items) == 1 and "item" not in items[0]:
                row.params = scrub({"with": items[0].get("with") or {}})["with"]
            else:
                row.params = {
                    "items": [scrub({"with": i.get("with") or {}})["with"] for i in items]
                }
            row.finished_at = R.now()
            session.add(row)
            self._audit(
                session,
                state.run,
                f"step.{row.status}",
                {"step": step.id, "action": step.action, "with": row.params},
            )

    def record_failure(
        self, session: Session, state: RunState, position: int, step: Step, exc: StepFailed
    ) -> None:
        row = self._row(session, state, position, step)
        remember(state.secrets, exc.partial)
        error = mask_text(str(exc), state.secrets)
        row.status, row.error, row.finished_at = S.STEP_FAILED, error, R.now()
        if exc.partial:  # the for_each items that took effect before the failure
            row.output = scrub_any(exc.partial, state.secrets)
        session.add(row)
        self._audit(
            session,
            state.run,
            "step.failed",
            {"step": step.id, "action": step.action, "error": error, "on_error": step.on_error},
            state.secrets,
        )

    def undone(
        self, session: Session, state: RunState, step_id: str, status: str, output: Any
    ) -> None:
        row = session.get(R.StepRun, (state.run.id, step_id))
        if row is None:
            return
        remember(state.secrets, output)
        output = scrub_any(output, state.secrets)
        row.status, row.undo_output = status, output
        session.add(row)
        self._audit(
            session, state.run, f"step.{status}", {"step": step_id, "undo": output}, state.secrets
        )

    def hold(self, session: Session, rid: str) -> None:
        """Renew this runner's lease of the run, or raise `LeaseLost` if another runner holds
        it now; asked before every action call, so two runners never call one step at once."""
        if not R.renew_lease(session, rid, self.owner, self.lease):
            raise LeaseLost(rid)

    def set_status(self, session: Session, rid: str, status: str, audit: str) -> None:
        run = _live(session, rid, self.owner)
        if run is not None:
            run.status, run.updated_at, run.wake_at = status, R.now(), None
            session.add(run)
            self._audit(session, run, audit, {"mode": run.mode, "incident": run.incident_id})

    def park(self, session: Session, rid: str, status: str, wake_at: Any) -> None:
        run = _live(session, rid, self.owner)
        if run is not None:
            run.status, run.wake_at, run.updated_at = status, wake_at, R.now()
            if wake_at is None:  # no deadline: only a decision wakes it
                run.wake_at = R.now() + timedelta(days=3650)
            session.add(run)

    def finish_id(self, session: Session, rid: str, status: str, error: str | None) -> None:
        run = _live(session, rid, self.owner)
        if run is not None:
            self.finish(session, run, status, error)

    def finish(self, session: Session, run: R.PlaybookRun, status: str, error: str | None) -> None:
        if run.status == S.CANCELLED:
            return
        error = None if error is None else mask_text(error)
        run.status, run.error, run.updated_at, run.wake_at = status, error, R.now(), None
        session.add(run)
        data: dict[str, Any] = {"incident": run.incident_id, "mode": run.mode}
        if error:
            data["error"] = error
        self._audit(session, run, f"run.{status}", data)
        RUNS_FINISHED.labels(playbooks(run.playbook_id), status).inc()


def _live(session: Session, rid: str, owner: str) -> R.PlaybookRun | None:
    """The run, locked, unless an analyst cancelled it (then its status stays as they left it);
    `LeaseLost` if another runner holds it now (it parks, fails or finishes the run itself)."""
    run = session.get(R.PlaybookRun, rid, with_for_update=True)
    if run is None or run.status == S.CANCELLED:
        return None
    if run.lease_owner != owner:
        raise LeaseLost(rid)
    return run
