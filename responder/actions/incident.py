"""`incident.update`: set status, severity or assignee of the incident, or add a comment."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from responder.actions.registry import ActionContext, ActionError, Output, action
from responder.events.schema import SeverityName


class IncidentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["open", "acknowledged", "resolved", "false_positive"] | None = None
    severity: SeverityName | None = None
    assignee: str | None = None
    comment: str | None = None


@action("incident.update", params=IncidentUpdate)
async def update_incident(params: IncidentUpdate, ctx: ActionContext) -> Output:
    """Change the incident this run responds to (status, severity, assignee, comment)."""
    if ctx.ports.incidents is None:
        raise ActionError("incident.update needs the incident store")
    return await ctx.ports.incidents.update(
        incident_id=str(ctx.incident["id"]),
        actor=f"playbook-run:{ctx.run_id}",
        **params.model_dump(exclude_none=True),
    )
