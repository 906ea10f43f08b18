"""`approval.request`: the step that pauses a run until a human approves or denies it.

The runner treats this action specially (it parks the run durably and resumes it on a decision
from `responder.commands`); this module owns its parameters so playbooks are validated like any
other step.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from responder.text.duration import parse_duration

APPROVAL_ACTION = "approval.request"


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="what the approver is asked, shown in Slack, API and CLI")
    timeout: str | None = Field(
        default=None, description="e.g. 30m, 1h; unset: the playbooks.approval_timeout_s setting"
    )
    on_timeout: Literal["deny", "approve"] = "deny"
    channel: str | None = Field(default=None, description="Slack channel for the request")

    @field_validator("timeout")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and "{{" not in value:
            parse_duration(value)  # refuse `1 hour` when the playbook loads, not when it runs
        return value
