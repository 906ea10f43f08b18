"""Every shipped playbook loads against the real action catalog, and what they would do with the
sample scenario (`responder replay --dry-run`) is what the playbooks promise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from responder.actions.catalog import REGISTRY
from responder.cli import app
from responder.playbooks import load_playbook_file, load_playbooks, plan_run
from responder.yamlfiles import yaml_files as playbook_files

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
RULES = ROOT / "rules"
SCENARIO = ROOT / "responder" / "samples" / "scenario.jsonl"
KEY = "AKIAEXAMPLELEAKED01"

runner = CliRunner()


@pytest.mark.parametrize("path", playbook_files(PLAYBOOKS), ids=lambda p: p.name)
def test_shipped_playbook_loads(path: Path) -> None:
    playbook = load_playbook_file(path, REGISTRY)
    assert path.stem == playbook.id
    for step in playbook.steps:
        assert step.action == "approval.request" or step.action in REGISTRY


def test_shipped_set() -> None:
    playbooks = load_playbooks(PLAYBOOKS, REGISTRY)
    assert [p.id for p in playbooks] == [
        "block-adversarial-sources",
        "contain-leaked-credential",
        "contain-poisoned-data",
        "investigate-data-integrity",
        "llm-probe-failures",
        "revert-unvetted-release",
        "rollback-compromised-model",
        "vulnerable-serving-image",
    ]


def replay_dry_run() -> dict[str, dict[str, Any]]:
    result = runner.invoke(
        app,
        [
            "replay",
            str(SCENARIO),
            "--rules",
            str(RULES),
            "--dry-run",
            "--playbooks",
            str(PLAYBOOKS),
        ],
    )
    assert result.exit_code == 0, result.output
    incidents = [json.loads(line) for line in result.stdout.splitlines()]
    return {i["rule"]: i for i in incidents}


def test_replay_dry_run_plans_the_shipped_playbooks() -> None:
    incidents = replay_dry_run()
    [burst] = incidents["adversarial-burst"]["playbooks"]
    assert burst["id"] == "block-adversarial-sources"  # tests/unit/test_shipped_ai_playbooks.py

    [contain] = incidents["leaked-key-then-used"]["playbooks"]
    assert (contain["id"], contain["mode"], contain["change"]) == (
        "contain-leaked-credential",
        "automatic",
        "opened",
    )
    steps = {s["id"]: s for s in contain["steps"]}
    assert list(steps) == ["evidence", "approve", "deactivate", "notify", "acknowledge"]
    assert KEY in steps["approve"]["with"]["prompt"]
    assert steps["deactivate"]["with"] == {
        "access_key_id": KEY,
        "user_name": "inference-gateway-ci",
    }
    assert steps["deactivate"]["if"] == "<depends on outputs>"
    assert steps["deactivate"]["undo"] == {
        "action": "aws.iam.activate_access_key",
        "with": {
            "access_key_id": "<output of deactivate.access_key_id>",
            "user_name": "<output of deactivate.user_name>",
        },
    }
    assert steps["acknowledge"]["with"]["status"] == "acknowledged"

    [ticket_run] = incidents["vulnerable-serving-image"]["playbooks"]
    ticket = {s["id"]: s for s in ticket_run["steps"]}["ticket"]["with"]
    assert ticket["url"] == "https://tickets.internal.example/api/issues"
    assert ticket["json"]["cves"] == ["CVE-2025-32434"]
    assert ticket["json"]["severity"] == "critical"


def test_user_name_falls_back_to_the_resource_name() -> None:
    playbook = load_playbooks(PLAYBOOKS, REGISTRY).get("contain-leaked-credential")
    incident = {"group": {"resource.id": KEY}, "title": "t", "event_count": 1}
    only_leak = [{"id": "gl", "resource": {"kind": "api_key", "id": KEY, "name": "ci-user"}}]
    run = plan_run(playbook, incident=incident, events=only_leak)
    assert run.steps[2].with_["user_name"] == "ci-user"
    run = plan_run(playbook, incident=incident, events=[{"id": "x", "resource": {"id": KEY}}])
    assert run.steps[2].with_["user_name"] is None


def test_rollback_plan() -> None:
    playbook = load_playbooks(PLAYBOOKS, REGISTRY).get("rollback-compromised-model")
    events = [
        {"id": "a", "resource": {"kind": "model", "id": "m", "name": "fraud", "version": "7"}},
        {"id": "b", "resource": {"kind": "model", "id": "m", "name": "fraud", "version": "7"}},
        {"id": "c", "resource": {"kind": "model", "id": "m", "name": "fraud", "version": "8"}},
    ]
    incident = {"group": {"resource.name": "fraud"}, "title": "t"}
    [_evidence, rollback, _notify] = [
        s.to_json() for s in plan_run(playbook, incident=incident, events=events).steps
    ]
    assert rollback["with"]["bad_versions"] == ["7", "8"]
    assert rollback["with"]["name"] == "fraud"
    assert rollback["undo"]["with"]["version"] == "<output of rollback.from_version>"
    assert rollback["undo"]["with"]["expect_current"] == "<output of rollback.to_version>"


def test_playbooks_validate_command(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["playbooks", "validate", "--dir", str(PLAYBOOKS)])
    assert ok.exit_code == 0, ok.output
    assert "contain-leaked-credential  mode=automatic  steps=5" in ok.stdout
    assert "OK: 8 playbooks" in ok.stdout

    bad = tmp_path / "bad.yaml"
    text = (PLAYBOOKS / "vulnerable-serving-image.yaml").read_text()
    bad.write_text(text.replace("action: http.request", "action: http.send"))
    failed = runner.invoke(app, ["playbooks", "validate", "--dir", str(tmp_path)])
    assert failed.exit_code == 1
    assert f"{bad}:" in failed.stderr
    assert "steps.1.action: unknown action 'http.send'" in failed.stderr
    assert "OK" not in failed.stdout


def test_user_name_ignores_actors_without_id() -> None:
    playbook = load_playbooks(PLAYBOOKS, REGISTRY).get("contain-leaked-credential")
    incident = {"group": {"resource.id": KEY}, "title": "t", "event_count": 1}
    events = [
        {"id": "a", "actor": {"ip": "192.0.2.1"}, "resource": {"id": KEY, "name": "from-name"}},
        {"id": "b", "actor": {"id": "arn:aws:iam::1:user/team/ci-bot"}, "resource": {"id": KEY}},
    ]
    assert (
        plan_run(playbook, incident=incident, events=events).steps[2].with_["user_name"] == "ci-bot"
    )
    assert (
        plan_run(playbook, incident=incident, events=events[:1]).steps[2].with_["user_name"]
        == "from-name"
    )
