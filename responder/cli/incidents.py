"""`responder incidents ...`: look at incidents, and change them through `responder.commands`."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from responder import bootstrap
from responder.cli.console import out
from responder.cli.incident_view import print_incident, print_incident_list
from responder.cli.options import By, Wait, await_applied, default_user, fail
from responder.commands import IncidentCommand
from responder.incidents.store import get_incident

incidents_app = typer.Typer(help="Look at incidents and act on them.", no_args_is_help=True)

IncidentId = Annotated[str, typer.Argument(help="incident id or a unique prefix")]
Comment = Annotated[str | None, typer.Option()]


@incidents_app.command("list")
def incidents_list(
    status: Annotated[str | None, typer.Option(help="open, acknowledged, resolved, ...")] = None,
    severity: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List incidents, newest first."""
    with Session(bootstrap.services().engine) as session:
        print_incident_list(
            session, out, status=status, severity=severity, limit=limit, as_json=as_json
        )


@incidents_app.command("show")
def incidents_show(
    incident_id: IncidentId, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Show one incident with its evidence events and audit trail."""
    with Session(bootstrap.services().engine) as session:
        if not print_incident(session, out, incident_id, as_json=as_json):
            raise fail(f"no incident {incident_id!r}")


@incidents_app.command("ack")
def incidents_ack(
    incident_id: IncidentId, by: By = "", comment: Comment = None, wait: Wait = 10.0
) -> None:
    """Acknowledge an incident (through responder.commands, audited)."""
    send_incident_command(incident_id, by=by, status="acknowledged", comment=comment, wait=wait)


@incidents_app.command("resolve")
def incidents_resolve(
    incident_id: IncidentId, by: By = "", comment: Comment = None, wait: Wait = 10.0
) -> None:
    """Resolve an incident."""
    send_incident_command(incident_id, by=by, status="resolved", comment=comment, wait=wait)


@incidents_app.command("false-positive")
def incidents_false_positive(
    incident_id: IncidentId, by: By = "", comment: Comment = None, wait: Wait = 10.0
) -> None:
    """Mark a false positive: playbook steps with an `undo` are compensated, newest first."""
    send_incident_command(incident_id, by=by, status="false_positive", comment=comment, wait=wait)


@incidents_app.command("assign")
def incidents_assign(
    incident_id: IncidentId,
    to: Annotated[str, typer.Option("--to", help="assignee")],
    by: By = "",
    wait: Wait = 10.0,
) -> None:
    """Assign an incident to someone."""
    send_incident_command(incident_id, by=by, assignee=to, wait=wait)


def send_incident_command(
    incident_id: str,
    *,
    by: str,
    status: str | None = None,
    assignee: str | None = None,
    comment: str | None = None,
    wait: float = 10.0,
) -> None:
    """Send one incident command and wait until the worker has applied it."""
    app = bootstrap.services()
    with Session(app.engine) as session:
        row = get_incident(session, incident_id)
        if row is None:
            raise fail(f"no incident {incident_id!r}")
        full = row.id
    command = IncidentCommand.model_validate(
        {
            "incident_id": full,
            "status": status,
            "assignee": assignee,
            "comment": comment,
            "by": by or default_user(),
        }
    )
    app.send(command)
    out.print(f"incident {full[:8]}: command sent to {app.settings.kafka.topics.commands}")

    def applied() -> bool:
        with Session(app.engine) as session:
            current = get_incident(session, full)
            if current is None:
                return False
            return (status is None or current.status == status) and (
                assignee is None or current.assignee == assignee
            )

    await_applied(applied, wait)
