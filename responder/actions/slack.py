"""`slack.notify`: post (or update) an incident message in Slack, and the Block Kit it is made of.

The message layout lives here because several callers must render an incident the same way:
this action, the approval flow (its Approve/Deny buttons are answered through Slack
interactivity: `responder.service.slack`), the runner, which refreshes a posted message when the
incident changes, and the Slack front end, which redraws a request as votes come in. The block
builders are pure functions returning JSON-ready dicts; only `SlackWebAdapter` talks to Slack.

Text that comes from events (titles, group values) is escaped before it reaches mrkdwn: Slack
reads `<...>` as links and mentions, and an event must not be able to page `@channel` or dress up
a link. Playbook links go through `links`, which only renders http(s) URLs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import aiohttp
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.web.async_client import AsyncWebClient

from responder.actions.approval import SLACK_ID
from responder.actions.ports import SlackPort
from responder.actions.registry import ActionContext, ActionError, Output, action
from responder.security.redact import scrub_any

log = structlog.get_logger(__name__)

APPROVE_ACTION_ID = "approval.approve"
DENY_ACTION_ID = "approval.deny"
APPROVAL_BLOCK_ID = "approval"
# buttons on incident messages; their value is the incident id
ACK_INCIDENT_ACTION_ID = "incident.ack"
APPROVE_INCIDENT_ACTION_ID = "incident.approve"
DENY_INCIDENT_ACTION_ID = "incident.deny"
INCIDENT_BLOCK_ID = "incident"
CLOSED_STATUSES = frozenset({"resolved", "false_positive"})
_SLACK_ACTOR = re.compile(r"\bslack:([UW][A-Z0-9]{1,30})\b")

SEVERITY_EMOJI = {
    "critical": ":red_circle:",
    "high": ":large_orange_circle:",
    "medium": ":large_yellow_circle:",
    "low": ":large_blue_circle:",
    "info": ":white_circle:",
}
# Slack's documented limits; the SDK's models refuse longer text, so we clip instead of failing.
HEADER_MAX = 150
FIELD_MAX = 2000
TEXT_MAX = 3000
# Errors that a later attempt may not hit: throttling and Slack-side trouble.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable"}
)


class SlackWebAdapter:
    """`SlackPort` over the Slack Web API (slack-sdk's `AsyncWebClient`).

    The SDK's own retry handlers are turned off: the runner owns retries (attempts and backoff
    come from the playbook step), and a silent second attempt of `chat.postMessage` after a
    dropped connection would post the message twice.
    """

    def __init__(
        self,
        *,
        token: SecretStr,
        base_url: str | None = None,
        default_channel: str,
        timeout_s: int = 10,
    ) -> None:
        self._default_channel = default_channel
        self._base_url = base_url
        extra: dict[str, Any] = {}
        if base_url:
            # The SDK joins the method name onto base_url with urljoin: it needs the trailing /.
            extra["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
        self._client = AsyncWebClient(
            token=token.get_secret_value(), timeout=timeout_s, retry_handlers=[], **extra
        )

    def __repr__(self) -> str:  # never the token
        return f"SlackWebAdapter(base_url={self._base_url!r}, channel={self._default_channel!r})"

    @property
    def default_channel(self) -> str:
        return self._default_channel

    async def post_message(
        self, *, channel: str, text: str, blocks: list[dict[str, Any]]
    ) -> Mapping[str, Any]:
        return await self._call("chat.postMessage", channel=channel, text=text, blocks=blocks)

    async def update_message(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> Mapping[str, Any]:
        return await self._call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)

    async def post_ephemeral(self, *, channel: str, user: str, text: str) -> Mapping[str, Any]:
        """A message only `user` sees (a refusal, a confirmation): chat.postEphemeral."""
        return await self._call(
            "chat.postEphemeral", expect="message_ts", channel=channel, user=user, text=text
        )

    async def _call(self, method: str, expect: str = "ts", **payload: Any) -> Mapping[str, Any]:
        payload = scrub_any(payload)  # no secret from an event or an output reaches a channel
        try:
            response = await self._client.api_call(method, json=payload)
        except SlackApiError as exc:
            # `from None`: the SDK's response object carries the request headers (the token).
            raise _api_error(method, exc) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActionError(
                f"slack {method}: cannot reach Slack ({type(exc).__name__})",
                retryable=True,
                code="connection_error",
            ) from None
        data = response.data
        if not isinstance(data, dict) or expect not in data:
            raise ActionError(f"slack {method}: unexpected answer", code="bad_response")
        if expect == "ts" and "channel" not in data:
            raise ActionError(f"slack {method}: unexpected answer", code="bad_response")
        return data


def _api_error(method: str, exc: SlackApiError) -> ActionError:
    response = exc.response
    status = int(response.status_code)
    data = response.data if isinstance(response.data, dict) else {}
    error = str(data.get("error") or f"http_{status}")
    retryable = status == 429 or status >= 500 or error in RETRYABLE_ERRORS
    message = f"slack {method} failed: {error} (HTTP {status})"
    retry_after = response.headers.get("Retry-After") if response.headers else None
    if retry_after:
        message += f", retry after {retry_after}s"
    return ActionError(message, retryable=retryable, code=error)


# --- Block Kit ---------------------------------------------------------------------------------


def escape(text: object) -> str:
    """Slack's mrkdwn escaping: `&`, `<`, `>` are the only control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def who(text: object) -> str:
    """`escape(text)` with each `slack:U123` in it shown as a mention of that user (`<@U123>`):
    the ids are checked, so nothing but a user mention can come out of it."""
    return _SLACK_ACTOR.sub(lambda m: f"<@{m.group(1)}>", escape(text))


def _approver(entry: str) -> str:
    """An approver entry for people: `U123` and `slack:U123` as mentions, the rest escaped."""
    bare = entry.removeprefix("slack:")
    return f"<@{bare}>" if SLACK_ID.match(bare) else f"`{escape(entry)}`"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _severity(incident: Mapping[str, Any]) -> str:
    return str(incident.get("severity") or "info").lower()


def incident_text(incident: Mapping[str, Any], *, note: str | None = None) -> str:
    """The plain fallback `text` (notifications, screen readers) that goes with the blocks."""
    title = incident.get("title") or incident.get("id") or "incident"
    text = f"[{_severity(incident).upper()}] {escape(title)} ({escape(incident.get('status', 'open'))})"
    if note:
        text += f": {escape(note)}"
    return _clip(text, TEXT_MAX)


def _header(incident: Mapping[str, Any]) -> HeaderBlock:
    severity = _severity(incident)
    emoji = SEVERITY_EMOJI.get(severity, ":white_circle:")
    title = str(incident.get("title") or "Incident")
    text = f"{emoji} {severity.upper()}: {title}"
    return HeaderBlock(text=PlainTextObject(text=_clip(text, HEADER_MAX), emoji=True))


def _facts(incident: Mapping[str, Any]) -> SectionBlock:
    def field(name: str, key: str, code: bool = False) -> str:
        value = escape(incident.get(key, "-"))
        return _clip(f"*{name}*\n" + (f"`{value}`" if code else value), FIELD_MAX)

    return SectionBlock(
        fields=[
            MarkdownTextObject(text=text)
            for text in (
                field("Severity", "severity"),
                field("Status", "status"),
                field("Events", "event_count"),
                field("Kind", "kind"),
                field("Rule", "rule", code=True),
                field("First seen", "first_seen"),
                field("Last seen", "last_seen"),
            )
        ]
    )


def _group(incident: Mapping[str, Any]) -> SectionBlock | None:
    group = incident.get("group") or {}
    if not isinstance(group, Mapping) or not group:
        return None
    lines = [f"• `{escape(path)}`: {escape(value)}" for path, value in group.items()]
    return SectionBlock(
        text=MarkdownTextObject(text=_clip("*Group*\n" + "\n".join(lines), TEXT_MAX))
    )


def _link(label: str, url: str) -> str:
    if not url.lower().startswith(("https://", "http://")):
        return f"{escape(label)}: `{escape(url)}`"  # shown, never clickable
    for char, code in (("|", "%7C"), ("<", "%3C"), (">", "%3E"), (" ", "%20")):
        url = url.replace(char, code)
    return f"<{url}|{escape(label).replace('|', '¦')}>"


def _footer(incident: Mapping[str, Any], *extra: str) -> ContextBlock:
    parts = [f"Incident `{escape(incident.get('id', '-'))}`", *extra]
    return ContextBlock(elements=[MarkdownTextObject(text=_clip(" · ".join(parts), TEXT_MAX))])


def _blast(incident: Mapping[str, Any]) -> SectionBlock | None:
    """`incident.blast_radius` in a few lines: its size, the models, endpoints and what is
    critical (the full list is in the incident)."""
    radius = incident.get("blast_radius")
    if not isinstance(radius, Mapping) or not radius.get("size"):
        return None
    lines = [f"*Blast radius*: {escape(radius['size'])} assets"]
    models = [str(m) for m in radius.get("models", [])]
    endpoints = [str(e.get("id")) for e in radius.get("endpoints", []) if isinstance(e, Mapping)]
    for label, names in (("models", models), ("endpoints", endpoints)):
        if names:
            lines.append(f"• {label}: " + ", ".join(f"`{escape(n)}`" for n in names[:10]))
    critical = [str(c) for c in radius.get("critical", [])]
    if critical:
        lines.append(":warning: critical: " + ", ".join(f"`{escape(c)}`" for c in critical[:10]))
    return SectionBlock(text=MarkdownTextObject(text=_clip("\n".join(lines), TEXT_MAX)))


def _summary(incident: Mapping[str, Any]) -> list[Block]:
    blocks: list[Block] = [_header(incident), _facts(incident)]
    for extra in (_group(incident), _blast(incident)):
        if extra is not None:
            blocks.append(extra)
    return blocks


def _dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]


def incident_buttons(incident: Mapping[str, Any]) -> ActionsBlock | None:
    """Acknowledge (while open), Approve / Deny (what this incident's playbook waits for), none
    once the incident is closed; each button's value is the incident id."""
    status = str(incident.get("status") or "open")
    if status in CLOSED_STATUSES or not incident.get("id"):
        return None
    value = str(incident["id"])
    elements = []
    if status == "open":
        elements.append(
            ButtonElement(
                text=PlainTextObject(text="Acknowledge"),
                action_id=ACK_INCIDENT_ACTION_ID,
                value=value,
            )
        )
    elements += _approve_deny(
        (APPROVE_INCIDENT_ACTION_ID, DENY_INCIDENT_ACTION_ID),
        value,
        "Approve?",
        "Approve the step this incident's playbook waits for?",
    )
    return ActionsBlock(block_id=INCIDENT_BLOCK_ID, elements=elements)


def _approve_deny(
    action_ids: tuple[str, str], value: str, title: str, question: str
) -> list[ButtonElement]:
    """Approve (asking `question` to confirm) and Deny buttons carrying `value`."""
    approve, deny = action_ids
    confirm = ConfirmObject(title=title, text=question, confirm="Approve", deny="Cancel")
    return [
        ButtonElement(
            text=PlainTextObject(text="Approve"),
            action_id=approve,
            value=value,
            style="primary",
            confirm=confirm,
        ),
        ButtonElement(
            text=PlainTextObject(text="Deny"), action_id=deny, value=value, style="danger"
        ),
    ]


def incident_blocks(
    incident: Mapping[str, Any],
    *,
    note: str | None = None,
    links: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The incident message: header with severity and title, facts, group, note, links and the
    analyst's buttons (`incident_buttons`)."""
    blocks = _summary(incident)
    if note:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(escape(note), TEXT_MAX))))
    if links:
        text = "*Links*: " + " · ".join(_link(label, url) for label, url in links.items())
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_clip(text, TEXT_MAX))))
    buttons = incident_buttons(incident)
    if buttons is not None:
        blocks.append(buttons)
    blocks.append(_footer(incident))
    return _dicts(blocks)


def _prompt(prompt: str) -> SectionBlock:
    text = _clip(f"*Approval needed*\n{escape(prompt)}", TEXT_MAX)
    return SectionBlock(text=MarkdownTextObject(text=text))


def _policy(approvers: Sequence[str], quorum: int, approvals: Sequence[str]) -> ContextBlock | None:
    """Who may decide, how many must, and who approved so far (none of it when anyone may and
    one approval does)."""
    parts = []
    if quorum > 1:
        parts.append(f"Needs *{quorum}* approvals")
    if approvers:
        parts.append("Approvers: " + ", ".join(_approver(a) for a in approvers))
    if approvals:
        parts.append(
            f"Approved so far by {', '.join(who(a) for a in approvals)} ({len(approvals)} of {quorum})"
        )
    if not parts:
        return None
    return ContextBlock(elements=[MarkdownTextObject(text=_clip(" · ".join(parts), TEXT_MAX))])


def approval_blocks(
    *,
    run_id: str,
    step_id: str,
    incident: Mapping[str, Any],
    prompt: str,
    approvers: Sequence[str] = (),
    quorum: int = 1,
    approvals: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The incident plus Approve / Deny buttons; each button's value names the paused step.
    With approvers or a quorum, a line says who may decide and who approved so far."""
    value = f"{run_id}:{step_id}"
    buttons = ActionsBlock(
        block_id=APPROVAL_BLOCK_ID,
        elements=_approve_deny(
            (APPROVE_ACTION_ID, DENY_ACTION_ID),
            value,
            "Approve this step?",
            _clip(escape(prompt), 300),
        ),
    )
    footer = _footer(incident, f"run `{escape(run_id)}`", f"step `{escape(step_id)}`")
    policy = _policy(approvers, quorum, approvals)
    extra: list[Block] = [policy] if policy is not None else []
    return _dicts([*_summary(incident), _prompt(prompt), *extra, buttons, footer])


def decision_blocks(
    *,
    run_id: str,
    step_id: str,
    incident: Mapping[str, Any],
    prompt: str,
    decision: Literal["approved", "denied"],
    by: str,
    reason: str | None = None,
) -> list[dict[str, Any]]:
    """The approval message after the decision: the buttons give way to who decided what.

    Sent with chat.update so nobody can click a button of a request that is already decided.
    """
    mark = ":white_check_mark:" if decision == "approved" else ":no_entry:"
    text = f"{mark} *{decision.capitalize()}* by {who(by)}"
    if reason:
        text += f": {escape(reason)}"
    outcome = SectionBlock(
        block_id=APPROVAL_BLOCK_ID, text=MarkdownTextObject(text=_clip(text, TEXT_MAX))
    )
    footer = _footer(incident, f"run `{escape(run_id)}`", f"step `{escape(step_id)}`")
    return _dicts([*_summary(incident), _prompt(prompt), outcome, footer])


# --- the action --------------------------------------------------------------------------------


class SlackNotify(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str | None = Field(default=None, description="unset: the slack.channel setting")
    text: str | None = Field(default=None, description="a note shown under the incident summary")
    links: dict[str, str] = Field(default_factory=dict, description="label → http(s) URL")
    ts: str | None = Field(
        default=None,
        description="update this message instead of posting, e.g. {{ steps.notify.output.ts }}; "
        "Slack wants the channel id then: {{ steps.notify.output.channel }}",
    )


@action("slack.notify", params=SlackNotify)
async def notify(params: SlackNotify, ctx: ActionContext) -> Output:
    """Post the incident to a Slack channel (or update a posted message)."""
    port = ctx.ports.slack
    if port is None:
        # Not an error: a deployment without Slack still runs its playbooks; the output says so.
        log.warning(
            "slack.notify skipped: slack is not configured",
            run_id=ctx.run_id,
            step_id=ctx.step_id,
            incident_id=ctx.incident.get("id"),
        )
        return {"sent": False, "reason": "slack is not configured"}
    channel = params.channel or port.default_channel
    blocks = incident_blocks(ctx.incident, note=params.text, links=params.links)
    text = incident_text(ctx.incident, note=params.text)
    if params.ts:
        result = await port.update_message(channel=channel, ts=params.ts, text=text, blocks=blocks)
    else:
        result = await port.post_message(channel=channel, text=text, blocks=blocks)
    return {"sent": True, "channel": str(result["channel"]), "ts": str(result["ts"])}


async def refresh_incident_message(
    port: SlackPort, *, channel: str, ts: str, incident: Mapping[str, Any]
) -> Mapping[str, Any]:
    """Redraw a posted incident message (new status, more events) in place."""
    return await port.update_message(
        channel=channel, ts=ts, text=incident_text(incident), blocks=incident_blocks(incident)
    )
