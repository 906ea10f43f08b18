"""slack.notify and http.request without a network: Block Kit content, the SSRF guard, the fakes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from responder.actions.http import AiohttpAdapter, HostAllowList, HttpRequest, http_request
from responder.actions.ports import Ports
from responder.actions.registry import REGISTRY, ActionError
from responder.actions.slack import (
    ACK_INCIDENT_ACTION_ID,
    APPROVE_ACTION_ID,
    APPROVE_INCIDENT_ACTION_ID,
    DENY_ACTION_ID,
    DENY_INCIDENT_ACTION_ID,
    SlackNotify,
    approval_blocks,
    decision_blocks,
    incident_blocks,
    notify,
    refresh_incident_message,
    who,
)
from tests.support.actions import INCIDENT, ctx
from tests.support.fakes.http import FakeHttp, response
from tests.support.fakes.slack import FakeSlack


def rendered(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


# --- Block Kit ---------------------------------------------------------------------------------


def test_incident_blocks_show_severity_title_group_count_status_and_id() -> None:
    blocks = incident_blocks(INCIDENT)

    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == ":red_circle: CRITICAL: Leaked key AKIA123 used"
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert "*Events*\n3" in fields
    assert "*Status*\nopen" in fields
    assert "*Severity*\ncritical" in fields
    assert blocks[2]["text"]["text"] == "*Group*\n• `resource.id`: AKIA123"
    assert blocks[-1]["type"] == "context"
    assert "Incident `inc-42`" in blocks[-1]["elements"][0]["text"]


def test_event_text_is_escaped_so_it_cannot_mention_or_link() -> None:
    hostile = {**INCIDENT, "group": {"actor.id": "<!channel> <https://evil.example|bank>"}}

    text = rendered(incident_blocks(hostile, note="see <@U123> & co"))

    assert "<!channel>" not in text
    assert "&lt;!channel&gt; &lt;https://evil.example|bank&gt;" in text
    assert "see &lt;@U123&gt; &amp; co" in text


def test_links_render_only_http_urls_as_links() -> None:
    blocks = incident_blocks(
        INCIDENT,
        links={"Runbook": "https://wiki.example.com/run book", "Bad": "javascript:alert(1)"},
    )

    text = rendered(blocks)
    assert "<https://wiki.example.com/run%20book|Runbook>" in text
    assert "<javascript:" not in text
    assert "Bad: `javascript:alert(1)`" in text


def test_long_titles_are_clipped_to_slack_limits_instead_of_failing() -> None:
    blocks = incident_blocks({**INCIDENT, "title": "x" * 500})

    assert len(blocks[0]["text"]["text"]) == 150
    assert blocks[0]["text"]["text"].endswith("…")


def test_approval_blocks_carry_run_and_step_in_both_buttons() -> None:
    blocks = approval_blocks(
        run_id="run-1", step_id="revoke", incident=INCIDENT, prompt="Revoke key AKIA123?"
    )

    actions = next(b for b in blocks if b["type"] == "actions")
    buttons = {e["action_id"]: e for e in actions["elements"]}
    assert set(buttons) == {APPROVE_ACTION_ID, DENY_ACTION_ID}
    assert {b["value"] for b in buttons.values()} == {"run-1:revoke"}
    assert buttons[APPROVE_ACTION_ID]["style"] == "primary"
    assert buttons[DENY_ACTION_ID]["style"] == "danger"
    assert "Revoke key AKIA123?" in rendered(blocks)
    assert "Leaked key AKIA123 used" in rendered(blocks)


@pytest.mark.parametrize(("decision", "mark"), [("approved", "Approved"), ("denied", "Denied")])
def test_decision_blocks_replace_the_buttons(decision: Any, mark: str) -> None:
    blocks = decision_blocks(
        run_id="run-1",
        step_id="revoke",
        incident=INCIDENT,
        prompt="Revoke key AKIA123?",
        decision=decision,
        by="alice",
        reason="known <test> key",
    )

    assert all(b["type"] != "actions" for b in blocks)
    assert f"*{mark}* by alice: known &lt;test&gt; key" in rendered(blocks)


def test_incident_messages_offer_acknowledge_approve_and_deny_while_open() -> None:
    """An open incident has all three buttons, each naming the incident; the footer stays last."""
    blocks = incident_blocks(INCIDENT)
    actions = next(b for b in blocks if b["type"] == "actions")
    buttons = {e["action_id"]: e["value"] for e in actions["elements"]}
    assert buttons == {
        ACK_INCIDENT_ACTION_ID: "inc-42",
        APPROVE_INCIDENT_ACTION_ID: "inc-42",
        DENY_INCIDENT_ACTION_ID: "inc-42",
    }
    assert blocks[-1]["type"] == "context"


def test_acknowledged_incidents_lose_the_ack_button_and_closed_ones_every_button() -> None:
    """No Acknowledge once acknowledged; no buttons at all on a resolved incident."""
    acked = incident_blocks({**INCIDENT, "status": "acknowledged"})
    actions = next(b for b in acked if b["type"] == "actions")
    assert ACK_INCIDENT_ACTION_ID not in {e["action_id"] for e in actions["elements"]}
    for status in ("resolved", "false_positive"):
        assert all(b["type"] != "actions" for b in incident_blocks({**INCIDENT, "status": status}))


def test_approval_blocks_say_who_may_approve_how_many_and_who_did() -> None:
    """Approvers as mentions (ids) or code (names), the quorum, and the approvals so far."""
    blocks = approval_blocks(
        run_id="run-1",
        step_id="revoke",
        incident=INCIDENT,
        prompt="Revoke?",
        approvers=["U1ABC", "group:secops", "<!channel>"],
        quorum=2,
        approvals=["slack:U1ABC"],
    )
    text = rendered(blocks)
    assert "Needs *2* approvals" in text
    assert "Approvers: <@U1ABC>, `group:secops`, `&lt;!channel&gt;`" in text
    assert "Approved so far by <@U1ABC> (1 of 2)" in text
    assert any(b["type"] == "actions" for b in blocks)
    plain = rendered(approval_blocks(run_id="r", step_id="s", incident=INCIDENT, prompt="Go?"))
    assert "Approvers" not in plain and "Needs" not in plain


def test_deciders_from_slack_are_mentioned_and_nothing_else_becomes_markup() -> None:
    """`slack:U123` renders as a mention; any other text is escaped as before."""
    assert who("slack:U1, slack:W2X, alice") == "<@U1>, <@W2X>, alice"
    assert who("slack:<!here>") == "slack:&lt;!here&gt;"
    assert who("slack:u1 token:ops") == "slack:u1 token:ops"


# --- slack.notify with the fake ----------------------------------------------------------------


def test_slack_notify_is_registered_with_its_params() -> None:
    assert REGISTRY.get("slack.notify").params is SlackNotify
    with pytest.raises(ValidationError):
        SlackNotify.model_validate({"chanel": "#typo"})


async def test_notify_posts_to_the_default_channel() -> None:
    slack = FakeSlack(default_channel="#sec")

    out = await notify(SlackNotify(text="Rotating now"), ctx(Ports(slack=slack)))

    assert out == {"sent": True, "channel": "#sec", "ts": "1700000000.000001"}
    [post] = slack.posts
    assert "Rotating now" in rendered(post["blocks"])
    assert post["text"] == "[CRITICAL] Leaked key AKIA123 used (open): Rotating now"


async def test_notify_with_ts_updates_that_message() -> None:
    slack = FakeSlack()
    first = await notify(SlackNotify(channel="#x"), ctx(Ports(slack=slack)))

    out = await notify(
        SlackNotify(channel="#x", ts=first["ts"]),
        ctx(Ports(slack=slack), {**INCIDENT, "status": "resolved"}),
    )

    assert out == first
    assert len(slack.posts) == 1
    [update] = slack.updates
    assert "*Status*\\nresolved" in rendered(update["blocks"])


async def test_notify_without_slack_is_a_logged_no_op() -> None:
    with capture_logs() as logs:
        out = await notify(SlackNotify(), ctx(Ports(slack=None)))

    assert out == {"sent": False, "reason": "slack is not configured"}
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["run_id"] == "run-1"


async def test_refresh_redraws_the_posted_message() -> None:
    slack = FakeSlack()
    posted = await notify(SlackNotify(), ctx(Ports(slack=slack)))

    await refresh_incident_message(
        slack, channel=posted["channel"], ts=posted["ts"], incident={**INCIDENT, "event_count": 9}
    )

    assert "*Events*\\n9" in rendered(slack.messages[(posted["channel"], posted["ts"])]["blocks"])


# --- the SSRF guard ----------------------------------------------------------------------------

ALLOW = HostAllowList(["hooks.example.com", "*.corp.example", "127.0.0.1:8080", "[::1]:9000"])


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/x",
        "http://hooks.example.com/x",
        "https://HOOKS.example.com./x",
        "https://hooks.example.com:443/x",
        "https://api.corp.example/v1",
        "https://a.b.corp.example/v1",
        "http://127.0.0.1:8080/hook",
        "http://[::1]:9000/",
    ],
)
def test_allowed_urls(url: str) -> None:
    assert ALLOW.check(url).scheme in {"http", "https"}


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://evil.example.com/", "host_not_allowed"),
        ("https://hooks.example.com.evil.net/", "host_not_allowed"),
        ("https://corp.example/", "host_not_allowed"),  # a wildcard is subdomains only
        ("https://hooks.example.com:8443/", "host_not_allowed"),  # no port: default port only
        ("http://127.0.0.1/", "host_not_allowed"),
        ("http://127.0.0.1:8081/", "host_not_allowed"),
        ("http://169.254.169.254/latest/meta-data/", "host_not_allowed"),
        ("http://[::1]:9001/", "host_not_allowed"),
        ("file:///etc/passwd", "scheme_not_allowed"),
        ("gopher://hooks.example.com/", "scheme_not_allowed"),
        ("hooks.example.com/x", "scheme_not_allowed"),
        ("https://user:pw@hooks.example.com/", "userinfo_not_allowed"),
        ("https://hooks.example.com@evil.net/", "userinfo_not_allowed"),
        ("https://hooks.example.com\\@evil.net/", "invalid_url"),
        ("http:///path", "invalid_url"),
    ],
)
def test_refused_urls(url: str, code: str) -> None:
    with pytest.raises(ActionError) as err:
        ALLOW.check(url)
    assert err.value.code == code
    assert not err.value.retryable


def test_userinfo_is_refused_even_for_an_allowed_host() -> None:
    with pytest.raises(ActionError) as err:
        ALLOW.check("https://hooks.example.com@hooks.example.com/")
    assert err.value.code == "userinfo_not_allowed"


def test_an_empty_allow_list_refuses_everything() -> None:
    with pytest.raises(ActionError) as err:
        HostAllowList([]).check("https://hooks.example.com/")
    assert err.value.code == "host_not_allowed"


def test_unicode_entries_match_their_idna_form() -> None:
    assert HostAllowList(["bücher.example"]).check("https://xn--bcher-kva.example/")


@pytest.mark.parametrize("entry", ["", "*", "a.*.com", "host:0", "host:http", "[::1", "a/b"])
def test_bad_entries_fail_at_startup(entry: str) -> None:
    with pytest.raises(ValueError):
        HostAllowList([entry])


async def test_adapter_refuses_before_any_connection() -> None:
    adapter = AiohttpAdapter(allowed_hosts=[])

    with pytest.raises(ActionError) as err:
        await adapter.request(
            method="GET", url="http://169.254.169.254/", headers={}, json=None, timeout_s=1
        )
    assert err.value.code == "host_not_allowed"


# --- http.request with the fake ----------------------------------------------------------------


def test_http_request_params() -> None:
    params = HttpRequest.model_validate({"url": "https://h/", "json": {"a": 1}})
    assert params.method == "POST"
    assert params.body == {"a": 1}
    with pytest.raises(ValidationError):
        HttpRequest.model_validate({"url": "https://h/", "method": "TRACE"})
    with pytest.raises(ValidationError):
        HttpRequest.model_validate({"url": "https://h/", "data": "x"})


async def test_http_request_sends_the_idempotency_key_and_default_timeout() -> None:
    http = FakeHttp(default_timeout_s=7)
    http.respond("https://h/hook", response(201, json={"id": 9}))
    params = HttpRequest.model_validate(
        {"url": "https://h/hook", "headers": {"idempotency-key": "mine", "X-A": "1"}, "json": {}}
    )

    out = await http_request(params, ctx(Ports(http=http)))

    assert out == {"status": 201, "json": {"id": 9}}
    [sent] = http.requests
    assert sent["headers"] == {"X-A": "1", "Idempotency-Key": "run-1:notify"}
    assert sent["timeout_s"] == 7
    assert sent["json"] == {}


@pytest.mark.parametrize(
    ("status", "retryable"), [(404, False), (302, False), (429, True), (503, True)]
)
async def test_http_request_non_ok_statuses(status: int, retryable: bool) -> None:
    http = FakeHttp()
    http.respond("https://h/", response(status, body="nope"))

    with pytest.raises(ActionError) as err:
        await http_request(HttpRequest(url="https://h/"), ctx(Ports(http=http)))

    assert err.value.retryable is retryable
    assert err.value.code == f"http_{status}"


async def test_http_request_ok_status_accepts_listed_statuses() -> None:
    http = FakeHttp()
    http.respond("https://h/", response(409, body="already there"))

    out = await http_request(HttpRequest(url="https://h/", ok_status=[409]), ctx(Ports(http=http)))

    assert out == {"status": 409, "body": "already there"}


async def test_http_request_without_port_is_an_error() -> None:
    with pytest.raises(ActionError, match="not configured"):
        await http_request(HttpRequest(url="https://h/"), ctx(Ports()))


async def test_fake_http_applies_the_allow_list() -> None:
    http = FakeHttp(allowed_hosts=["h"])

    with pytest.raises(ActionError) as err:
        await http_request(HttpRequest(url="https://other/"), ctx(Ports(http=http)))

    assert err.value.code == "host_not_allowed"
    assert http.requests == []
