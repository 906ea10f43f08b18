"""`responder runs ...`: list and show playbook runs, approve or deny the step one waits on."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from responder import bootstrap
from responder.cli.console import err, out
from responder.cli.options import By, Wait, await_applied, default_user, fail
from responder.cli.run_view import print_run, print_run_list
from responder.commands import Decision
from responder.playbooks.runs import get_run, steps_of

runs_app = typer.Typer(help="Playbook runs: list, show, approve, deny.", no_args_is_help=True)

RunId = Annotated[str, typer.Argument(help="run id or a unique prefix")]
StepOption = Annotated[str | None, typer.Option(help="the waiting step (default: the one waiting)")]


@runs_app.command("list")
def runs_list(
    status: Annotated[str | None, typer.Option(help="waiting, blocked_by_guard, ...")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List playbook runs, newest first."""
    with Session(bootstrap.services().engine) as session:
        print_run_list(session, out, status=status, as_json=as_json)


@runs_app.command("show")
def runs_show(run_id: RunId, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one run with its steps, outputs, decisions and what it waits for."""
    with Session(bootstrap.services().engine) as session:
        if not print_run(session, out, run_id, as_json=as_json):
            err.print(f"no playbook run {run_id!r}")
            raise typer.Exit(1)


def _decide(
    run_id: str, step: str | None, approved: bool, by: str, reason: str | None, wait: float
) -> None:
    app = bootstrap.services()
    with Session(app.engine) as session:
        run = get_run(session, run_id)
        if run is None:
            raise fail(f"no playbook run {run_id!r}")
        full = run.id
    by = by or default_user()
    app.send(Decision(run_id=full, step_id=step, approved=approved, by=by, reason=reason))
    verb = "approval" if approved else "denial"
    out.print(f"{verb} of run {full[:8]} sent to {app.settings.kafka.topics.commands}")

    def applied() -> bool:
        with Session(app.engine) as session:
            rows = steps_of(session, full).values()
            return any(r.decided_by == by and (step is None or r.step_id == step) for r in rows)

    await_applied(applied, wait)


@runs_app.command("approve")
def runs_approve(
    run_id: RunId,
    step: StepOption = None,
    by: By = "",
    reason: Annotated[str | None, typer.Option()] = None,
    wait: Wait = 10.0,
) -> None:
    """Approve the step a run waits on (or a step a guard stopped)."""
    _decide(run_id, step, True, by, reason, wait)


@runs_app.command("deny")
def runs_deny(
    run_id: RunId,
    step: StepOption = None,
    by: By = "",
    reason: Annotated[str | None, typer.Option()] = None,
    wait: Wait = 10.0,
) -> None:
    """Deny the step a run waits on."""
    _decide(run_id, step, False, by, reason, wait)
