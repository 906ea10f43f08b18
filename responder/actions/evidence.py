"""`evidence.snapshot`: keep the incident's evidence before a playbook changes anything.

The step writes a write-once evidence bundle (the incident, its events, the playbook runs so
far, the affected models as the registry describes them, the settings) and records the bundle's
manifest hash in the audit chain (action `evidence.snapshot`, subject: the incident id); see
`responder.evidence`. It changes nothing outside responder, so it is not a side effect: it runs
under the kill switch and in approval mode without asking, and a playbook that requires
evidence (`guards.require_evidence`) lets its side-effecting steps run once it has.

Idempotent: a retry of the same step (same idempotency key) returns the snapshot it recorded.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from responder.actions.registry import ActionContext, ActionError, Output, action, configured

SNAPSHOT_ACTION = "evidence.snapshot"
"""The action's name, and the audit action of the record that holds a bundle's manifest hash."""


class EvidenceSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        default=None, max_length=1000, description="why, recorded in the manifest"
    )


@action(SNAPSHOT_ACTION, params=EvidenceSnapshot, side_effect=False)
async def snapshot(params: EvidenceSnapshot, ctx: ActionContext) -> Output:
    """Write an evidence bundle of the incident and record its hash in the audit chain."""
    evidence = configured(ctx.ports.evidence, "the evidence store")
    try:
        return await evidence.snapshot(
            str(ctx.incident["id"]),
            actor=f"playbook-run:{ctx.run_id}",
            key=ctx.idempotency_key,
            reason=params.reason,
        )
    except LookupError as exc:
        raise ActionError(str(exc), code="not_found") from None
