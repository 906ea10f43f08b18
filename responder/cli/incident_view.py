"""Terminal views of incidents and the audit trail (CLI output only, no business logic)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from responder.cli.reporting import clock_lines, clock_of
from responder.incidents.store import Incident
from responder.service.views import IncidentDetail, IncidentView

SEVERITY_STYLE = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


def incident_json(row: IncidentView) -> dict[str, Any]:
    return IncidentView.model_validate(row).model_dump(
        mode="json", exclude={"events", "timeline", "runs"}
    )


def incidents_table(rows: Sequence[Incident | IncidentView]) -> Table:
    table = Table("id", "first seen", "severity", "status", "kind", "events", "title")
    for row in rows:
        table.add_row(
            row.id[:8],
            row.first_seen.strftime("%Y-%m-%d %H:%M:%S"),
            f"[{SEVERITY_STYLE.get(row.severity, '')}]{row.severity}[/]",
            row.status,
            row.kind,
            str(row.event_count),
            row.title,
        )
    return table


def print_incident_list(console: Console, rows: Sequence[IncidentView], *, as_json: bool) -> None:
    if as_json:
        for row in rows:
            console.print_json(json.dumps(incident_json(row)))
        return
    console.print(incidents_table(rows))


def print_incident(console: Console, detail: IncidentDetail, *, as_json: bool) -> None:
    row, events, audit, runs = detail, detail.events, detail.timeline, detail.runs
    if as_json:
        data = incident_json(row)
        data["evidence"] = [e.body for e in events]
        data["audit"] = [a.model_dump(mode="json") for a in audit]
        data["reporting"] = clock_of(row)
        data["runs"] = [
            {"id": r.id, "playbook": r.playbook_id, "mode": r.mode, "status": r.status}
            for r in runs
        ]
        console.print_json(json.dumps(data))
        return
    console.print(f"[bold]{row.title}[/bold]")
    console.print(
        f"id {row.id}  ·  {row.kind}  ·  severity {row.severity}  ·  status {row.status}  ·  "
        f"rule {row.rule}  ·  group {json.dumps(row.group)}",
        highlight=False,
    )
    console.print(
        f"first seen {row.first_seen.isoformat()}  ·  last seen {row.last_seen.isoformat()}"
    )
    for line in clock_lines(row):
        console.print(line, highlight=False, markup=False)
    evidence = Table("time", "source", "id", "type", "severity", "title", title="evidence")
    for e in events:
        evidence.add_row(
            e.time.isoformat(), e.source, e.event_id, e.type, e.severity, e.body["title"]
        )
    console.print(evidence)
    if row.assignee or row.comments:
        console.print(f"assignee {row.assignee or '-'}", highlight=False)
        for note in row.comments:
            console.print(f"  {note.at} {note.by}: {note.text}", highlight=False)
    if runs:
        table = Table("run", "playbook", "mode", "status", "note", title="playbook runs")
        for r in runs:
            table.add_row(r.id[:8], r.playbook_id, r.mode, r.status, r.error or "")
        console.print(table)
    trail = Table("#", "at", "actor", "action", "hash", title="audit trail")
    for a in audit:
        trail.add_row(str(a.seq), a.at.isoformat(), a.actor, a.action, a.hash[:16])
    console.print(trail)
