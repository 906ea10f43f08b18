"""Terminal views of playbook runs (CLI output only, no business logic).

Runs hold incident titles, step parameters, outputs and error messages, all of which may carry
attacker text: it is shown as `Text` (`responder.security.terminal`), never parsed as markup.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlmodel import Session, col, select

from responder.playbooks.runs import PlaybookRun, StepRun, get_run, list_runs
from responder.security.terminal import print_json, text

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


def _styled(status: str) -> Text:
    return text(status, STATUS_STYLE.get(status, ""))


def print_run_list(session: Session, out: Console, *, status: str | None, as_json: bool) -> None:
    rows = list_runs(session, status=status)
    if as_json:
        for row in rows:
            print_json(out, run_json(row))
        return
    table = Table("run", "created", "playbook", "incident", "mode", "status", "note")
    for row in rows:
        table.add_row(
            text(row.id[:8]),
            text(row.created_at.strftime("%Y-%m-%d %H:%M:%S")),
            text(row.playbook_id),
            text(row.incident_id[:8]),
            text(row.mode),
            _styled(row.status),
            text(row.error or ""),
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
        print_json(out, run_json(run, steps))
        return True
    out.print(Text.assemble(text(run.playbook_id, "bold"), " run ", text(run.id)))
    out.print(
        Text.assemble(
            "incident ", text(run.incident_id), " (", text(run.incident.get("title", "")), ")"
        )
    )
    out.print(
        Text.assemble(
            "mode ",
            text(run.mode),
            ", trigger ",
            text(run.trigger),
            ", status ",
            _styled(run.status),
        )
    )
    if run.error:
        out.print(text(run.error))
    table = Table("step", "action", "status", "tries", "decision", "output / error / plan")
    for step in steps:
        decision = f"{step.decision} by {step.decided_by}" if step.decision else ""
        shown = step.params if step.status == "planned" else step.output
        detail = step.error or json.dumps(shown, default=str, ensure_ascii=False)[:160]
        table.add_row(
            text(step.step_id),
            text(step.action),
            _styled(step.status),
            text(step.attempts),
            text(decision),
            text(detail),
        )
    out.print(table)
    waiting = [s for s in steps if s.status in ("waiting_approval", "blocked_by_guard")]
    for step in waiting:
        if step.decision is None:
            out.print(
                Text.assemble(
                    "waiting for a decision on ",
                    text(step.step_id, "bold"),
                    ": responder runs approve ",
                    text(run.id[:8]),
                    " --step ",
                    text(step.step_id),
                    "  (or deny)",
                )
            )
    return True
