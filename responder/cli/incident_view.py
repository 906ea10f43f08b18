"""Terminal views of incidents and the audit trail (CLI output only, no business logic).

Everything shown comes from events or the database, so it is attacker-controlled: values go
into tables and lines as `Text` (`responder.security.terminal`), never as markup, and JSON is
printed ASCII-only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from responder.cli.blast_view import print_blast_radius
from responder.cli.reporting import clock_lines, clock_of
from responder.incidents.store import Incident
from responder.security.terminal import print_json, text
from responder.service.views import IncidentDetail, IncidentView

SEVERITY_STYLE = {
    "critical": "bold red",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}
SEP = "  ·  "


def incident_json(row: IncidentView) -> dict[str, Any]:
    return IncidentView.model_validate(row).model_dump(
        mode="json", exclude={"events", "timeline", "runs"}
    )


def incidents_table(rows: Sequence[Incident | IncidentView]) -> Table:
    table = Table("id", "first seen", "severity", "status", "kind", "events", "title")
    for row in rows:
        table.add_row(
            text(row.id[:8]),
            text(row.first_seen.strftime("%Y-%m-%d %H:%M:%S")),
            text(row.severity, SEVERITY_STYLE.get(row.severity, "")),
            text(row.status),
            text(row.kind),
            text(row.event_count),
            text(row.title),
        )
    return table


def print_incident_list(console: Console, rows: Sequence[IncidentView], *, as_json: bool) -> None:
    if as_json:
        for row in rows:
            print_json(console, incident_json(row))
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
        data["blast_radius"] = detail.blast_radius
        print_json(console, data)
        return
    console.print(text(row.title, "bold"))
    console.print(
        Text.assemble(
            "id ",
            text(row.id),
            SEP,
            text(row.kind),
            SEP,
            "severity ",
            text(row.severity),
            SEP,
            "status ",
            text(row.status),
            SEP,
            "rule ",
            text(row.rule),
            SEP,
            "group ",
            text(json.dumps(row.group, ensure_ascii=False)),
        )
    )
    console.print(
        f"first seen {row.first_seen.isoformat()}  ·  last seen {row.last_seen.isoformat()}"
    )
    for line in clock_lines(row):
        console.print(line, highlight=False, markup=False)
    evidence = Table("time", "source", "id", "type", "severity", "title", title="evidence")
    for e in events:
        evidence.add_row(
            text(e.time.isoformat()),
            text(e.source),
            text(e.event_id),
            text(e.type),
            text(e.severity),
            text(e.body.get("title", "") if isinstance(e.body, dict) else ""),
        )
    console.print(evidence)
    print_blast_radius(console, detail.blast_radius)
    if row.assignee or row.comments:
        console.print(Text.assemble("assignee ", text(row.assignee or "-")))
        for note in row.comments:
            console.print(
                Text.assemble("  ", text(note.at), " ", text(note.by), ": ", text(note.text))
            )
    if runs:
        table = Table("run", "playbook", "mode", "status", "note", title="playbook runs")
        for r in runs:
            table.add_row(
                text(r.id[:8]),
                text(r.playbook_id),
                text(r.mode),
                text(r.status),
                text(r.error or ""),
            )
        console.print(table)
    trail = Table("#", "at", "actor", "action", "hash", title="audit trail")
    for a in audit:
        trail.add_row(
            text(a.seq), text(a.at.isoformat()), text(a.actor), text(a.action), text(a.hash[:16])
        )
    console.print(trail)
