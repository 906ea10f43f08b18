"""The shipped rules and playbooks respond to what the converters make of real reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from responder.cli import app

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "reports"
CONVERSIONS: list[tuple[str, ...]] = [
    ("trivy/trivy.scan1.json", "--label", "env=prod", "--label", "component=model-serving"),
    ("falco/falco.jsonl", "--label", "env=prod"),
    ("evidently/evidently.json", "--asset", "fraud-features", "--time", "2026-11-30T10:00:00Z"),
    ("great-expectations/great-expectations.json", "--asset", "fraud-features"),
    ("garak/garak.report.jsonl", "--asset", "fraud-chat-prod", "--label", "env=prod"),
    (
        "sarif/semgrep.scan1.sarif",
        "--asset",
        "ml-platform/fraud-scorer",
        "--time",
        "2026-11-25T09:00:00Z",
    ),
    ("modelscan/modelscan.json", "--asset", "fraud-scorer"),
    ("gitleaks/gitleaks.json",),
    ("cloudtrail/cloudtrail.json",),
]

runner = CliRunner()


def replayed(tmp_path: Path) -> dict[str, dict[str, Any]]:
    lines = []
    for fixture, *options in CONVERSIONS:
        result = runner.invoke(app, ["convert", str(FIXTURES / fixture), *options])
        assert result.exit_code == 0, result.stderr
        lines.append(result.stdout)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(lines))
    result = runner.invoke(
        app,
        [
            "replay",
            str(events),
            "--strict",
            "--rules",
            str(ROOT / "rules"),
            "--dry-run",
            "--playbooks",
            str(ROOT / "playbooks"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    incidents = [json.loads(line) for line in result.stdout.splitlines()]
    return {i["rule"]: i for i in incidents}


def test_converted_reports_open_the_incidents_the_rules_promise(tmp_path: Path) -> None:
    """Nine real reports → one incident per shipped rule that covers them, and their playbooks."""
    incidents = replayed(tmp_path)
    assert {rule: i["severity"] for rule, i in incidents.items()} == {
        "vulnerable-serving-image": "critical",
        "running-vulnerable-image": "critical",
        "unsafe-deserialization-in-code": "high",
        "leaked-key-then-used": "critical",
        "key-used-from-many-ips": "high",
        "llm-probe-failures": "high",
        "drift-with-data-quality-failure": "high",
        "model-integrity": "critical",
    }
    leaked = incidents["leaked-key-then-used"]
    assert leaked["group"] == {"resource.id": "AKIAIOSFODNN7EXAMPLE"}
    assert [e["source"] for e in leaked["events"]] == ["gitleaks"] + ["cloudtrail"] * 4
    running = incidents["running-vulnerable-image"]
    assert {e["source"] for e in running["events"]} == {"trivy", "falco"}
    assert {p["id"] for p in incidents["drift-with-data-quality-failure"]["playbooks"]} == {
        "investigate-data-integrity"
    }
    probes = incidents["llm-probe-failures"]
    assert len(probes["events"]) == 2  # leakreplay failed 3%: below the rule's threshold
    [probe_run] = probes["playbooks"]  # planned when the incident opened, on its first event
    notify = probe_run["steps"][0]["with"]["text"]
    assert notify.endswith(
        "fails vulnerability probes: promptinject.HijackHateHumansMini (38% failed)"
    )
