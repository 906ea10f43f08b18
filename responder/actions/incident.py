"""`incident.update`: set status, severity or assignee of the incident, or add a comment.

Its parameters are `IncidentEdit`, the same edit an analyst's command makes.
"""

from __future__ import annotations

from responder.actions.registry import ActionContext, ActionError, Output, action
from responder.incidents.model import IncidentEdit


@action("incident.update", params=IncidentEdit)
async def update_incident(params: IncidentEdit, ctx: ActionContext) -> Output:
    """Change the incident this run responds to (status, severity, assignee, comment)."""
    if ctx.ports.incidents is None:
        raise ActionError("incident.update needs the incident store")
    return await ctx.ports.incidents.update(
        str(ctx.incident["id"]), params, actor=f"playbook-run:{ctx.run_id}"
    )
