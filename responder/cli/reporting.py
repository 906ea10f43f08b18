"""Reporting clocks on the command line: `responder incidents reportable` marks an incident (through
`responder.commands`), `responder incidents deadlines` lists the clocks that run, and the
incident views show an incident's clocks (`clock_of`, `clock_lines`).

Registered in the incidents group by `cli/app.py`; the commands live here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from sqlmodel import Session, col, select

from responder import bootstrap
from responder.cli.console import out
from responder.cli.options import By, Wait, await_applied, default_user, fail
from responder.commands import Reportable
from responder.incidents import reporting as R
from responder.incidents.model import CLOSED
from responder.incidents.store import Incident, get_incident
from responder.service.views import IncidentView
from responder.settings import ReportingCategory


@cache
def _table() -> dict[str, ReportingCategory]:
    return R.categories(bootstrap.load_settings().reporting.categories)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def clock_from(
    category: str | None, since: datetime | str | None, now: datetime | None = None
) -> dict[str, Any] | None:
    """A reporting category and deadlines as JSON; None when there is no category."""
    if category is None or since is None:
        return None
    start = datetime.fromisoformat(since) if isinstance(since, str) else since
    return R.clock_json(category, _aware(start), now or datetime.now(UTC), _table())


def clock_of(row: Incident | IncidentView, now: datetime | None = None) -> dict[str, Any] | None:
    """The incident's reporting category and deadlines as JSON; None if it is not reportable."""
    return clock_from(row.reportable_category, row.reportable_since, now)


def clock_lines(row: Incident | IncidentView) -> list[str]:
    """Plain lines for the terminal view (print them with markup off)."""
    clock = clock_of(row)
    if clock is None:
        return []
    lines = [
        f"reportable: {clock['category']} ({clock['title'] or 'not configured'}) since {clock['since']}"
    ]
    for d in clock["deadlines"]:
        remaining = R.remaining_text(_seconds(d["remaining_s"]))
        lines.append(f"  {d['name']}: due {d['due']}, {remaining} ({d['source']})")
    return lines


def _seconds(value: int) -> timedelta:
    return timedelta(seconds=value)


def _row(table: Table, *cells: object) -> None:
    """Cells as plain text: recorded values are never read as Rich markup."""
    table.add_row(*(Text(str(c)) for c in cells))


def reportable(
    incident_id: Annotated[str, typer.Argument(help="incident id or a unique prefix")],
    category: Annotated[
        str, typer.Argument(help="a reporting category (see `deadlines --categories`)")
    ],
    by: By = "",
    comment: Annotated[str | None, typer.Option(help="why it is reportable")] = None,
    wait: Wait = 10.0,
) -> None:
    """Mark an incident reportable: the category's clocks start now (through responder.commands)."""
    table = _table()
    if category not in table:
        raise fail(f"unknown reporting category {category!r} (known: {', '.join(sorted(table))})")
    app = bootstrap.services()
    with Session(app.engine) as session:
        row = get_incident(session, incident_id)
        if row is None:
            raise fail(f"no incident {incident_id!r}")
        full = row.id
    app.send(
        Reportable(incident_id=full, category=category, by=by or default_user(), comment=comment)
    )
    out.print(
        f"incident {full[:8]}: command sent to {app.settings.kafka.topics.commands}",
        highlight=False,
    )

    def applied() -> bool:
        with Session(app.engine) as session:
            current = get_incident(session, full)
            return current is not None and current.reportable_category == category

    await_applied(applied, wait)


def deadlines(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    closed: Annotated[bool, typer.Option("--closed", help="closed incidents too")] = False,
    categories: Annotated[
        bool, typer.Option("--categories", help="list the reporting categories instead")
    ] = False,
) -> None:
    """Reportable incidents and their deadlines, soonest first."""
    if categories:
        listed = {name: c.model_dump(mode="json") for name, c in sorted(_table().items())}
        if as_json:
            out.print_json(json.dumps(listed))
            return
        table = Table("category", "title", "deadlines")
        for name, cat in sorted(_table().items()):
            clocks = "; ".join(f"{k.name}: {k.after} ({k.source})" for k in cat.clocks)
            _row(table, name, cat.title, clocks)
        out.print(table)
        return
    with Session(bootstrap.services().engine) as session:
        query = select(Incident).where(col(Incident.reportable_category).is_not(None))
        rows = [r for r in session.exec(query).all() if closed or r.status not in CLOSED]
    found = []
    for row in rows:
        clock = clock_of(row)
        if clock is not None:
            found.append({"incident_id": row.id, "title": row.title, "status": row.status, **clock})
    found.sort(key=lambda item: min((d["due"] for d in item["deadlines"]), default="~"))
    if as_json:
        out.print_json(json.dumps(found))
        return
    table = Table("incident", "status", "category", "deadline", "due", "left", "source")
    for item in found:
        for d in item["deadlines"] or [
            {"name": "-", "due": "-", "remaining_s": 0, "source": "not configured"}
        ]:
            left = R.remaining_text(_seconds(d["remaining_s"])) if d["due"] != "-" else "-"
            _row(
                table,
                item["incident_id"][:8],
                item["status"],
                item["category"],
                d["name"],
                d["due"],
                left,
                d["source"],
            )
    out.print(table)
