"""Reporting clocks on plain values: each category's deadlines, the rule that marks an incident
reportable, and the change that carries the category to the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from responder.correlation.replay import replay
from responder.correlation.rules import IncidentSpec, load_rule_file, load_rules
from responder.incidents import reporting as R
from responder.incidents.model import IncidentEdit
from responder.settings import ReportingCategory, ReportingClock
from responder.yamlfiles import YamlFileError

ROOT = Path(__file__).resolve().parents[2]
MARKED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("category", "after", "source"),
    [
        ("ai_act_serious_incident", timedelta(days=15), "EU AI Act Art. 73(2)"),
        ("ai_act_death", timedelta(days=10), "EU AI Act Art. 73(4)"),
        ("ai_act_widespread_infringement", timedelta(days=2), "EU AI Act Art. 73(3)"),
        (
            "ai_act_critical_infrastructure",
            timedelta(days=2),
            "EU AI Act Art. 73(3), Art. 3(49)(b)",
        ),
        ("gdpr_personal_data_breach", timedelta(hours=72), "GDPR Art. 33(1)"),
    ],
)
def test_each_default_category_has_its_deadline(
    category: str, after: timedelta, source: str
) -> None:
    """A default category's deadline runs from the moment the incident was marked."""
    now = MARKED + timedelta(hours=1)
    [deadline] = R.clocks(R.DEFAULT_CATEGORIES[category], MARKED, now)
    assert deadline.due == MARKED + after
    assert deadline.source == source
    assert deadline.remaining == after - timedelta(hours=1) and not deadline.overdue


def test_a_missed_deadline_is_overdue() -> None:
    """Past the due time the remaining time is negative and the deadline overdue."""
    table = R.categories({})
    clock = R.clock_json("gdpr_personal_data_breach", MARKED, MARKED + timedelta(hours=80), table)
    [deadline] = clock["deadlines"]
    assert deadline["due"] == "2026-11-28T09:00:00+00:00"
    assert deadline["overdue"] and deadline["remaining_s"] == -8 * 3600
    assert clock["title"] == "Personal data breach"
    assert R.remaining_text(timedelta(seconds=deadline["remaining_s"])) == "overdue by 8h 0m"
    assert R.remaining_text(timedelta(days=2, hours=3, minutes=5)) == "2d 3h left"


def test_configured_categories_add_to_and_replace_the_defaults() -> None:
    """RESPONDER_REPORTING__CATEGORIES adds a category or overrides a default's clocks."""
    nis2 = ReportingCategory(
        title="NIS2 significant incident",
        clocks=[
            ReportingClock(
                name="final report", after=timedelta(days=30), source="NIS2 Art. 23(4)(d)"
            ),
            ReportingClock(
                name="early warning", after=timedelta(hours=24), source="NIS2 Art. 23(4)(a)"
            ),
        ],
    )
    table = R.categories({"nis2_significant": nis2})
    assert set(R.DEFAULT_CATEGORIES) < set(table)
    names = [d.name for d in R.clocks(table["nis2_significant"], MARKED, MARKED)]
    assert names == ["early warning", "final report"]  # soonest first
    unknown = R.clock_json("nope", MARKED, MARKED, table)
    assert unknown["deadlines"] == [] and unknown["note"] == "category not configured"


def test_category_names_are_checked() -> None:
    """A category is a lower-case identifier, in edits as in rules."""
    assert IncidentEdit(reportable="ai_act_death").reportable == "ai_act_death"
    with pytest.raises(ValidationError):
        IncidentEdit(reportable="AI Act; DROP TABLE")


def test_a_privacy_breach_rule_is_reportable_by_default() -> None:
    """Kind privacy_breach starts the GDPR clock unless the rule names another category."""
    assert IncidentSpec(kind="privacy_breach").reportable == "gdpr_personal_data_breach"
    assert (
        IncidentSpec(kind="privacy_breach", reportable="ai_act_death").reportable == "ai_act_death"
    )
    assert IncidentSpec(kind="model_integrity").reportable is None


def test_shipped_rules_name_known_categories() -> None:
    """Every category a shipped rule uses has default deadlines; pii-exposed is one of them."""
    rules = load_rules(ROOT / "rules").rules
    used = {r.incident.reportable for r in rules.values()} - {None}
    assert used <= set(R.DEFAULT_CATEGORIES)
    assert rules["pii-exposed"].incident.reportable == "gdpr_personal_data_breach"


def test_a_bad_category_in_a_rule_names_file_and_line(tmp_path: Path) -> None:
    """`incident.reportable` is validated when the rule loads."""
    path = tmp_path / "r.yaml"
    path.write_text(
        "id: r\ntitle: R\nmatch: {type: x}\ngroup_by: [resource.id]\nwindow: 1h\n"
        "incident:\n  kind: x\n  reportable: Not A Category\n"
    )
    with pytest.raises(YamlFileError) as caught:
        load_rule_file(path)
    assert f"{path}:8: incident.reportable:" in str(caught.value)


def test_the_change_of_a_reportable_rule_carries_its_category() -> None:
    """The engine puts the rule's category on the incident change (the sink stores it)."""
    event = {
        "id": "dlp-1",
        "source": "dlp",
        "type": "privacy.pii_exposed",
        "time": "2026-11-25T09:00:00Z",
        "severity": "high",
        "title": "emails in a public bucket",
        "resource": {"kind": "dataset", "id": "s3://exports/customers.csv"},
        "attributes": {"records": 1200, "data_categories": ["email"]},
        "schema_version": "1",
    }
    result = replay([json.dumps(event)], load_rules(ROOT / "rules"))
    [incident] = result.incidents
    assert incident.identity["kind"] == "privacy_breach"
    assert incident.last_change.reportable == "gdpr_personal_data_breach"
    assert json.loads(incident.last_change.model_dump_json())["reportable"] == (
        "gdpr_personal_data_breach"
    )
