"""Terminal views of playbook runs (CLI output only, no business logic)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlmodel import Session, col, select

from responder.playbooks.runs import PlaybookRun, StepRun, get_run, list_runs

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "denied": "yellow",
    "blocked_by_guard": "bold yellow",
    "waiting": "bold cyan",
    "undone": "magenta",
}


def run_json(run: PlaybookRun, steps: list[StepRun] | None = None) -> dict[str, Any]:
    data = run.model_dump(mode="json", exclude={"events", "lease_owner", "lease_until"})
    if steps is not None:
        data["steps"] = [s.model_dump(mode="json") for s in steps]
    return data


def _styled(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def print_run_list(session: Session, out: Console, *, status: str | None, as_json: bool) -> None:
    rows = list_runs(session, status=status)
    if as_json:
        for row in rows:
            out.print_json(json.dumps(run_json(row)))
        return
    table = Table("run", "created", "playbook", "incident", "mode", "status", "note")
    for row in rows:
        table.add_row(
            row.id[:8],
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.playbook_id,
            row.incident_id[:8],
            row.mode,
            _styled(row.status),
            row.error or "",
        )
    out.print(table)
    if not rows:
        out.print("no playbook runs")


def print_run(session: Session, out: Console, run_id: str, *, as_json: bool) -> bool:
    run = get_run(session, run_id)
    if run is None:
        return False
    steps = list(
        session.exec(
            select(StepRun).where(StepRun.run_id == run.id).order_by(col(StepRun.position))
        ).all()
    )
    if as_json:
        out.print_json(json.dumps(run_json(run, steps)))
        return True
    out.print(
        f"[bold]{run.playbook_id}[/] run {run.id}\n"
        f"incident {run.incident_id} ({run.incident.get('title', '')})\n"
        f"mode {run.mode}, trigger {run.trigger}, status {_styled(run.status)}"
        + (f"\n{run.error}" if run.error else "")
    )
    table = Table("step", "action", "status", "tries", "decision", "output / error / plan")
    for step in steps:
        decision = f"{step.decision} by {step.decided_by}" if step.decision else ""
        shown = step.params if step.status == "planned" else step.output
        detail = step.error or json.dumps(shown, default=str)[:160]
        table.add_row(
            step.step_id, step.action, _styled(step.status), str(step.attempts), decision, detail
        )
    out.print(table)
    waiting = [s for s in steps if s.status in ("waiting_approval", "blocked_by_guard")]
    for step in waiting:
        if step.decision is None:
            out.print(
                f"waiting for a decision on [bold]{step.step_id}[/]: "
                f"responder runs approve {run.id[:8]} --step {step.step_id}  (or deny)"
            )
    return True
