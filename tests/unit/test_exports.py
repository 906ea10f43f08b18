"""Exports on plain values: OCSF Incident Findings that pydantic-ocsf accepts, and regulator
reports (serious incident, personal data breach) as JSON and escaped Markdown."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ocsf.v1_7_0.events import IncidentFinding

from responder.evidence import ocsf, report
from responder.evidence.collect import IncidentRecord

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def event(n: int, **attributes: Any) -> dict[str, Any]:
    return {
        "id": f"e{n}",
        "source": "dlp-scanner",
        "type": "privacy.pii_exposed",
        "time": f"2026-11-25T09:0{n}:00Z",
        "severity": "high",
        "title": f"PII in bucket export [{n}](http://evil.example)",
        "resource": {"kind": "dataset", "id": "ds-customers"},
        "attributes": attributes,
    }


def incident(**fields: Any) -> dict[str, Any]:
    return {
        "id": "inc-42",
        "rule": "pii-exposed",
        "kind": "model_integrity",
        "title": "Integrity of model fraud at risk <script>alert(1)</script>",
        "severity": "critical",
        "status": "open",
        "group": {"resource.id": "ds-customers"},
        "first_seen": "2026-11-25T09:01:00Z",
        "last_seen": "2026-11-25T09:02:00Z",
        "event_count": 2,
        "assignee": "alice",
        "comments": [{"at": "2026-11-25T10:00:00Z", "by": "analyst:alice", "text": "confirmed"}],
        "version": 2,
        "created_at": "2026-11-25T09:01:05Z",
        "updated_at": "2026-11-25T09:02:05Z",
        **fields,
    }


RUNS = [
    {
        "id": "run-1",
        "playbook_id": "rollback",
        "mode": "automatic",
        "status": "completed",
        "steps": [
            {"step_id": "approve", "action": "approval.request", "status": "completed"},
            {
                "step_id": "evidence",
                "action": "evidence.snapshot",
                "status": "completed",
                "finished_at": "2026-11-25T09:03:00Z",
                "output": {"manifest_sha256": "ab" * 32},
            },
            {
                "step_id": "rollback",
                "action": "mlflow.rollback_model",
                "status": "completed",
                "finished_at": "2026-11-25T09:04:00Z",
                "decided_by": "alice",
                "output": {"from_version": "3", "to_version": "1"},
            },
            {"step_id": "tell", "action": "slack.notify", "status": "skipped"},
        ],
    }
]
SNAPSHOT = {
    "seq": 7,
    "at": "2026-11-25T09:03:00+00:00",
    "bundle": "inc-42/20261125T090300Z-abcd",
    "manifest_sha256": "ab" * 32,
    "location": "/var/lib/responder/evidence/inc-42/20261125T090300Z-abcd",
}
AUDIT = [
    {
        "seq": 1,
        "at": "2026-11-25T09:01:05+00:00",
        "actor": "rule:pii-exposed",
        "action": "incident.opened",
        "subject": "inc-42",
        "data": {},
    },
    {
        "seq": 7,
        "at": "2026-11-25T09:03:00+00:00",
        "actor": "playbook-run:run-1",
        "action": "evidence.snapshot",
        "subject": "inc-42",
        "data": {},
    },
]


def record(kind: str = "model_integrity", **fields: Any) -> IncidentRecord:
    events = [
        event(1, records=1200, data_subjects=300, data_categories=["email", "iban"]),
        event(
            2,
            records=800,
            data_subjects="many",
            data_categories="email",
            likely_consequences="phishing of customers",
        ),
    ]
    return IncidentRecord(
        incident=incident(kind=kind, **fields), events=events, runs=RUNS, audit=AUDIT
    )


# --- OCSF ---------------------------------------------------------------------------------------


def test_an_incident_is_a_valid_ocsf_incident_finding() -> None:
    """Class 2005 in the Findings category, events as findings, validated by pydantic-ocsf."""
    finding = ocsf.incident_finding(record(), snapshots=[SNAPSHOT], vendor="Example AI GmbH")
    data = ocsf.finding_json(finding)
    again = IncidentFinding.model_validate(json.loads(json.dumps(data)))
    assert again.class_uid == 2005 and data["category_uid"] == 2 and data["type_uid"] == 200502
    assert data["severity_id"] == 5 and data["status_id"] == 1 and data["activity_id"] == 2
    assert [f["uid"] for f in data["finding_info_list"]] == ["dlp-scanner:e1", "dlp-scanner:e2"]
    assert data["finding_info_list"][0]["analytic"]["name"] == "pii-exposed"
    assert data["finding_info_list"][0]["created_time"] == 1795597260000
    [bundle] = data["enrichments"]
    assert bundle["name"] == "evidence_bundle" and bundle["value"] == "ab" * 32
    assert data["metadata"]["product"]["vendor_name"] == "Example AI GmbH"
    assert data["metadata"]["version"] == "1.7.0" and data["metadata"]["uid"] == "inc-42"
    assert data["unmapped"]["responder"]["runs"][0]["playbook"] == "rollback"
    assert data["assignee"]["name"] == "alice"


def test_a_false_positive_closes_the_finding() -> None:
    """A false positive is a closed finding with the false-positive verdict."""
    data = ocsf.finding_json(ocsf.incident_finding(record(status="false_positive")))
    assert (data["activity_id"], data["status_id"], data["verdict_id"]) == (3, 5, 1)
    assert "enrichments" not in data


def test_a_privacy_breach_is_a_suspected_breach() -> None:
    """privacy_breach incidents set is_suspected_breach."""
    data = ocsf.finding_json(ocsf.incident_finding(record(kind="privacy_breach")))
    assert data["is_suspected_breach"] is True


# --- reports ------------------------------------------------------------------------------------

SETTINGS = {
    "provider": "Example AI GmbH",
    "provider_contact": "security@example.com",
    "system": "fraud-scoring",
    "system_version": "4.2",
    "system_registration": "EU-DB-0042",
    "dpo_contact": "dpo@example.com",
}
ASSETS = {
    "source": "events",
    "models": [{"name": "fraud", "implicated_versions": ["3"], "aliases": {"champion": "1"}}],
}
EVIDENCE = [{**SNAPSHOT, "ok": True, "problems": []}]


def make_report(kind: str = "model_integrity") -> dict[str, Any]:
    return report.incident_report(
        record(kind=kind),
        reporting_settings=SETTINGS,
        assets=ASSETS,
        evidence=EVIDENCE,
        reporting={
            "category": "ai_act_serious_incident",
            "since": "2026-11-25T09:01:05+00:00",
            "deadlines": [],
        },
        generated_at=NOW,
    )


def test_a_serious_incident_report_holds_what_a_regulator_asks() -> None:
    """Provider and system, what and when, causal link, assets, measures, timeline, evidence."""
    made = make_report()
    assert made["report"] == "serious_incident" and "personal_data_breach" not in made
    assert made["provider"] == {"name": "Example AI GmbH", "contact": "security@example.com"}
    assert made["system"]["registration"] == "EU-DB-0042"
    assert made["incident"]["detected_at"] == "2026-11-25T09:01:05Z"
    assert made["causal_link"]["correlated_events"] == {"privacy.pii_exposed": 2}
    assert made["causal_link"]["affected_assets"] == ["fraud"]
    assert made["causal_link"]["analyst_assessment"][0]["text"] == "confirmed"
    assert [(m["step"], m["status"]) for m in made["corrective_measures"]] == [
        ("evidence", "completed"),
        ("rollback", "completed"),
    ]
    times = [datetime.fromisoformat(t["at"].replace("Z", "+00:00")) for t in made["timeline"]]
    assert times == sorted(times) and len(times) == 4  # 2 events, 2 audit records
    assert made["timeline"][0]["what"] == "event"
    assert made["evidence"][0]["manifest_sha256"] == "ab" * 32
    json.dumps(made)  # JSON-ready


def test_a_privacy_breach_report_adds_the_gdpr_details() -> None:
    """Categories, approximate numbers of people and records, DPO, consequences, measures."""
    details = make_report("privacy_breach")["personal_data_breach"]
    assert details["data_categories"] == ["email", "iban"]
    assert details["records"] == {
        "approximate": 2000,
        "method": "sum over the 2 events that report it",
    }
    assert details["data_subjects"] == {
        "approximate": 300,
        "method": "sum over the 1 events that report it",
    }
    assert details["likely_consequences"] == ["phishing of customers"]
    assert details["dpo_contact"] == "dpo@example.com"
    assert [m["step"] for m in details["measures_taken"]] == ["evidence", "rollback"]


def test_a_report_on_part_of_the_events_says_so() -> None:
    """An incident keeps its first events as evidence: a report computed from 2 of 5,000 says
    so in what happened and in the breach figures; one that saw every event says nothing."""
    whole = make_report("privacy_breach")
    assert "kept as evidence" not in whole["what_happened"]
    assert whole["causal_link"]["events_kept"] == 2
    part = report.incident_report(
        record(kind="privacy_breach", event_count=5000),
        reporting_settings=SETTINGS,
        assets=ASSETS,
        evidence=EVIDENCE,
        reporting=None,
        generated_at=NOW,
    )
    assert part["what_happened"].endswith(
        "The figures below are computed from the first 2 events, those kept as evidence, "
        "not from all 5000."
    )
    assert part["personal_data_breach"]["records"] == {
        "approximate": 2000,
        "method": "sum over the 2 events that report it (among the first 2 of 5000 events, "
        "those kept as evidence)",
    }
    assert "kept as evidence" in report.markdown(part)


def test_the_markdown_report_escapes_recorded_text() -> None:
    """Titles from events cannot become links or HTML in the Markdown."""
    text = report.markdown(make_report("privacy_breach"))
    assert text.startswith("# Personal data breach notification: ")
    assert "<script>" not in text and "\\<script\\>" in text
    assert "](http" not in text and "\\[1\\]\\(http://evil.example\\)" in text
    assert "## Personal data breach (GDPR Art. 33(3))" in text
    assert "- **Records (approximate):** 2000" in text
    assert "ab" * 32 in text and "verifies" in text
    assert "ai\\_act\\_serious\\_incident" in text
