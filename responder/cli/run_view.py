"""Terminal views of playbook runs (CLI output only, no business logic).

Runs hold incident titles, step parameters, outputs and error messages, all of which may carry
attacker text: it is shown as `Text` (`responder.security.terminal`), never parsed as markup.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from responder.security.terminal import print_json, text
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


def _styled(status: str) -> Text:
    return text(status, STATUS_STYLE.get(status, ""))


def print_run_list(out: Console, rows: Sequence[RunView], *, as_json: bool) -> None:
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


def print_run(out: Console, run: RunDetail, *, as_json: bool) -> None:
    steps = run.steps
    if as_json:
        print_json(out, run_json(run))
        return
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
            out.print(approval_line(step.approval), highlight=False, markup=False)
