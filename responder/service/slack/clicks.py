"""A Slack interaction payload → a `Click` (who clicked which button) → what it asks for. Pure.

Only `block_actions` with exactly one button are clicks; other interactions are ignored. The
actor is `user.id` of the payload and nothing else in it (names, usernames and the like are not
looked at). Every field that is used is checked for shape and size: run, step and incident ids
come from button values, which Slack hands back as we posted them, but a payload is read as if
an attacker wrote it all the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from responder.actions.approval import SLACK_ID
from responder.actions.slack import (
    ACK_INCIDENT_ACTION_ID,
    APPROVE_ACTION_ID,
    APPROVE_INCIDENT_ACTION_ID,
    DENY_ACTION_ID,
    DENY_INCIDENT_ACTION_ID,
)
from responder.service.slack.signature import RequestRefused

_ACTION_TS = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")
_TRIGGER = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_TEAM = re.compile(r"^[TE][A-Z0-9]{1,30}$")
_CHANNEL = re.compile(r"^[CDGZ][A-Z0-9]{1,30}$")
_RUN = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_STEP = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_INCIDENT = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")


@dataclass(frozen=True)
class DecideStep:
    """An approval message's Approve / Deny: the step its value names."""

    run_id: str
    step_id: str
    approve: bool


@dataclass(frozen=True)
class DecideIncident:
    """An incident message's Approve / Deny: the one step of its runs that waits."""

    incident_id: str
    approve: bool


@dataclass(frozen=True)
class Acknowledge:
    incident_id: str


Intent = DecideStep | DecideIncident | Acknowledge


@dataclass(frozen=True)
class Click:
    user: str  # the verified Slack user id (payload `user.id`)
    team: str | None  # the user's workspace (`user.team_id`, else `team.id`)
    action_id: str
    value: str
    action_ts: float
    trigger_id: str | None
    channel: str | None  # where the message is (for an ephemeral answer)
    message_ts: str | None  # the message the button is on
    intent: Intent

    @property
    def actor(self) -> str:
        """The identity the command carries: `slack:<user id>`."""
        return f"slack:{self.user}"

    @property
    def replay_key(self) -> str:
        """The same click of the same user, however often it is delivered."""
        seen = f"{self.user}|{self.trigger_id or ''}|{self.action_ts:.6f}|{self.action_id}"
        return hashlib.sha256(seen.encode()).hexdigest()


def form_payload(body: bytes) -> Mapping[str, Any]:
    """The JSON `payload` field of an interactivity request (application/x-www-form-urlencoded)."""
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=10, strict_parsing=True)
        [raw] = fields["payload"]
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError, KeyError, RecursionError):
        raise RequestRefused("malformed", "no JSON payload field", status=400) from None
    if not isinstance(payload, dict):
        raise RequestRefused("malformed", "the payload is not an object", status=400)
    return payload


def _text(value: Any, pattern: re.Pattern[str]) -> str | None:
    return value if isinstance(value, str) and pattern.match(value) else None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def click_of(payload: Mapping[str, Any]) -> Click | None:
    """The click a `block_actions` payload reports; None for other kinds of interaction;
    RequestRefused (400) for one that is not shaped like Slack's."""
    if payload.get("type") != "block_actions":
        return None
    user = _dict(payload.get("user"))
    uid = _text(user.get("id"), SLACK_ID)
    if uid is None:
        raise RequestRefused("malformed", "no valid user.id", status=400)

    def bad(detail: str) -> RequestRefused:
        return RequestRefused("malformed", detail, status=400, user=uid)

    actions = payload.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], Mapping):
        raise bad("a click has exactly one action")
    action = actions[0]
    action_id, value = action.get("action_id"), action.get("value")
    if not isinstance(action_id, str) or not isinstance(value, str) or len(value) > 300:
        raise bad("the action has no action_id or value")
    action_ts = _text(action.get("action_ts"), _ACTION_TS)
    if action_ts is None:
        raise bad("the action has no valid action_ts")
    team = _text(user.get("team_id"), _TEAM) or _text(_dict(payload.get("team")).get("id"), _TEAM)
    container = _dict(payload.get("container"))
    channel = _text(_dict(payload.get("channel")).get("id"), _CHANNEL) or _text(
        container.get("channel_id"), _CHANNEL
    )
    message_ts = _text(container.get("message_ts"), _ACTION_TS) or _text(
        _dict(payload.get("message")).get("ts"), _ACTION_TS
    )
    intent = intent_of(action_id, value, uid)
    return Click(
        user=uid,
        team=team,
        action_id=action_id,
        value=value,
        action_ts=float(action_ts),
        trigger_id=_text(payload.get("trigger_id"), _TRIGGER),
        channel=channel,
        message_ts=message_ts,
        intent=intent,
    )


def intent_of(action_id: str, value: str, user: str) -> Intent:
    """What the button asks for, from its action id and value; RequestRefused if unknown."""
    if action_id in (APPROVE_ACTION_ID, DENY_ACTION_ID):
        run_id, _, step_id = value.rpartition(":")
        if not _RUN.match(run_id) or not _STEP.match(step_id):
            raise RequestRefused("malformed", "the button names no run step", status=400, user=user)
        return DecideStep(run_id, step_id, action_id == APPROVE_ACTION_ID)
    if action_id in (APPROVE_INCIDENT_ACTION_ID, DENY_INCIDENT_ACTION_ID, ACK_INCIDENT_ACTION_ID):
        if not _INCIDENT.match(value):
            raise RequestRefused("malformed", "the button names no incident", status=400, user=user)
        if action_id == ACK_INCIDENT_ACTION_ID:
            return Acknowledge(value)
        return DecideIncident(value, action_id == APPROVE_INCIDENT_ACTION_ID)
    raise RequestRefused("unknown_action", "not a responder button", status=400, user=user)
