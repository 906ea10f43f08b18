"""Request bodies of the write operations, and the 202 answer they share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from responder.commands import AnyCommand
from responder.events.schema import SeverityName

Text = Annotated[str, Field(min_length=1, max_length=4000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusBody(_Body):
    comment: Text | None = None


class AssignBody(_Body):
    assignee: Annotated[str, Field(min_length=1, max_length=200)]


class CommentBody(_Body):
    text: Text


class SeverityBody(_Body):
    severity: SeverityName
    comment: Text | None = None


class DecisionBody(_Body):
    step: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="the waiting step (default: the one waiting)"
    )
    reason: Text | None = None


class CancelBody(_Body):
    reason: Text | None = None


class KillSwitchBody(_Body):
    on: bool
    reason: Text | None = None


class Accepted(BaseModel):
    """The command is on `responder.commands`; a worker applies it (or refuses it to the DLQ)."""

    command_id: str
    command: str
    target: str

    @classmethod
    def of(cls, command: AnyCommand, target: str) -> Accepted:
        return cls(command_id=command.id, command=command.type, target=target)
