"""Secrets never stored (issue 8, item 4): step parameters, outputs, error texts, run errors,
validation errors, audit data, `runs show`, Slack texts and logs carry secrets masked, by key
and by value, on SQLite and PostgreSQL; the Slack adapter masks what it posts to a real HTTP
server on loopback."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlmodel import Session

from responder.actions.slack import SlackWebAdapter
from responder.logs.setup import configure
from responder.service.runs import run_detail
from tests.support.fakes.http import response
from tests.support.runner_kit import KEY, Kit, change
from tests.support.slack_server import SlackServer

pytestmark = pytest.mark.integration

GITHUB = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MX0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
ACCESS = "opaque-access-0123456789"  # no known shape: masked by key, then learned
QUERY = "qs-secret-0123456789"
PASSWORD = "hunter2-db-password"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7secretkeymaterial\n-----END RSA PRIVATE KEY-----"
SECRETS = (GITHUB, JWT, ACCESS, QUERY, PASSWORD, "MIIEowIBAAKCAQEA7secretkeymaterial", "s3ss10n")

PLAYBOOK = f"""
id: leaky
title: Everything a careless integration could leak
on: {{kind: credential_compromise}}
guards: {{require_evidence: false}}
steps:
  - id: token
    action: http.request
    with:
      url: "https://idp.example/oauth/token?client_secret={QUERY}"
      method: POST
      json: {{grant: client_credentials}}
      headers: {{Cookie: "session=s3ss10n"}}
  - id: ticket
    action: http.request
    with:
      url: https://tickets.example/api
      json: {{note: "see {{{{ steps.token.output.json.access_token }}}}"}}
    on_error: continue
  - id: notify
    action: slack.notify
    with:
      text: "db at postgresql://admin:{PASSWORD}@db/x, token {GITHUB}"
"""


@pytest.fixture
def kit(db: Engine, tmp_path: Path) -> Kit:
    return Kit(db=db, directory=tmp_path / "playbooks")


def dump_database(db: Engine) -> str:
    """Every row of every table the runner and the audit chain write, as text."""
    tables = ("playbook_runs", "playbook_steps", "audit_log")
    with db.connect() as conn:
        return "\n".join(
            repr(row) for table in tables for row in conn.execute(text(f"SELECT * FROM {table}"))
        )


async def test_outputs_errors_params_and_audit_are_stored_masked(
    kit: Kit, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure("DEBUG", fmt="json")
    kit.playbook("leaky", PLAYBOOK)
    idp = "https://idp.example/oauth/token?client_secret=" + QUERY
    kit.http.respond(
        idp,
        response(200, json={"access_token": ACCESS, "id_token": JWT, "pem": PEM, "kid": "k1"}),
    )
    echo = f'{{"error": "invalid", "echo": "Authorization: Bearer {ACCESS}", "jwt": "{JWT}"}}'
    kit.http.respond("https://tickets.example/api", response(500, body=echo))
    [rid] = kit.apply(change())
    await kit.drive()

    steps = kit.steps(rid)
    assert steps["token"].status == "completed"
    assert steps["token"].output["json"]["access_token"] == "***"  # by key
    assert steps["token"].output["json"]["kid"] == "k1"  # the rest is kept
    assert steps["token"].params["url"].endswith("client_secret=***")  # URL query secret
    assert steps["token"].params["headers"]["Cookie"] == "***"
    assert steps["ticket"].status == "failed"
    assert "answered 500" in (steps["ticket"].error or "")
    assert "Authorization: ***" in (steps["ticket"].error or "")
    assert steps["notify"].status == "completed"
    # the requests carried the real values: masking is for what is kept, not what is sent
    assert kit.http.requests[1]["json"] == {"note": f"see {ACCESS}"}
    assert kit.http.requests[0]["headers"]["Cookie"] == "session=s3ss10n"

    stored = dump_database(kit.db)
    shown = ""
    with Session(kit.db) as session:
        shown = run_detail(session, rid).model_dump_json()
    err = capsys.readouterr().err
    for secret in SECRETS:
        assert secret not in stored, secret
        assert secret not in shown, secret
        assert secret not in err, secret
    assert "***" in stored and KEY in stored  # access key ids are kept: they are the subject
    assert kit.chain_ok()
    posted = kit.slack.posts[-1]["text"]
    assert "postgresql://admin" in posted  # the fake is our port; the adapter masks (below)


async def test_a_validation_error_that_echoes_input_is_stored_masked(kit: Kit) -> None:
    kit.playbook(
        "bad",
        """
        id: bad
        title: A step whose parameters fail validation
        on: {kind: credential_compromise}
        guards: {require_evidence: false}
        steps:
          - id: call
            action: http.request
            with:
              url: https://tickets.example/api
              headers: {X-Api-Key: "{{ {'nested': 'opaque-api-key-0123'} }}"}
        """,
    )
    [rid] = kit.apply(change())
    await kit.drive()
    error = kit.steps(rid)["call"].error or ""
    assert "X-Api-Key" in error and "input_value=***" in error
    assert "opaque-api-key-0123" not in dump_database(kit.db)


async def test_the_slack_adapter_posts_text_and_blocks_masked() -> None:
    with SlackServer() as server:
        adapter = SlackWebAdapter(
            token=SecretStr(server.token), base_url=server.base_url, default_channel="#secops"
        )
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"key {KEY} token {GITHUB}"}}
        ]
        await adapter.post_message(
            channel="#secops", text=f"see https://x.example/?token={QUERY} and {JWT}", blocks=blocks
        )
        [call] = server.calls_to("chat.postMessage")
        sent = json.dumps(call["payload"])
        for secret in (GITHUB, QUERY, JWT):
            assert secret not in sent
        assert KEY in sent and "token=***" in sent


def test_third_party_debug_loggers_are_capped_and_messages_masked(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure("DEBUG", fmt="json")
    for name in ("botocore.endpoint", "boto3", "urllib3.connectionpool", "slack_sdk.web"):
        logging.getLogger(name).debug("Sending headers {'Authorization': 'AWS4 AKIAEXAMPLE'}")
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    logging.getLogger("botocore.hooks").warning("retry %s", f"Authorization: Bearer {ACCESS}")
    structlog.get_logger("responder.test").info("calling", url=f"https://a.example/?sig={QUERY}")
    err = capsys.readouterr().err
    assert "AKIAEXAMPLE" not in err and ACCESS not in err and QUERY not in err
    assert "Authorization: ***" in err and "sig=***" in err
