"""Slack requests and payloads on plain values: the signature, the click, the audit gate."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr

from responder.actions.slack import (
    ACK_INCIDENT_ACTION_ID,
    APPROVE_ACTION_ID,
    DENY_ACTION_ID,
    DENY_INCIDENT_ACTION_ID,
)
from responder.security.audit_gate import AuditGate
from responder.service.errors import Invalid
from responder.service.identity import person
from responder.service.slack.clicks import (
    Acknowledge,
    DecideIncident,
    DecideStep,
    click_of,
    form_payload,
)
from responder.service.slack.signature import TOLERANCE_S, RequestRefused, sign, verify

SECRET = SecretStr("s3cr3t-signing")
NOW = 1_764_000_000.0
BODY = b"payload=%7B%7D"


def refused(**kw: Any) -> str:
    with pytest.raises(RequestRefused) as info:
        verify(BODY, secret=SECRET, now=NOW, **kw)
    return info.value.reason


def test_a_request_signed_now_with_the_secret_passes() -> None:
    """Slack's v0 signature over timestamp and body, within the tolerance: no refusal."""
    stamp = int(NOW - TOLERANCE_S)
    verify(
        BODY,
        timestamp=str(stamp),
        signature=sign(BODY, timestamp=stamp, secret=SECRET),
        secret=SECRET,
        now=NOW,
    )


@pytest.mark.parametrize(
    ("timestamp", "signature", "reason"),
    [
        (None, None, "unsigned"),
        ("1764000000", None, "unsigned"),
        ("soon", "v0=" + "0" * 64, "bad_signature"),
        ("1764000000", "v0=" + "0" * 64, "bad_signature"),
        ("1764000000", "v1=abc", "bad_signature"),
        ("1764000000", "v0=" + "é" * 64, "bad_signature"),  # no TypeError from compare_digest
    ],
)
def test_missing_malformed_and_wrong_signatures_are_refused(
    timestamp: str | None, signature: str | None, reason: str
) -> None:
    """Each broken header set is refused with its own reason code."""
    assert refused(timestamp=timestamp, signature=signature) == reason


def test_a_valid_signature_over_another_body_or_secret_is_refused() -> None:
    """The signature covers the body and is keyed with the secret."""
    stamp = int(NOW)
    good = sign(BODY, timestamp=stamp, secret=SECRET)
    with pytest.raises(RequestRefused, match="bad_signature"):
        verify(BODY + b"x", timestamp=str(stamp), signature=good, secret=SECRET, now=NOW)
    other = sign(BODY, timestamp=stamp, secret=SecretStr("other"))
    assert refused(timestamp=str(stamp), signature=other) == "bad_signature"


@pytest.mark.parametrize("offset", [TOLERANCE_S + 1, -(TOLERANCE_S + 1), 86_400])
def test_a_correctly_signed_request_too_old_or_too_new_is_late(offset: int) -> None:
    """Signed more than 5 minutes from now, either way: refused as late."""
    stamp = int(NOW - offset)
    assert (
        refused(timestamp=str(stamp), signature=sign(BODY, timestamp=stamp, secret=SECRET))
        == "late"
    )


def payload(**actions: Any) -> dict[str, Any]:
    action = {"action_id": APPROVE_ACTION_ID, "value": "run-1:approve", "action_ts": "1764000000.5"}
    return {
        "type": "block_actions",
        "user": {"id": "U1", "name": "U2", "username": "admin", "team_id": "T1"},
        "team": {"id": "T9"},
        "trigger_id": "123.456.abc",
        "channel": {"id": "C1"},
        "container": {"message_ts": "1764000000.000100", "channel_id": "C2"},
        "actions": [{**action, **actions}],
    }


def test_the_actor_is_the_user_id_and_nothing_else() -> None:
    """Names and usernames in the payload are ignored; the user's own team wins over team.id."""
    got = click_of(payload())
    assert got is not None
    assert (got.user, got.actor, got.team) == ("U1", "slack:U1", "T1")
    assert (got.channel, got.message_ts, got.action_ts) == ("C1", "1764000000.000100", 1764000000.5)
    assert got.intent == DecideStep("run-1", "approve", True)


@pytest.mark.parametrize(
    ("action_id", "value", "intent"),
    [
        (DENY_ACTION_ID, "0d830f00-aa:deactivate", DecideStep("0d830f00-aa", "deactivate", False)),
        (ACK_INCIDENT_ACTION_ID, "inc-1", Acknowledge("inc-1")),
        (DENY_INCIDENT_ACTION_ID, "inc-1", DecideIncident("inc-1", False)),
    ],
)
def test_each_button_asks_for_its_own_thing(action_id: str, value: str, intent: Any) -> None:
    """Approval buttons name a run step; incident buttons an incident."""
    got = click_of(payload(action_id=action_id, value=value))
    assert got is not None and got.intent == intent


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"user": {"id": "<@U1>"}}, "malformed"),
        ({"user": "U1"}, "malformed"),
        ({"actions": []}, "malformed"),
        ({"actions": [{"action_id": APPROVE_ACTION_ID}]}, "malformed"),
        ({"actions": [{"action_id": "x", "value": "v", "action_ts": "1.0"}]}, "unknown_action"),
        (
            {"actions": [{"action_id": APPROVE_ACTION_ID, "value": "run-1", "action_ts": "1"}]},
            "malformed",
        ),
        (
            {"actions": [{"action_id": APPROVE_ACTION_ID, "value": "r:Bad;id", "action_ts": "1"}]},
            "malformed",
        ),
        (
            {"actions": [{"action_id": APPROVE_ACTION_ID, "value": "r:s", "action_ts": "soon"}]},
            "malformed",
        ),
        (
            {
                "actions": [
                    {"action_id": ACK_INCIDENT_ACTION_ID, "value": "x" * 301, "action_ts": "1"}
                ]
            },
            "malformed",
        ),
    ],
)
def test_payloads_not_shaped_like_slacks_are_refused(change: dict[str, Any], reason: str) -> None:
    """Bad user ids, action lists, values and timestamps: refused (400) with a reason code."""
    with pytest.raises(RequestRefused) as info:
        click_of({**payload(), **change})
    assert (info.value.reason, info.value.status) == (reason, 400)


def test_other_interactions_are_not_clicks() -> None:
    """A shortcut or a view submission is ignored, not refused."""
    assert click_of({**payload(), "type": "view_submission"}) is None


def test_the_replay_key_is_the_same_click_of_the_same_user() -> None:
    """Same user, trigger and action_ts: the same key; another user or another click: another."""
    one, again = click_of(payload()), click_of(payload())
    other = click_of({**payload(), "user": {"id": "U2", "team_id": "T1"}})
    later = click_of(payload(action_ts="1764000001.5"))
    assert one is not None and again is not None and other is not None and later is not None
    assert one.replay_key == again.replay_key
    assert len({one.replay_key, other.replay_key, later.replay_key}) == 3


def test_the_form_body_must_carry_one_json_object() -> None:
    """`payload=<JSON object>` is read; anything else is malformed (400)."""
    body = urlencode({"payload": json.dumps(payload())}).encode()
    assert form_payload(body)["user"]["id"] == "U1"
    for bad in (b"", b"payload=[1]", b"payload=%7B", b"x=1", b"payload=1&payload=2", b"\xff"):
        with pytest.raises(RequestRefused, match="malformed"):
            form_payload(bad)


def test_the_audit_gate_lets_a_minute_through_then_counts() -> None:
    """Up to `per_minute` records a minute; the next one written says how many were left out."""
    gate = AuditGate(per_minute=2)
    assert [gate.admit(0.0), gate.admit(1.0), gate.admit(2.0), gate.admit(3.0)] == [
        (True, 0),
        (True, 0),
        (False, 0),
        (False, 0),
    ]
    assert gate.admit(61.0) == (True, 2)
    assert gate.admit(62.0) == (True, 0)


def test_slack_identities_cannot_be_typed_on_the_command_line() -> None:
    """`--by slack:U1` would pass for a Slack approver: refused like `token:` names."""
    with pytest.raises(Invalid, match="slack:"):
        person("slack:U1")
