"""`responder incidents ...`: look at incidents, and change them through `responder.commands`
(directly, or through the REST API with `--api`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from responder.cli.backend import IncidentAction, Request
from responder.cli.console import out
from responder.cli.incident_view import print_incident, print_incident_list
from responder.cli.options import Api, AsJson, By, Wait, attempt, backend, send_and_wait
from responder.service.views import IncidentView

incidents_app = typer.Typer(help="Look at incidents and act on them.", no_args_is_help=True)

IncidentId = Annotated[str, typer.Argument(help="incident id or a unique prefix")]
Comment = Annotated[str | None, typer.Option()]
Expect = Annotated[
    str | None,
    typer.Option(
        "--expect",
        help="the ETag `incidents show --json` printed: refused if the incident changed since",
    ),
]


@incidents_app.command("list")
def incidents_list(
    status: Annotated[
        list[str] | None, typer.Option(help="open, acknowledged, resolved, ... (repeatable)")
    ] = None,
    severity: Annotated[list[str] | None, typer.Option(help="(repeatable)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    as_json: AsJson = False,
    api: Api = None,
) -> None:
    """List incidents, newest first."""
    source = backend(api)
    rows = attempt(
        lambda: source.incidents(status=status or [], severity=severity or [], limit=limit)
    )
    print_incident_list(out, rows, as_json=as_json)


@incidents_app.command("show")
def incidents_show(incident_id: IncidentId, as_json: AsJson = False, api: Api = None) -> None:
    """Show one incident with its evidence events, runs, comments and audit trail."""
    source = backend(api)
    print_incident(out, attempt(lambda: source.incident(incident_id)), as_json=as_json)


def _status_command(name: str, action: IncidentAction, status: str, doc: str) -> Any:
    def command(
        incident_id: IncidentId,
        by: By = "",
        comment: Comment = None,
        expect: Expect = None,
        wait: Wait = 10.0,
        api: Api = None,
    ) -> None:
        act(api, action, incident_id, {"comment": comment}, by, expect, wait, _status(status))

    command.__doc__ = doc
    command.__name__ = command.__qualname__ = name
    return incidents_app.command(action)(command)


incidents_ack = _status_command(
    "incidents_ack",
    "ack",
    "acknowledged",
    "Acknowledge an incident (through responder.commands, audited).",
)
incidents_resolve = _status_command(
    "incidents_resolve", "resolve", "resolved", "Resolve an incident."
)
incidents_false_positive = _status_command(
    "incidents_false_positive",
    "false-positive",
    "false_positive",
    "Mark a false positive: playbook steps with an `undo` are compensated, newest first.",
)


@incidents_app.command("assign")
def incidents_assign(
    incident_id: IncidentId,
    to: Annotated[str, typer.Option("--to", help="assignee")],
    by: By = "",
    expect: Expect = None,
    wait: Wait = 10.0,
    api: Api = None,
) -> None:
    """Assign an incident to someone."""
    act(
        api,
        "assign",
        incident_id,
        {"assignee": to},
        by,
        expect,
        wait,
        lambda row: row.assignee == to,
    )


@incidents_app.command("comment")
def incidents_comment(
    incident_id: IncidentId,
    text: Annotated[str, typer.Argument(help="the comment")],
    by: By = "",
    expect: Expect = None,
    wait: Wait = 10.0,
    api: Api = None,
) -> None:
    """Add a comment to an incident."""
    source = backend(api)
    before = len(attempt(lambda: source.incident(incident_id)).comments)
    act(
        api,
        "comment",
        incident_id,
        {"text": text},
        by,
        expect,
        wait,
        lambda row: len(row.comments) > before,
    )


@incidents_app.command("severity")
def incidents_severity(
    incident_id: IncidentId,
    severity: Annotated[str, typer.Argument(help="info, low, medium, high or critical")],
    by: By = "",
    comment: Comment = None,
    expect: Expect = None,
    wait: Wait = 10.0,
    api: Api = None,
) -> None:
    """Change an incident's severity."""
    act(
        api,
        "severity",
        incident_id,
        {"severity": severity, "comment": comment},
        by,
        expect,
        wait,
        lambda row: row.severity == severity,
    )


def _status(status: str) -> Callable[[IncidentView], bool]:
    return lambda row: row.status == status


def act(
    api: str | None,
    action: IncidentAction,
    incident_id: str,
    body: dict[str, Any],
    by: str,
    expected: str | None,
    wait: float,
    applied: Callable[[IncidentView], bool],
) -> None:
    """Send one incident command and wait until the worker has applied it."""
    source = backend(api)
    request = Request.of(action, incident_id, body, by, expected)
    send_and_wait(
        source,
        lambda: source.incident_action(request),
        "incident {target}",
        lambda target: applied(source.incident(target)),
        wait,
    )
