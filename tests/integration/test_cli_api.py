"""CLI parity: the analyst commands work through the REST API (`--api URL`, token from
RESPONDER_API_TOKEN) as they do directly, and print the same JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner, Result

from responder import bootstrap
from responder.cli import app
from responder.service.identity import Role
from tests.support.api import api_settings, issue_tokens, serving
from tests.support.harness import consume_all
from tests.support.runner_kit import ASK, Kit, change

pytestmark = pytest.mark.integration


@pytest.fixture
def served(
    db: Engine,
    db_url: str,
    kafka_bootstrap: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, dict[Role, str]]]:
    settings = api_settings(db_url, kafka_bootstrap, unique)
    monkeypatch.setenv("RESPONDER_DATABASE__URL", db_url)
    monkeypatch.setenv("RESPONDER_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("RESPONDER_KAFKA__TOPICS__COMMANDS", settings.kafka.topics.commands)
    secrets = issue_tokens(db)
    with serving(bootstrap.api_app(settings, engine=db)) as url:
        yield url, secrets


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


async def test_analyst_commands_through_the_api(
    served: tuple[str, dict[Role, str]],
    db: Engine,
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every analyst command works with --api; commands carry the token's identity."""
    url, secrets = served
    kit = Kit(db=db, directory=tmp_path / "playbooks")
    kit.playbook("ask", ASK)
    [rid] = kit.apply(change())
    await kit.drive()

    direct = await asyncio.to_thread(cli, "incidents", "show", "inc-1", "--json")
    monkeypatch.setenv("RESPONDER_API_TOKEN", secrets[Role.responder])
    remote = await asyncio.to_thread(cli, "incidents", "show", "inc-1", "--json", "--api", url)
    assert remote.exit_code == 0, remote.output
    assert json.loads(remote.stdout) == json.loads(direct.stdout)
    listed = await asyncio.to_thread(cli, "incidents", "list", "--api", url)
    assert listed.exit_code == 0 and "inc-1"[:8] in listed.stdout
    runs = await asyncio.to_thread(cli, "runs", "list", "--json", "--api", url)
    assert json.loads(runs.stdout)["id"] == rid
    shown = await asyncio.to_thread(cli, "runs", "show", rid[:8], "--api", url)
    assert "responder runs approve" in " ".join(shown.stdout.split())

    sends = [
        ["incidents", "ack", "inc-1", "--comment", "mine"],
        ["incidents", "assign", "inc-1", "--to", "bob"],
        ["incidents", "comment", "inc-1", "a note"],
        ["incidents", "severity", "inc-1", "high"],
        ["incidents", "resolve", "inc-1"],
        ["incidents", "false-positive", "inc-1"],
        ["runs", "approve", rid[:8], "--reason", "fine"],
        ["playbooks", "kill-switch", "on", "--reason", "drill"],
    ]
    for args in sends:
        result = await asyncio.to_thread(cli, *args, "--wait", "0", "--api", url)
        assert result.exit_code == 0, (args, result.output)
    topic = bootstrap.load_settings().kafka.topics.commands
    commands = [
        json.loads(m.value)
        for m in await consume_all(kafka_bootstrap, topic, len(sends), timeout=30)
    ]
    assert sorted(c["type"] for c in commands) == sorted(
        ["incident"] * 4 + ["comment", "severity", "decision", "kill_switch"]
    )
    assert {c["by"] for c in commands} == {"token:responder"}

    refused = await asyncio.to_thread(
        cli, "incidents", "ack", "inc-1", "--by", "mallory", "--wait", "0", "--api", url
    )
    assert refused.exit_code == 1 and "token's name" in refused.output
    missing = await asyncio.to_thread(cli, "incidents", "show", "nope", "--api", url)
    assert missing.exit_code == 1 and "404" in missing.output
    stale = await asyncio.to_thread(
        cli, "incidents", "ack", "inc-1", "--expect", "0" * 32, "--wait", "0", "--api", url
    )
    assert stale.exit_code == 1 and "412" in stale.output

    monkeypatch.setenv("RESPONDER_API_TOKEN", secrets[Role.viewer])
    forbidden = await asyncio.to_thread(cli, "runs", "cancel", rid, "--wait", "0", "--api", url)
    assert forbidden.exit_code == 1 and "403" in forbidden.output
    state = await asyncio.to_thread(cli, "playbooks", "kill-switch", "--api", url)
    assert state.exit_code == 0 and "kill switch: off" in state.stdout  # nobody applied it
    monkeypatch.delenv("RESPONDER_API_TOKEN")
    no_token = await asyncio.to_thread(cli, "incidents", "list", "--api", url)
    assert no_token.exit_code == 1 and "RESPONDER_API_TOKEN" in no_token.output
