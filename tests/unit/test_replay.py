"""Offline replay of the sample scenario against the shipped rules."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from responder.correlation.replay import ReplayResult, replay
from responder.correlation.rules import RuleSet, load_rules
from tests.support.contract import replay_keys

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "responder" / "samples" / "scenario.jsonl"
RULES = load_rules(ROOT / "rules")
LEAKED_KEY = "AKIAEXAMPLELEAKED01"
ENDPOINT = "fraud-scorer-v3"
IMAGE = "registry.internal/ml/fraud-scorer-serving:3.2.0"


def lines() -> list[bytes]:
    return SCENARIO.read_bytes().splitlines()


@pytest.fixture(scope="module")
def result() -> ReplayResult:
    return replay(lines(), RULES)


def by_rule(result: ReplayResult) -> dict[str, dict[str, object]]:
    out = {}
    for incident in result.incidents:
        assert incident.rule not in out, f"more than one incident for {incident.rule}"
        out[incident.rule] = incident.to_json()
    return out


def test_scenario_gives_exactly_the_expected_incidents(result: ReplayResult) -> None:
    assert [i.rule for i in result.incidents] == [
        "leaked-key-then-used",
        "adversarial-burst",
        "vulnerable-serving-image",
    ]


def test_credential_compromise(result: ReplayResult) -> None:
    incident = by_rule(result)["leaked-key-then-used"]
    assert incident == {
        "rule": "leaked-key-then-used",
        "kind": "credential_compromise",
        "severity": "critical",
        "status": "open",
        "title": f"Leaked key {LEAKED_KEY} used after exposure",
        "group": {"resource.id": LEAKED_KEY},
        # the leak and both uses; the redelivered ct-0001 (line 19) counted once
        "events": [
            {"source": "gitleaks", "id": "gl-7f3a"},
            {"source": "cloudtrail", "id": "ct-0001"},
            {"source": "cloudtrail", "id": "ct-0002"},
        ],
        "first_seen": "2026-11-25T09:00:00Z",
        "last_seen": "2026-11-25T09:14:00Z",
    }
    (summary,) = [i for i in result.incidents if i.rule == "leaked-key-then-used"]
    assert summary.last_change is not None
    assert summary.last_change.version == 2  # opened, then ct-0002 attached; nothing more
    assert summary.last_change.event_count == 3


def test_adversarial_burst_holds_all_twelve_inputs(result: ReplayResult) -> None:
    incident = by_rule(result)["adversarial-burst"]
    assert incident["events"] == [
        {"source": "adversarial-detector", "id": f"adv-{n:04d}"} for n in range(12)
    ]
    assert incident["severity"] == "high"  # the rule's severity; every input is medium
    assert incident["kind"] == "adversarial_attack"
    assert incident["group"] == {"resource.id": ENDPOINT}
    assert incident["title"] == f"Adversarial input burst against {ENDPOINT}"
    assert (incident["first_seen"], incident["last_seen"]) == (
        "2026-11-25T09:20:00Z",
        "2026-11-25T09:22:45Z",
    )
    (summary,) = [i for i in result.incidents if i.rule == "adversarial-burst"]
    assert summary.last_change is not None
    # opened by the tenth input with all ten, then two attached
    assert (summary.last_change.version, summary.last_change.event_count) == (3, 12)


def test_vulnerable_serving_image_only_the_critical_cvss(result: ReplayResult) -> None:
    incident = by_rule(result)["vulnerable-serving-image"]
    assert incident["events"] == [{"source": "trivy", "id": "trivy-CVE-2025-32434"}]
    assert incident["severity"] == "critical"  # no rule severity: the event's
    assert incident["group"] == {"resource.id": IMAGE}
    assert incident["first_seen"] == incident["last_seen"] == "2026-11-25T09:30:00Z"


def test_no_incident_for_noise(result: ReplayResult) -> None:
    referenced = {e["id"] for i in result.incidents for e in i.events}
    assert "drift-551" not in referenced
    assert "trivy-CVE-2024-3568" not in referenced  # cvss 8.8
    rules = {i.rule for i in result.incidents}
    assert "model-integrity" not in rules
    assert "key-used-from-many-ips" not in rules  # two addresses, not three


def test_broken_last_line_is_rejected_with_its_line_number(result: ReplayResult) -> None:
    assert result.read == 20
    assert len(result.rejected) == 1
    number, reason = result.rejected[0]
    assert number == 20
    assert reason.startswith("schema violation")
    assert "time" in reason
    assert "severity" in reason


def test_to_json_shape(result: ReplayResult) -> None:
    for incident in result.incidents:
        doc = incident.to_json()
        assert list(doc) == replay_keys()
        assert doc["status"] == "open"
        assert all(set(e) == {"source", "id"} for e in doc["events"])
        assert str(doc["first_seen"]).endswith("Z")
        assert json.loads(json.dumps(doc)) == doc  # plain JSON


def test_ordered_by_first_event_time_not_by_arrival() -> None:
    raw = lines()
    trivy = [line for line in raw if b'"source": "trivy"' in line]
    rest = [line for line in raw if line not in trivy]
    result = replay([*trivy, *rest], RULES)
    assert [i.rule for i in result.incidents] == [
        "leaked-key-then-used",
        "adversarial-burst",
        "vulnerable-serving-image",
    ]
    assert [i.order for i in result.incidents] == [1, 2, 0]  # the image incident opened first


def test_replay_is_deterministic() -> None:
    first, second = replay(lines(), RULES), replay(lines(), RULES)
    assert [i.to_json() for i in first.incidents] == [i.to_json() for i in second.incidents]
    ids = [i.last_change.incident_id for i in first.incidents if i.last_change]
    assert ids == [i.last_change.incident_id for i in second.incidents if i.last_change]
    assert len(set(ids)) == 3


def test_blank_lines_are_skipped_and_bad_json_reported() -> None:
    raw = lines()
    result = replay([raw[0], b"", b"   ", b"{not json", raw[1]], RULES)
    assert result.read == 3
    assert result.rejected == [(4, "invalid JSON")]
    (incident,) = result.incidents
    assert [e["id"] for e in incident.events] == ["gl-7f3a", "ct-0001"]


def test_text_lines_work_like_bytes() -> None:
    text = SCENARIO.read_text(encoding="utf-8").splitlines()
    assert [i.to_json() for i in replay(text, RULES).incidents] == [
        i.to_json() for i in replay(lines(), RULES).incidents
    ]


def test_leak_reported_late_within_lateness_still_correlates() -> None:
    raw = lines()
    leak = raw[0]
    assert b"gl-7f3a" in leak
    # the scanner's report arrives after both uses, 14 minutes behind them
    reordered = [raw[1], raw[2], leak, *raw[3:]]
    result = replay(reordered, RULES, allowed_lateness=timedelta(minutes=20))
    (incident,) = [i for i in result.incidents if i.rule == "leaked-key-then-used"]
    ids = [e["id"] for e in incident.events]
    assert "gl-7f3a" in ids
    assert "ct-0001" in ids
    assert incident.first_seen.isoformat().startswith("2026-11-25T09:00:00")


def test_no_rules_no_incidents() -> None:
    result = replay(lines(), RuleSet([]))
    assert result.incidents == []
    assert result.read == 20
