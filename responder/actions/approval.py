"""`approval.request`: the step that pauses a run until a human approves or denies it.

The runner treats this action specially (it parks the run durably and resumes it on a decision
from `responder.commands`); this module owns its parameters so playbooks are validated like any
other step.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from responder.text.duration import parse_duration

APPROVAL_ACTION = "approval.request"
SLACK_ID = re.compile(r"^[UW][A-Z0-9]{1,30}$")  # a Slack user id (U..., W... on Enterprise Grid)
MAX_QUORUM = 20
MAX_APPROVERS = 100
# `U123` (a Slack user), `group:secops`, a responder user, `token:NAME`, `slack:U123`
Approver = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^\S")
]
Approvers = Annotated[list[Approver], Field(max_length=MAX_APPROVERS)]


def unreachable(approvers: list[str], quorum: int) -> str | None:
    """Why `quorum` distinct approvals can never come from `approvers`, if it is plain they
    cannot (fewer entries than the quorum and no group); None otherwise."""
    if not approvers or any(a.startswith("group:") for a in approvers):
        return None
    distinct = {a.removeprefix("slack:") for a in approvers}
    if len(distinct) < quorum:
        return f"quorum {quorum} cannot be reached by {len(distinct)} approvers"
    return None


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="what the approver is asked, shown in Slack, API and CLI")
    timeout: str | None = Field(
        default=None, description="e.g. 30m, 1h; unset: the playbooks.approval_timeout_s setting"
    )
    on_timeout: Literal["deny", "approve"] = "deny"
    channel: str | None = Field(default=None, description="Slack channel for the request")
    approvers: Approvers = Field(
        default_factory=list,
        description="who may decide: Slack user ids (U123), group:NAME (RESPONDER_SLACK__GROUPS), "
        "responder users (RESPONDER_SLACK__USERS maps Slack users to them), token:NAME; "
        "empty: anyone who may decide",
    )
    quorum: int = Field(
        default=1,
        ge=1,
        le=MAX_QUORUM,
        description="distinct approvals needed (one denial denies); may be a template, "
        'e.g. "{{ 2 if events | length > 10 else 1 }}"',
    )

    @model_validator(mode="after")
    def _reachable(self) -> ApprovalRequest:
        problem = unreachable(self.approvers, self.quorum)
        if problem:
            raise ValueError(problem)
        return self

    @field_validator("timeout")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and "{{" not in value:
            parse_duration(value)  # refuse `1 hour` when the playbook loads, not when it runs
        return value
