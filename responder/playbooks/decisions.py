"""Human decisions on runs (approve / deny) and on incidents (false positive → undo), in SQL.

These are what `responder.commands` messages do once the worker consumes them; the CLI and the
API both send commands, so every decision takes the same audited path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from responder.audit.store import append as audit_append
from responder.events.schema import rfc3339
from responder.incidents.model import IncidentEdit, IncidentStatus
from responder.incidents.store import update_incident
from responder.playbooks.quorum import (
    Approved,
    Directory,
    Outcome,
    Pending,
    Policy,
    Refused,
    Vote,
    cast,
)
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
    STEP_FAILED,
    STEP_WAITING,
    UNDOING,
    UNDONE,
)


class DecisionError(ValueError):
    """The decision does not apply (unknown run, nothing waiting, already decided, a voter who
    is not an approver or voted already)."""


@dataclass(frozen=True)
class Decided:
    run_id: str
    step_id: str | None
    decision: str  # approved | denied | pending (a vote counted, the quorum not reached yet)
    missing: int = 0  # approvals still needed when pending


def decide(
    session: Session,
    *,
    run: str,
    approved: bool,
    by: str,
    step: str | None = None,
    reason: str | None = None,
    directory: Directory | None = None,
    command: str | None = None,
) -> Decided:
    """Count `by`'s vote on the step the run waits on (or its blocked start) and record the
    decision once the votes add up to one (`quorum.tally`): approved by a quorum of distinct
    allowed approvers, denied by one. Audited either way."""
    directory = directory or Directory()
    row = get_run(session, run)
    if row is None:
        raise DecisionError(f"no playbook run {run!r}")
    waiting = session.exec(
        select(StepRun)
        .where(StepRun.run_id == row.id)
        .where(col(StepRun.status).in_([STEP_WAITING, STEP_BLOCKED]))
    ).all()
    target = next((s for s in waiting if step is None or s.step_id == step), None)
    at = now()
    if target is None:
        if row.status == BLOCKED and step is None:  # blocked before its first step
            session.refresh(row, with_for_update=True)
            approval, outcome = _vote(row.approval, directory, by, approved, at, command, reason)
            row.approval = approval
            if not isinstance(outcome, Pending):
                row.status = PENDING if isinstance(outcome, Approved) else DENIED
                row.error = None if isinstance(outcome, Approved) else f"denied by {by}"
                row.wake_at = at
            row.updated_at = at
            session.add(row)
            return _decided(session, row, None, outcome, by, reason, approval)
        what = f"step {step!r}" if step else "any step"
        raise DecisionError(f"run {row.id} is {row.status}; {what} is not waiting for a decision")
    session.refresh(target, with_for_update=True)  # votes on one step are counted one at a time
    if target.decision is not None:
        raise DecisionError(f"step {target.step_id} was already {target.decision}")
    approval, outcome = _vote(target.approval, directory, by, approved, at, command, reason)
    target.approval = approval
    if not isinstance(outcome, Pending):
        decision = "approved" if isinstance(outcome, Approved) else "denied"
        people = outcome.by if isinstance(outcome, Approved) else (outcome.by,)
        target.decision, target.decided_at = decision, at
        target.decided_by = _clip(", ".join(people), 200)
        if reason:
            target.notice = {**(target.notice or {}), "reason": reason}
        if row.status == BLOCKED:
            row.status = PENDING if decision == "approved" else DENIED
        row.wake_at = at
    session.add(target)
    row.updated_at = at
    session.add(row)
    return _decided(session, row, target.step_id, outcome, by, reason, approval)


def _vote(
    approval: dict[str, Any] | None,
    directory: Directory,
    by: str,
    approved: bool,
    at: datetime,
    command: str | None,
    reason: str | None,
) -> tuple[dict[str, Any], Outcome]:
    """The approval record with `by`'s vote added, and what the votes add up to now."""
    approval = approval or {}
    policy = Policy.from_json(approval)
    votes = [Vote.from_json(v) for v in approval.get("votes") or []]
    try:
        added, outcome = cast(
            policy,
            directory,
            votes,
            by=by,
            approve=approved,
            at=rfc3339(at),
            command=command,
            reason=reason,
        )
    except Refused as exc:
        raise DecisionError(str(exc)) from None
    return {**policy.to_json(), "votes": [v.to_json() for v in added]}, outcome


def _decided(
    session: Session,
    run: PlaybookRun,
    step: str | None,
    outcome: Outcome,
    by: str,
    reason: str | None,
    approval: dict[str, Any],
) -> Decided:
    data: dict[str, Any] = {"playbook": run.playbook_id, "step": step, "reason": reason}
    quorum = int(approval.get("quorum", 1))
    if quorum > 1 or approval.get("approvers"):
        data["quorum"] = quorum
    if isinstance(outcome, Pending):
        data["approvals"] = list(outcome.approvals)
        action, decision = "approval.vote", "pending"
    elif isinstance(outcome, Approved):
        if quorum > 1:
            data["approvals"] = list(outcome.by)
        action, decision = "approval.approved", "approved"
    else:
        action, decision = "approval.denied", "denied"
    audit_append(session, [(f"analyst:{by}", action, run.id, data)])
    missing = outcome.missing if isinstance(outcome, Pending) else 0
    return Decided(run.id, step, decision, missing)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mark_false_positive(
    session: Session, *, incident_id: str, by: str, comment: str | None = None
) -> list[str]:
    """Close the incident as a false positive and queue the undo of its runs' completed steps.

    Returns the ids of the runs that will be compensated (steps with an `undo` that took effect).
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
        finished = session.exec(
            select(StepRun)
            .where(StepRun.run_id == run.id)
            .where(col(StepRun.status).in_([STEP_DONE, STEP_FAILED]))
        ).all()
        # done steps, and for_each steps that failed after some items took effect (their
        # output lists those: `step_rules.undo_order` decides which exactly)
        if not any(s.status == STEP_DONE or s.output for s in finished):
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
