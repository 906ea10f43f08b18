"""Playbook run operations: list / read with steps, and approve, deny or cancel as commands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from responder.commands import AnyCommand, Decision, RunCancel
from responder.playbooks.runs import PlaybookRun, StepRun, get_run
from responder.playbooks.statuses import BLOCKED, CANCELLABLE, STEP_BLOCKED, STEP_WAITING
from responder.service.errors import Conflict, Invalid, NotFound
from responder.service.pages import Cursor, decode, encode
from responder.service.views import Page, RunDetail, RunView, StepView
from responder.service.writer import Writer, build

RUN_SORT = "-created_at"


def list_runs(
    session: Session,
    *,
    status: Sequence[str] = (),
    playbook: str | None = None,
    incident: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[RunView]:
    """One page of runs, newest first."""
    stmt = select(PlaybookRun)
    if status:
        stmt = stmt.where(col(PlaybookRun.status).in_(list(status)))
    if playbook:
        stmt = stmt.where(PlaybookRun.playbook_id == playbook)
    if incident:
        stmt = stmt.where(PlaybookRun.incident_id == incident)
    created, ident = col(PlaybookRun.created_at), col(PlaybookRun.id)
    if cursor is not None:
        after = decode(cursor, RUN_SORT)
        if not isinstance(after.value, datetime):
            raise Invalid("invalid cursor")
        stmt = stmt.where(
            or_(created < after.value, and_(created == after.value, ident < after.id))
        )
    rows = list(session.exec(stmt.order_by(created.desc(), ident.desc()).limit(limit + 1)).all())
    more, rows = len(rows) > limit, rows[:limit]
    next_cursor = None
    if more and rows:
        next_cursor = encode(Cursor(sort=RUN_SORT, value=rows[-1].created_at, id=rows[-1].id))
    return Page[RunView](items=[RunView.of(r) for r in rows], next_cursor=next_cursor)


def find_run(session: Session, run_id: str) -> PlaybookRun:
    row = get_run(session, run_id)
    if row is None:
        raise NotFound(f"no playbook run {run_id!r}")
    return row


def run_detail(session: Session, run_id: str) -> RunDetail:
    """The run with its steps in playbook order: status, parameters, outputs, decisions."""
    row = find_run(session, run_id)
    steps = session.exec(
        select(StepRun).where(StepRun.run_id == row.id).order_by(col(StepRun.position))
    ).all()
    return RunDetail(**RunView.of(row).model_dump(), steps=[StepView.of(s) for s in steps])


def _waiting(session: Session, run_id: str, step: str | None) -> str:
    """The run's full id if it waits for a decision (on `step`, when given)."""
    row = find_run(session, run_id)
    waiting = session.exec(
        select(StepRun.step_id, StepRun.decision)
        .where(StepRun.run_id == row.id)
        .where(col(StepRun.status).in_([STEP_WAITING, STEP_BLOCKED]))
    ).all()
    undecided = [sid for sid, decision in waiting if decision is None]
    if step is not None and step in undecided:
        return row.id
    if step is None and (undecided or row.status == BLOCKED):
        return row.id
    what = f"step {step!r}" if step else "no step"
    raise Conflict(f"run {row.id} is {row.status}; {what} is waiting for a decision")


async def decide(
    w: Writer,
    by: str,
    run_id: str,
    *,
    approved: bool,
    step: str | None = None,
    reason: str | None = None,
) -> AnyCommand:
    """Approve or deny the step a run waits on (or the start a guard blocked)."""
    full = await w.read(_waiting, run_id, step)
    return await w.send(
        build(Decision, run_id=full, step_id=step, approved=approved, by=by, reason=reason)
    )


def _cancellable(session: Session, run_id: str) -> str:
    row = find_run(session, run_id)
    if row.status not in CANCELLABLE:
        raise Conflict(f"run {row.id} is {row.status}; it cannot be cancelled")
    return row.id


async def cancel(w: Writer, by: str, run_id: str, *, reason: str | None = None) -> AnyCommand:
    """Cancel a run that has not finished (it takes no further step)."""
    full = await w.read(_cancellable, run_id)
    return await w.send(build(RunCancel, run_id=full, by=by, reason=reason))
