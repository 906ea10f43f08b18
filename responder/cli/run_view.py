"""Terminal views of playbook runs (CLI output only, no business logic)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from responder.service.views import RunDetail, RunView

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "denied": "yellow",
    "blocked_by_guard": "bold yellow",
    "waiting": "bold cyan",
    "undone": "magenta",
}


def run_json(run: RunView) -> dict[str, Any]:
    return run.model_dump(mode="json")


def approval_line(approval: dict[str, Any] | None) -> str:
    """`needs 2 approvals from group:secops; approved so far: slack:U1 (1 of 2)`."""
    approval = approval or {}
    quorum = int(approval.get("quorum", 1))
    approvers = [str(a) for a in approval.get("approvers") or []]
    votes = [v for v in approval.get("votes") or [] if isinstance(v, dict) and v.get("approve")]
    line = f"needs {quorum} approval{'s' if quorum > 1 else ''}"
    line += f" from {', '.join(approvers)}" if approvers else " from anyone who may decide"
    if votes:
        line += f"; approved so far: {', '.join(str(v.get('by')) for v in votes)}"
        line += f" ({len(votes)} of {quorum})"
    return line


def _styled(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def print_run_list(out: Console, rows: Sequence[RunView], *, as_json: bool) -> None:
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


def print_run(out: Console, run: RunDetail, *, as_json: bool) -> None:
    steps = run.steps
    if as_json:
        out.print_json(json.dumps(run_json(run)))
        return
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
            out.print(approval_line(step.approval), highlight=False, markup=False)
