"""`responder evidence ...`: take, list and verify an incident's evidence bundles."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text
from sqlmodel import Session

from responder import bootstrap
from responder.cli.console import out
from responder.cli.options import By, default_user, fail
from responder.evidence import bundle as B
from responder.evidence.collect import snapshots
from responder.evidence.store import BundleMissing
from responder.evidence.verify import verify_incident
from responder.incidents.store import get_incident

evidence_app = typer.Typer(
    help="Evidence bundles: what an incident was before responder acted.", no_args_is_help=True
)

IncidentId = Annotated[str, typer.Argument(help="incident id or a unique prefix")]
AsJson = Annotated[bool, typer.Option("--json")]
BundleOption = Annotated[str | None, typer.Option("--bundle", help="only this bundle")]


def _incident_id(session: Session, incident_id: str) -> str:
    row = get_incident(session, incident_id)
    if row is None:
        raise fail(f"no incident {incident_id!r}")
    return row.id


@evidence_app.command("snapshot")
def evidence_snapshot(
    incident_id: IncidentId,
    by: By = "",
    reason: Annotated[str | None, typer.Option(help="recorded in the manifest")] = None,
) -> None:
    """Take an evidence bundle of the incident now (what `evidence.snapshot` steps do)."""
    app = bootstrap.services()
    with Session(app.engine) as session:
        full = _incident_id(session, incident_id)
    port = bootstrap.ports(app.settings, app.engine).evidence
    assert port is not None
    done = asyncio.run(port.snapshot(full, actor=f"analyst:{by or default_user()}", reason=reason))
    out.print(
        f"bundle {done['bundle']}  manifest sha256 {done['manifest_sha256']}  "
        f"audit record {done['audit_seq']}\n{done['location']}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@evidence_app.command("show")
def evidence_show(
    incident_id: IncidentId, bundle: BundleOption = None, as_json: AsJson = False
) -> None:
    """List the incident's bundles as the audit chain records them, with the newest (or the
    chosen) bundle's manifest."""
    app = bootstrap.services()
    with Session(app.engine) as session:
        full = _incident_id(session, incident_id)
        records = [
            r for r in snapshots(session, full) if bundle is None or r.data.get("bundle") == bundle
        ]
    if not records:
        raise fail(f"no evidence bundle of incident {full} is recorded")
    chosen = records[-1]
    manifest: object = None
    try:
        files = bootstrap.evidence_store(app.settings).get(B.checked_id(str(chosen.data["bundle"])))
        manifest = json.loads(files.get(B.MANIFEST, b"null"))
    except (BundleMissing, B.BadBundleId, ValueError) as exc:
        manifest = {"error": str(exc)}
    listed = [
        {"seq": r.seq, "at": r.entry().at.isoformat(), "actor": r.actor, **r.data} for r in records
    ]
    if as_json:
        out.print_json(json.dumps({"incident_id": full, "bundles": listed, "manifest": manifest}))
        return
    table = Table(
        "#", "at", "by", "bundle", "manifest sha256", "where", title=f"evidence of {full}"
    )
    for r in listed:
        cells = (r["seq"], r["at"], r["actor"], r["bundle"], r["manifest_sha256"], r["location"])
        table.add_row(*(Text(str(c)) for c in cells))  # recorded values are not Rich markup
    out.print(table)
    out.print(f"manifest of {chosen.data['bundle']}:", markup=False, highlight=False)
    out.print_json(json.dumps(manifest))


@evidence_app.command("verify")
def evidence_verify(
    incident_id: IncidentId, bundle: BundleOption = None, as_json: AsJson = False
) -> None:
    """Check every bundle of the incident against its manifest hash in the audit chain; exit 1
    when one does not verify."""
    app = bootstrap.services()
    store = bootstrap.evidence_store(app.settings)
    with Session(app.engine) as session:
        full = _incident_id(session, incident_id)
        checked = verify_incident(session, store, full, bundle=bundle)
    if not checked:
        raise fail(f"no evidence bundle of incident {full} is recorded")
    if as_json:
        out.print_json(json.dumps([c.to_json() for c in checked]))
    else:
        for c in checked:
            verdict = "OK" if c.ok else "FAILED"
            out.print(
                f"{verdict}: bundle {c.bundle} (audit record {c.seq}, manifest {c.manifest_sha256})",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            for problem in c.problems:
                out.print(f"  - {problem}", highlight=False, markup=False, soft_wrap=True)
    if not all(c.ok for c in checked):
        raise typer.Exit(1)
