"""The `responder` command: help everywhere, rule validation and offline replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from responder import __version__
from responder.cli import app
from responder.correlation.rules import load_rules
from tests.support.contract import replay_keys

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
SCENARIO = ROOT / "responder" / "samples" / "scenario.jsonl"

runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    """Rich wraps long lines at the console width: compare with whitespace collapsed."""
    return " ".join(text.split())


def command_paths() -> list[list[str]]:
    """Every group and command under `responder`, as argument lists."""
    paths: list[list[str]] = []

    def walk(command: Any, prefix: list[str]) -> None:
        paths.append(prefix)
        # typer >= 0.2x vendors click: duck-type the group rather than import click
        if isinstance(getattr(command, "commands", None), dict):
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_every_command_is_reachable() -> None:
    names = {" ".join(p) for p in command_paths()}
    assert names >= {
        "",
        "worker",
        "replay",
        "send",
        "convert",
        "demo",
        "incidents list",
        "incidents show",
        "rules validate",
        "schema event",
        "audit verify",
        "db upgrade",
        "playbooks validate",
        "runs list",
        "runs show",
        "runs approve",
        "runs deny",
        "incidents ack",
        "incidents resolve",
        "incidents false-positive",
        "incidents assign",
        "incidents comment",
        "incidents severity",
        "runs cancel",
        "api",
        "tokens create",
        "tokens list",
        "tokens revoke",
        "slack",
    }


def test_slack_runs_socket_mode_only_and_never_shows_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In http mode it points at the API; a bot token given as app token is refused unseen."""
    http = invoke("slack")
    assert http.exit_code == 1 and "POST /v1/slack/actions" in flat(http.output)
    monkeypatch.setenv("RESPONDER_SLACK__MODE", "socket")
    missing = invoke("slack")
    assert missing.exit_code == 1 and "RESPONDER_SLACK__APP_TOKEN" in flat(missing.output)
    monkeypatch.setenv("RESPONDER_SLACK__APP_TOKEN", "xoxb-pasted-by-mistake")
    wrong = invoke("slack")
    assert wrong.exit_code == 1 and "app-level token" in flat(wrong.output)
    assert "xoxb-pasted" not in wrong.output


def test_demo_outside_the_repository_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ./rules where it runs: one clear error naming the setting, not a traceback (before
    any broker is looked for)."""
    monkeypatch.chdir(tmp_path)
    result = invoke("demo")
    assert result.exit_code == 1
    assert "rules directory not found" in result.output
    assert "RESPONDER_RULES_DIR" in flat(result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_worker_refuses_unknown_stages() -> None:
    result = invoke("worker", "--stages", "ingest,bogus")
    assert result.exit_code == 1
    assert "unknown stages ['bogus']" in result.output
    assert "sink, correlate, ingest, reports, runner, commands" in result.output


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "responder")
def test_help_exits_0(path: list[str]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert "--help" in result.stdout


def test_no_arguments_shows_help() -> None:
    result = invoke()
    assert "Usage:" in result.output
    for group in ("incidents", "rules", "schema", "audit", "db", "replay"):
        assert group in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"responder {__version__}"


# --- rules validate ---------------------------------------------------------------------------


def test_rules_validate_shipped_rules() -> None:
    count = len(load_rules(RULES))
    assert count >= 5
    result = invoke("rules", "validate", RULES)
    assert result.exit_code == 0, result.output
    assert flat(result.stdout) == f"OK: {count} rules in {RULES}"
    assert result.stderr == ""


GOOD_RULE = """\
id: good
title: Good rule
match:
  type: secret.leaked
group_by: [resource.id]
window: 10m
incident:
  kind: credential_leak
"""

BROKEN_RULE = """\
id: broken
title: Broken rule
match:
  type: secret.leaked
group_by: [resource.id]
window: forever
incident:
  kind: credential_leak
  colour: red
"""


def test_rules_validate_reports_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD_RULE)
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN_RULE)
    result = invoke("rules", "validate", tmp_path)
    assert result.exit_code == 1
    assert "OK" not in result.stdout
    errors = flat(result.stderr)
    assert f"{broken}:6: window: " in errors
    assert "invalid duration 'forever'" in errors
    assert f"{broken}:9: incident.colour: " in errors
    assert "good.yaml" not in errors


def test_rules_validate_reports_invalid_yaml_and_missing_dir(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("id: x\ntitle: [unclosed\n")
    result = invoke("rules", "validate", tmp_path)
    assert result.exit_code == 1
    assert f"{bad}:" in result.stderr
    assert "invalid YAML" in result.stderr

    missing = invoke("rules", "validate", tmp_path / "nope")
    assert missing.exit_code == 1
    assert "rules directory not found" in missing.stderr


# --- replay -----------------------------------------------------------------------------------


def test_replay_json_prints_incidents_and_reports_rejections() -> None:
    result = invoke("replay", SCENARIO, "--rules", RULES, "--json")
    assert result.exit_code == 0, result.output

    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    incidents = [json.loads(line) for line in lines]
    for incident in incidents:
        assert list(incident) == replay_keys()
        assert incident["status"] == "open"
        assert incident["events"]
        assert all(set(ref) == {"source", "id"} for ref in incident["events"])
        assert incident["first_seen"].endswith("Z")
        assert incident["first_seen"] <= incident["last_seen"]
    first_seen = [i["first_seen"] for i in incidents]
    assert first_seen == sorted(first_seen)
    assert [i["rule"] for i in incidents] == [
        "leaked-key-then-used",
        "adversarial-burst",
        "vulnerable-serving-image",
    ]
    leaked = incidents[0]
    assert leaked["severity"] == "critical"
    assert leaked["group"] == {"resource.id": "AKIAEXAMPLELEAKED01"}
    # the redelivered ct-0001 (line 19) is not counted twice
    assert leaked["events"] == [
        {"source": "gitleaks", "id": "gl-7f3a"},
        {"source": "cloudtrail", "id": "ct-0001"},
        {"source": "cloudtrail", "id": "ct-0002"},
    ]

    errors = flat(result.stderr)
    assert f"{SCENARIO}:20: rejected: schema violation" in errors
    assert ":19: rejected" not in errors
    assert "events read: 20, rejected: 1, incidents: 3" in errors
    assert "{" not in result.stderr  # no incident JSON on stderr


def test_replay_table_output() -> None:
    result = invoke("replay", SCENARIO, "--rules", RULES)
    assert result.exit_code == 0, result.output
    assert "leaked-key-then-used" in result.stdout
    assert "adversarial-burst" in result.stdout
    assert "events read: 20, rejected: 1, incidents: 3" in flat(result.stderr)


def test_replay_strict_fails_on_rejected_lines(tmp_path: Path) -> None:
    result = invoke("replay", SCENARIO, "--rules", RULES, "--json", "--strict")
    assert result.exit_code != 0
    assert result.exit_code == 2
    assert len(result.stdout.splitlines()) == 3  # still prints what it found

    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(SCENARIO.read_text().splitlines(keepends=True)[:19]))
    ok = invoke("replay", clean, "--rules", RULES, "--json", "--strict")
    assert ok.exit_code == 0, ok.output
    assert "events read: 19, rejected: 0, incidents: 3" in flat(ok.stderr)


def test_replay_missing_file_and_bad_rules(tmp_path: Path) -> None:
    missing = invoke("replay", tmp_path / "none.jsonl", "--rules", RULES)
    assert missing.exit_code == 1
    assert "no such file" in missing.stderr

    (tmp_path / "broken.yaml").write_text(BROKEN_RULE)
    bad_rules = invoke("replay", SCENARIO, "--rules", tmp_path)
    assert bad_rules.exit_code == 1
    assert "rules are invalid" in bad_rules.stderr
    assert "broken.yaml:6: window" in flat(bad_rules.stderr)


def test_runs_show_says_who_may_approve_and_who_did() -> None:
    """A waiting step's line names the quorum, the approvers and the approvals so far."""
    from responder.cli.run_view import approval_line

    assert approval_line(None) == "needs 1 approval from anyone who may decide"
    votes = [{"by": "slack:U1", "approve": True}, {"by": "bob", "approve": False}]
    line = approval_line({"approvers": ["group:secops"], "quorum": 2, "votes": votes})
    assert line == "needs 2 approvals from group:secops; approved so far: slack:U1 (1 of 2)"
