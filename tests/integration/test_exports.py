"""`responder incidents export` on SQLite and PostgreSQL: OCSF JSON Lines that pydantic-ocsf
validates, and reports built from the stored incident, its runs and its evidence bundles."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from ocsf.v1_7_0.events import IncidentFinding
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from responder.cli import app
from tests.support.runner_kit import NOTHING, Kit, change, event

pytestmark = pytest.mark.integration


def invoke(env: dict[str, str], *args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


@pytest.fixture
def stored(db: Engine, db_url: str, tmp_path: Path) -> dict[str, str]:
    """Two incidents, the first with an evidence bundle; the CLI's environment."""
    kit = Kit(db=db, directory=tmp_path / "playbooks")
    kit.playbook("nothing", NOTHING)
    model = {"kind": "model", "id": "m", "name": "fraud-detector", "version": "3"}
    kit.apply(
        change(
            kind="model_integrity",
            events=[event("u1", 1, type="model.unsafe_file", resource=model)],
        ),
        change(incident_id="inc-2"),
    )
    asyncio.run(kit.snapshotter().snapshot("inc-1", actor="analyst:alice"))
    return {
        "RESPONDER_DATABASE__URL": db_url,
        "RESPONDER_EVIDENCE__DIR": str(tmp_path / "evidence"),
        "RESPONDER_REPORTING__PROVIDER": "Example AI GmbH",
        "RESPONDER_REPORTING__SYSTEM": "fraud-scoring",
    }


def test_ocsf_export_of_every_incident_is_jsonl_that_validates(stored: dict[str, str]) -> None:
    """One OCSF Incident Finding per line; each validates; the bundle is an enrichment."""
    result = invoke(stored, "incidents", "export", "--all", "--format", "ocsf")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    findings = [IncidentFinding.model_validate(json.loads(line)) for line in lines]
    assert sorted(str(f.metadata.uid) for f in findings) == ["inc-1", "inc-2"]
    by_id: dict[str, Any] = {
        json.loads(line)["metadata"]["uid"]: json.loads(line) for line in lines
    }
    assert by_id["inc-1"]["enrichments"][0]["name"] == "evidence_bundle"
    assert "enrichments" not in by_id["inc-2"]
    assert by_id["inc-1"]["metadata"]["product"]["vendor_name"] == "Example AI GmbH"


def test_report_export_uses_the_verified_bundle(stored: dict[str, str], tmp_path: Path) -> None:
    """The report's assets come from the bundle, whose hash verifies; Markdown goes to a file."""
    result = invoke(stored, "incidents", "export", "inc-1", "--format", "report")
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert made["report"] == "serious_incident"
    assert made["system"]["name"] == "fraud-scoring"
    assert made["affected_assets"]["model_registry"] == "configured"
    assert made["affected_assets"]["models"][0]["name"] == "fraud-detector"
    [bundle] = made["evidence"]
    assert bundle["ok"] and len(bundle["manifest_sha256"]) == 64
    assert [t["detail"] for t in made["timeline"] if t["what"] == "audit"] == [
        "incident.opened",
        "evidence.snapshot",
    ]

    target = tmp_path / "report.md"
    written = invoke(
        stored, "incidents", "export", "inc-1", "--format", "report", "--markdown", "--out", target
    )
    assert written.exit_code == 0, written.output
    assert target.read_text().startswith("# Serious incident report: Leaked key")
    again = invoke(stored, "incidents", "export", "inc-1", "--format", "report", "--out", target)
    assert again.exit_code == 1 and "exists" in again.output


def test_export_of_an_unknown_incident_fails(stored: dict[str, str]) -> None:
    """An id that names no incident is an error, not an empty export."""
    result = invoke(stored, "incidents", "export", "nope", "--format", "ocsf")
    assert result.exit_code == 1 and "no incident 'nope'" in result.output
