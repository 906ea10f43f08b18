"""`responder incidents export`: incidents as OCSF Incident Findings or as regulator reports.

Registered in the incidents group by `cli/app.py`; the command and its I/O live here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from sqlmodel import Session

from responder import bootstrap
from responder.cli.console import err
from responder.cli.options import fail
from responder.cli.reporting import clock_from
from responder.evidence import report
from responder.evidence.assets import EventAssets
from responder.evidence.collect import IncidentRecord, incident_record, snapshots
from responder.evidence.store import EvidenceStore
from responder.evidence.verify import newest_assets, verify_incident
from responder.incidents.store import get_incident, list_incidents
from responder.settings import Settings


class Format(StrEnum):
    ocsf = "ocsf"
    report = "report"


def _events_assets(record: IncidentRecord) -> dict[str, Any]:
    refs = EventAssets().affected_models(record.incident, record.events)
    return {
        "source": "events (no evidence bundle verifies)",
        "models": [{"name": r.name, "implicated_versions": list(r.versions)} for r in refs],
    }


def _full_id(session: Session, given: str) -> str:
    row = get_incident(session, given)
    if row is None:
        raise fail(f"no incident {given!r}")
    return row.id


def _clock(record: IncidentRecord) -> dict[str, Any] | None:
    inc = record.incident
    return clock_from(inc.get("reportable_category"), inc.get("reportable_since"))


def _ocsf_line(session: Session, incident_id: str, vendor: str | None) -> str:
    # imported here: building pydantic-ocsf's models takes ~0.2 s, which every other command
    # (and every worker) would pay at start
    from responder.evidence import ocsf

    record = incident_record(session, incident_id)
    taken = [
        {"seq": r.seq, "at": r.entry().at.isoformat(), **r.data}
        for r in snapshots(session, record.id)
    ]
    finding = ocsf.incident_finding(
        record, snapshots=taken, reporting=_clock(record), vendor=vendor
    )
    return json.dumps(ocsf.finding_json(finding), ensure_ascii=False)


def _report(
    session: Session, store: EvidenceStore, incident_id: str, settings: Settings
) -> dict[str, Any]:
    record = incident_record(session, incident_id, with_audit=True)
    checked = verify_incident(session, store, record.id)
    assets = newest_assets(store, checked) or _events_assets(record)
    return report.incident_report(
        record,
        reporting_settings=settings.reporting.model_dump(mode="json", exclude={"categories"}),
        assets=assets,
        evidence=[c.to_json() for c in checked],
        reporting=_clock(record),
        generated_at=datetime.now(UTC),
    )


@contextmanager
def _target(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with path.open("x", encoding="utf-8") as handle:  # never overwrite an export
        yield handle


def export(
    incident_ids: Annotated[
        list[str] | None, typer.Argument(help="incident ids or unique prefixes")
    ] = None,
    format: Annotated[
        Format,
        typer.Option(
            "--format",
            help="ocsf: OCSF 1.7.0 Incident Finding (class 2005), one JSON object per line; "
            "report: a serious-incident report (a personal data breach notification for "
            "privacy_breach incidents), JSON, or Markdown with --markdown",
        ),
    ] = Format.ocsf,
    markdown: Annotated[bool, typer.Option("--markdown", help="the report as Markdown")] = False,
    every: Annotated[
        bool, typer.Option("--all", help="every incident (newest first; see --status, --limit)")
    ] = False,
    status: Annotated[str | None, typer.Option(help="with --all: only this status")] = None,
    limit: Annotated[int, typer.Option(min=1, help="with --all: at most this many")] = 1000,
    output: Annotated[
        Path | None, typer.Option("--out", help="write to this new file (default: stdout)")
    ] = None,
) -> None:
    """Export incidents: OCSF findings as JSON Lines, or regulator-facing reports."""
    if markdown and format != Format.report:
        raise fail("--markdown goes with --format report")
    app = bootstrap.services()
    store = bootstrap.evidence_store(app.settings)
    with Session(app.engine) as session:
        ids = [_full_id(session, given) for given in incident_ids or []]
        if every:
            ids += [r.id for r in list_incidents(session, status=status, limit=limit)]
        if not ids:
            raise fail("name incidents, or --all")

        def render(n: int, incident_id: str) -> str:
            if format == Format.ocsf:
                return _ocsf_line(session, incident_id, app.settings.reporting.provider) + "\n"
            made = _report(session, store, incident_id, app.settings)
            if markdown:
                return ("\n---\n\n" if n else "") + report.markdown(made)
            return json.dumps(made, ensure_ascii=False) + "\n"

        try:
            with _target(output) as target:
                for n, incident_id in enumerate(ids):
                    target.write(render(n, incident_id))
        except FileExistsError:
            raise fail(f"{output} exists: not overwritten") from None
    if output is not None:
        err.print(f"{len(ids)} incidents exported to {output} ({format.value})", highlight=False)
