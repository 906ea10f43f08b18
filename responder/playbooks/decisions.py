"""Human decisions on runs (approve / deny) and on incidents (false positive → undo), in SQL.

These are what `responder.commands` messages do once the worker consumes them; the CLI and the
API both send commands, so every decision takes the same audited path.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from responder.audit.store import append as audit_append
from responder.incidents.model import IncidentEdit, IncidentStatus
from responder.incidents.store import update_incident
from responder.playbooks.runs import (
    KILL_SWITCH,
    PlaybookRun,
    StepRun,
    Switch,
    get_run,
    now,
    runs_of_incident,
)
from responder.playbooks.statuses import (
    BLOCKED,
    CANCELLABLE,
    CANCELLED,
    DENIED,
    PENDING,
    STEP_BLOCKED,
    STEP_CANCELLED,
    STEP_DONE,
    STEP_WAITING,
    UNDOING,
    UNDONE,
)


class DecisionError(ValueError):
    """The decision does not apply (unknown run, nothing waiting, already decided)."""


@dataclass(frozen=True)
class Decided:
    run_id: str
    step_id: str | None
    decision: str


def decide(
    session: Session,
    *,
    run: str,
    approved: bool,
    by: str,
    step: str | None = None,
    reason: str | None = None,
) -> Decided:
    """Record an approval or denial of the step the run waits on (or its blocked start)."""
    row = get_run(session, run)
    if row is None:
        raise DecisionError(f"no playbook run {run!r}")
    decision = "approved" if approved else "denied"
    waiting = session.exec(
        select(StepRun)
        .where(StepRun.run_id == row.id)
        .where(col(StepRun.status).in_([STEP_WAITING, STEP_BLOCKED]))
    ).all()
    target = next((s for s in waiting if step is None or s.step_id == step), None)
    at = now()
    if target is None:
        if row.status == BLOCKED and step is None:  # blocked before its first step
            row.status = PENDING if approved else DENIED
            row.error = None if approved else f"denied by {by}"
            row.wake_at, row.updated_at = at, at
            session.add(row)
            _audit(session, row, None, decision, by, reason)
            return Decided(row.id, None, decision)
        what = f"step {step!r}" if step else "any step"
        raise DecisionError(f"run {row.id} is {row.status}; {what} is not waiting for a decision")
    if target.decision is not None:
        raise DecisionError(f"step {target.step_id} was already {target.decision}")
    target.decision, target.decided_by, target.decided_at = decision, by, at
    if reason:
        target.notice = {**(target.notice or {}), "reason": reason}
    session.add(target)
    if row.status == BLOCKED:
        row.status = PENDING if approved else DENIED
    row.wake_at, row.updated_at = at, at
    session.add(row)
    _audit(session, row, target.step_id, decision, by, reason)
    return Decided(row.id, target.step_id, decision)


def _audit(
    session: Session,
    run: PlaybookRun,
    step: str | None,
    decision: str,
    by: str,
    reason: str | None,
) -> None:
    data = {"playbook": run.playbook_id, "step": step, "reason": reason}
    audit_append(session, [(f"analyst:{by}", f"approval.{decision}", run.id, data)])


def mark_false_positive(
    session: Session, *, incident_id: str, by: str, comment: str | None = None
) -> list[str]:
    """Close the incident as a false positive and queue the undo of its runs' completed steps.

    Returns the ids of the runs that will be compensated (steps with an `undo`, done).
    """
    incident = update_incident(
        session,
        incident_id,
        IncidentEdit(status=IncidentStatus.false_positive, comment=comment),
        actor=f"analyst:{by}",
    )
    queued = []
    for run in runs_of_incident(session, incident.id):
        if run.status in (UNDOING, UNDONE) or run.mode == "dry_run":
            continue
        done = session.exec(
            select(StepRun).where(StepRun.run_id == run.id).where(StepRun.status == STEP_DONE)
        ).all()
        if not done:
            continue
        run.status, run.wake_at, run.updated_at = UNDOING, now(), now()
        session.add(run)
        queued.append(run.id)
        audit_append(
            session,
            [(f"analyst:{by}", "run.undo_requested", run.id, {"incident": incident.id})],
        )
    return queued


def set_kill_switch(session: Session, *, on: bool, by: str, reason: str | None = None) -> bool:
    """Turn every playbook run into a dry run (or back), at once and for all workers; audited.

    Returns the previous state.
    """
    row = session.get(Switch, KILL_SWITCH)
    before = bool(row and row.on)
    if row is None:
        row = Switch(name=KILL_SWITCH, on=on, by=by, at=now())
    else:
        row.on, row.by, row.at = on, by, now()
    session.add(row)
    action = "kill_switch.on" if on else "kill_switch.off"
    audit_append(
        session, [(f"analyst:{by}", action, KILL_SWITCH, {"was": before, "reason": reason})]
    )
    return before


def cancel_run(session: Session, *, run: str, by: str, reason: str | None = None) -> str:
    """Cancel a run that has not finished: the runner takes no further step (one already acting
    finishes and is recorded); a step waiting for a decision is cancelled with it. Audited.

    Returns the run's id.
    """
    row = get_run(session, run)
    if row is None:
        raise DecisionError(f"no playbook run {run!r}")
    session.refresh(row, with_for_update=True)  # a runner finishing it now waits, then sees it
    if row.status not in CANCELLABLE:
        raise DecisionError(f"run {row.id} is {row.status}; it cannot be cancelled")
    at = now()
    waiting = session.exec(
        select(StepRun)
        .where(StepRun.run_id == row.id)
        .where(col(StepRun.status).in_([STEP_WAITING, STEP_BLOCKED]))
    ).all()
    for step in waiting:
        step.status, step.finished_at = STEP_CANCELLED, at
        session.add(step)
    previous = row.status
    row.status, row.wake_at, row.updated_at = CANCELLED, None, at
    row.error = f"cancelled by {by}" + (f": {reason}" if reason else "")
    session.add(row)
    audit_append(
        session,
        [
            (
                f"analyst:{by}",
                "run.cancelled",
                row.id,
                {"playbook": row.playbook_id, "previous_status": previous, "reason": reason},
            )
        ],
    )
    return row.id
