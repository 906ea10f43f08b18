"""`responder runs ...`: list and show playbook runs, approve or deny the step one waits on,
cancel one (directly, or through the REST API with `--api`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from responder.cli.backend import Request, RunAction
from responder.cli.console import out
from responder.cli.options import Api, AsJson, By, Wait, attempt, backend, send_and_wait
from responder.cli.run_view import print_run, print_run_list
from responder.service.views import RunDetail

runs_app = typer.Typer(
    help="Playbook runs: list, show, approve, deny, cancel.", no_args_is_help=True
)

RunId = Annotated[str, typer.Argument(help="run id or a unique prefix")]
StepOption = Annotated[str | None, typer.Option(help="the waiting step (default: the one waiting)")]
Reason = Annotated[str | None, typer.Option()]


@runs_app.command("list")
def runs_list(
    status: Annotated[
        list[str] | None, typer.Option(help="waiting, blocked_by_guard, ... (repeatable)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    as_json: AsJson = False,
    api: Api = None,
) -> None:
    """List playbook runs, newest first."""
    source = backend(api)
    print_run_list(
        out, attempt(lambda: source.runs(status=status or [], limit=limit)), as_json=as_json
    )


@runs_app.command("show")
def runs_show(run_id: RunId, as_json: AsJson = False, api: Api = None) -> None:
    """Show one run with its steps, outputs, decisions and what it waits for."""
    source = backend(api)
    print_run(out, attempt(lambda: source.run(run_id)), as_json=as_json)


def act(
    api: str | None,
    action: RunAction,
    run_id: str,
    body: dict[str, Any],
    by: str,
    wait: float,
    applied: Callable[[RunDetail], bool],
) -> None:
    source = backend(api)
    request = Request.of(action, run_id, body, by)
    send_and_wait(
        source,
        lambda: source.run_action(request),
        f"{action} of run {{target}}",
        lambda target: applied(source.run(target)),
        wait,
    )


def _decided(api: str | None, run_id: str) -> Callable[[RunDetail], bool]:
    """The decision was recorded: the run changed since now (a decision touches it)."""
    before = attempt(lambda: backend(api).run(run_id))
    decided = {s.step_id for s in before.steps if s.decision}

    def check(run: RunDetail) -> bool:
        now = {s.step_id for s in run.steps if s.decision}
        return now != decided or run.updated_at != before.updated_at

    return check


def _decision_command(name: str, action: RunAction, doc: str) -> Any:
    def command(
        run_id: RunId,
        step: StepOption = None,
        by: By = "",
        reason: Reason = None,
        wait: Wait = 10.0,
        api: Api = None,
    ) -> None:
        done = _decided(api, run_id)
        act(api, action, run_id, {"step": step, "reason": reason}, by, wait, done)

    command.__doc__ = doc
    command.__name__ = command.__qualname__ = name
    return runs_app.command(action)(command)


runs_approve = _decision_command(
    "runs_approve", "approve", "Approve the step a run waits on (or a step a guard stopped)."
)
runs_deny = _decision_command("runs_deny", "deny", "Deny the step a run waits on.")


@runs_app.command("cancel")
def runs_cancel(
    run_id: RunId, by: By = "", reason: Reason = None, wait: Wait = 10.0, api: Api = None
) -> None:
    """Cancel a run that has not finished: it takes no further step (audited)."""
    act(api, "cancel", run_id, {"reason": reason}, by, wait, lambda r: r.status == "cancelled")
