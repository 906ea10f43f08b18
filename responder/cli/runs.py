"""`responder runs ...` and the incident commands analysts send (through `responder.commands`)."""

from __future__ import annotations

import asyncio
import getpass
import time
from collections.abc import Callable
from typing import Annotated

import typer
from sqlmodel import Session

from responder import bootstrap
from responder.cli.console import err, load_settings, out
from responder.cli.run_view import print_run, print_run_list
from responder.commands import Decision, IncidentCommand, send_command
from responder.playbooks.runs import get_run, steps_of

runs_app = typer.Typer(help="Playbook runs: list, show, approve, deny.", no_args_is_help=True)

By = Annotated[str, typer.Option("--by", help="who decides (recorded in the audit log)")]
Wait = Annotated[
    float, typer.Option(help="seconds to wait for the worker to apply it (0: do not wait)")
]


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "analyst"


@runs_app.command("list")
def runs_list(
    status: Annotated[str | None, typer.Option(help="waiting, blocked_by_guard, ...")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List playbook runs, newest first."""
    with Session(bootstrap.database(load_settings())) as session:
        print_run_list(session, out, status=status, as_json=as_json)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="run id or a unique prefix")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one run with its steps, outputs, decisions and what it waits for."""
    with Session(bootstrap.database(load_settings())) as session:
        if not print_run(session, out, run_id, as_json=as_json):
            err.print(f"no playbook run {run_id!r}")
            raise typer.Exit(1)


def _decide(
    run_id: str, step: str | None, approved: bool, by: str, reason: str | None, wait: float
) -> None:
    settings = load_settings()
    engine = bootstrap.database(settings)
    with Session(engine) as session:
        run = get_run(session, run_id)
        if run is None:
            err.print(f"no playbook run {run_id!r}")
            raise typer.Exit(1)
        full = run.id
    command = Decision(run_id=full, step_id=step, approved=approved, by=by, reason=reason)
    asyncio.run(send_command(settings.kafka, command))
    verb = "approval" if approved else "denial"
    out.print(f"{verb} of run {full[:8]} sent to {settings.kafka.topics.commands}")

    def applied() -> bool:
        with Session(engine) as session:
            rows = steps_of(session, full).values()
            return any(r.decided_by == by and (step is None or r.step_id == step) for r in rows)

    _await(applied, wait, "applied by the worker")


def _await(check: Callable[[], bool], wait: float, what: str) -> None:
    deadline = time.monotonic() + wait
    while wait > 0:
        if check():
            out.print(what)
            return
        if time.monotonic() > deadline:
            err.print(f"not {what} within {wait:.0f}s (is a worker running?)")
            raise typer.Exit(2)
        time.sleep(0.2)


@runs_app.command("approve")
def runs_approve(
    run_id: Annotated[str, typer.Argument(help="run id or a unique prefix")],
    step: Annotated[
        str | None, typer.Option(help="the waiting step (default: the one waiting)")
    ] = None,
    by: By = "",
    reason: Annotated[str | None, typer.Option()] = None,
    wait: Wait = 10.0,
) -> None:
    """Approve the step a run waits on (or a step a guard stopped)."""
    _decide(run_id, step, True, by or _default_user(), reason, wait)


@runs_app.command("deny")
def runs_deny(
    run_id: Annotated[str, typer.Argument(help="run id or a unique prefix")],
    step: Annotated[
        str | None, typer.Option(help="the waiting step (default: the one waiting)")
    ] = None,
    by: By = "",
    reason: Annotated[str | None, typer.Option()] = None,
    wait: Wait = 10.0,
) -> None:
    """Deny the step a run waits on."""
    _decide(run_id, step, False, by or _default_user(), reason, wait)


def send_incident_command(
    incident_id: str,
    *,
    by: str,
    status: str | None = None,
    assignee: str | None = None,
    comment: str | None = None,
    wait: float = 10.0,
) -> None:
    """What `responder incidents ack|resolve|false-positive|assign` do."""
    from responder.incidents.store import get_incident

    settings = load_settings()
    engine = bootstrap.database(settings)
    with Session(engine) as session:
        row = get_incident(session, incident_id)
        if row is None:
            err.print(f"no incident {incident_id!r}")
            raise typer.Exit(1)
        full = row.id
    command = IncidentCommand.model_validate(
        {
            "incident_id": full,
            "status": status,
            "assignee": assignee,
            "comment": comment,
            "by": by or _default_user(),
        }
    )
    asyncio.run(send_command(settings.kafka, command))
    out.print(f"incident {full[:8]}: command sent to {settings.kafka.topics.commands}")

    def applied() -> bool:
        with Session(engine) as session:
            current = get_incident(session, full)
            if current is None:
                return False
            return (status is None or current.status == status) and (
                assignee is None or current.assignee == assignee
            )

    _await(applied, wait, "applied by the worker")


def kill_switch(state: str | None, *, by: str, reason: str | None, wait: float) -> None:
    """What `responder playbooks kill-switch [on|off]` does."""
    from responder.commands import KillSwitch
    from responder.playbooks.runs import Switch

    settings = load_settings()
    engine = bootstrap.database(settings)

    def current() -> Switch | None:
        with Session(engine) as session:
            return session.get(Switch, "kill_switch")

    if state is None:
        row = current()
        live = bool(row and row.on)
        since = f" (set by {row.by} at {row.at:%Y-%m-%d %H:%M:%S})" if row else ""
        out.print(f"kill switch: {'ON' if live else 'off'}{since}")
        if settings.playbooks.kill_switch:
            out.print("RESPONDER_PLAYBOOKS__KILL_SWITCH is set: every run is a dry run anyway")
        return
    if state not in ("on", "off"):
        err.print(f"say on or off, not {state!r}")
        raise typer.Exit(1)
    on = state == "on"
    asyncio.run(
        send_command(settings.kafka, KillSwitch(on=on, by=by or _default_user(), reason=reason))
    )
    out.print(f"kill switch {state}: sent to {settings.kafka.topics.commands}")
    _await(lambda: bool((row := current()) and row.on == on), wait, "applied by the worker")
