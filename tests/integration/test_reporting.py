"""Reporting clocks in SQL, on SQLite and PostgreSQL: marked by a rule's change, a playbook step
or an analyst's command, shown by `incidents show` and `incidents deadlines`, and migrated."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect
from sqlmodel import Session
from typer.testing import CliRunner, Result

from responder.cli import app
from responder.commands import Reportable
from responder.incidents.model import IncidentChange
from responder.incidents.store import get_incident
from responder.storage.database import alembic_config, upgrade
from tests.support.runner_kit import NOTHING, Kit, change

pytestmark = pytest.mark.integration

MARK = """
id: mark
title: A model incident is a serious incident
on: {kind: model_integrity}
steps:
  - id: mark
    action: incident.update
    with: {reportable: ai_act_serious_incident, comment: "serious: the model served customers"}
"""


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def kit_for(db: Engine, tmp_path: Path, playbook: str = NOTHING) -> Kit:
    kit = Kit(db=db, directory=tmp_path / "playbooks")
    kit.playbook("p", playbook)
    return kit


def reportable_change(version: int = 1) -> IncidentChange:
    return change(version, kind="privacy_breach").model_copy(
        update={"reportable": "gdpr_personal_data_breach"}
    )


def test_a_rule_marks_the_incident_when_it_opens(db: Engine, tmp_path: Path) -> None:
    """The change carries the rule's category; the clock starts once, at the first change."""
    kit = kit_for(db, tmp_path)
    before = datetime.now(UTC)
    kit.apply(reportable_change(1))
    kit.apply(reportable_change(2))
    with Session(db) as session:
        row = get_incident(session, "inc-1")
        assert row is not None and row.reportable_category == "gdpr_personal_data_breach"
        assert row.reportable_since is not None
        since = row.reportable_since.replace(tzinfo=row.reportable_since.tzinfo or UTC)
    assert before - timedelta(seconds=1) <= since <= datetime.now(UTC)
    [marked] = [r for r in kit.audit() if r.action == "incident.reportable"]
    assert marked.actor == "rule:leaked-key-then-used"
    assert (
        marked.data["category"] == "gdpr_personal_data_breach" and marked.data["previous"] is None
    )
    assert kit.chain_ok()


async def test_a_playbook_step_marks_the_incident(db: Engine, tmp_path: Path) -> None:
    """`incident.update` with `reportable` starts the category's clock."""
    kit = kit_for(db, tmp_path, MARK)
    [rid] = kit.apply(change(kind="model_integrity"))
    await kit.drive()
    assert kit.run(rid).status == "completed"
    assert kit.steps(rid)["mark"].output["reportable"] == "ai_act_serious_incident"
    [marked] = [r for r in kit.audit() if r.action == "incident.reportable"]
    assert marked.actor == f"playbook-run:{rid}"


def test_an_analyst_command_changes_the_category_not_the_start(db: Engine, tmp_path: Path) -> None:
    """A later category replaces the first; the clocks keep running from the first marking."""
    kit = kit_for(db, tmp_path)
    kit.apply(change())
    kit.command(Reportable(incident_id="inc-1", category="ai_act_serious_incident", by="alice"))
    with Session(db) as session:
        first = get_incident(session, "inc-1")
        assert first is not None
        since = first.reportable_since
    done = kit.command(Reportable(incident_id="inc-1", category="ai_act_death", by="bob"))
    assert done == {"incident_id": "inc-1", "reportable": "ai_act_death"}
    with Session(db) as session:
        row = get_incident(session, "inc-1")
        assert row is not None and row.reportable_category == "ai_act_death"
        assert row.reportable_since == since
    changes = [r.data for r in kit.audit() if r.action == "incident.reportable"]
    assert [(c["previous"], c["category"]) for c in changes] == [
        (None, "ai_act_serious_incident"),
        ("ai_act_serious_incident", "ai_act_death"),
    ]
    assert changes[0]["since"] == changes[1]["since"]


def test_show_and_deadlines_print_the_clocks(db: Engine, db_url: str, tmp_path: Path) -> None:
    """`incidents show` and `incidents deadlines` give the due time and its legal source."""
    kit = kit_for(db, tmp_path)
    kit.apply(reportable_change(1))
    env = {"RESPONDER_DATABASE__URL": db_url}

    shown = invoke(env, "incidents", "show", "inc-1", "--json")
    assert shown.exit_code == 0, shown.output
    clock = json.loads(shown.stdout)["reporting"]
    assert clock["category"] == "gdpr_personal_data_breach"
    [deadline] = clock["deadlines"]
    due = datetime.fromisoformat(deadline["due"]) - datetime.fromisoformat(clock["since"])
    assert due == timedelta(hours=72) and deadline["source"] == "GDPR Art. 33(1)"

    text = invoke(env, "incidents", "show", "inc-1")
    assert text.exit_code == 0, text.output
    assert "reportable: gdpr_personal_data_breach (Personal data breach) since" in text.stdout
    assert (
        "notify the supervisory authority: due" in text.stdout and "GDPR Art. 33(1)" in text.stdout
    )

    listed = invoke(env, "incidents", "deadlines", "--json")
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.stdout)
    assert entry["incident_id"] == "inc-1" and entry["deadlines"][0]["overdue"] is False

    report = invoke(env, "incidents", "export", "inc-1", "--format", "report")
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["reporting"]["category"] == "gdpr_personal_data_breach"

    categories = invoke(env, "incidents", "deadlines", "--categories", "--json")
    assert "ai_act_death" in json.loads(categories.stdout)


def test_the_cli_refuses_an_unknown_category(db_url: str) -> None:
    """`incidents reportable` names the known categories when given another."""
    result = invoke({"RESPONDER_DATABASE__URL": db_url}, "incidents", "reportable", "inc-1", "nis9")
    assert result.exit_code == 1
    assert "unknown reporting category 'nis9'" in result.output
    assert "gdpr_personal_data_breach" in result.output


def test_the_migration_goes_down_and_up(db: Engine) -> None:
    """0006 adds the two columns and removes them again."""
    config = alembic_config(db)
    command.downgrade(config, "0005")
    assert "reportable_category" not in {c["name"] for c in inspect(db).get_columns("incidents")}
    upgrade(db)
    columns = {c["name"] for c in inspect(db).get_columns("incidents")}
    assert {"reportable_category", "reportable_since"} <= columns
