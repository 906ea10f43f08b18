"""Telling humans a run needs them: Slack approval requests, their redraw as votes come in, and
the update once decided.

Best effort by design: the request is always visible through the CLI/API (`responder runs`),
so a Slack outage or a missing token never blocks a run; it is logged and the notice is None.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlmodel import Session

from responder.actions.ports import Ports
from responder.actions.registry import ActionError
from responder.actions.slack import (
    approval_blocks,
    decision_blocks,
    incident_text,
    refresh_incident_message,
)
from responder.events.schema import rfc3339
from responder.incidents.store import Incident
from responder.playbooks.quorum import Policy, Vote
from responder.playbooks.runs import PlaybookRun, StepRun, now, stale_messages

log = structlog.get_logger(__name__)


class Notifier:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    async def refresh(self, db: Callable[..., Awaitable[Any]]) -> int:
        """Redraw posted incident messages whose incident changed since (chat.update)."""
        slack = self.ports.slack
        if slack is None:
            return 0
        stale: list[tuple[StepRun, Incident]] = await db(stale_messages)
        for step, incident in stale:
            for posted in step.output if isinstance(step.output, list) else [step.output]:
                if not isinstance(posted, dict) or not posted.get("ts"):
                    continue
                try:
                    await refresh_incident_message(
                        slack,
                        channel=str(posted["channel"]),
                        ts=str(posted["ts"]),
                        incident=incident_card(incident),
                    )
                except ActionError as exc:
                    log.warning("incident message not redrawn", ts=posted["ts"], error=str(exc))
            await db(_drawn, step.run_id, step.step_id)
        return len(stale)

    async def ask(
        self, run: PlaybookRun, step_id: str, prompt: str, policy: Policy | None = None
    ) -> dict[str, Any] | None:
        slack = self.ports.slack
        if slack is None:
            log.info("approval requested (slack not configured)", step=step_id, prompt=prompt)
            return None
        policy = policy or Policy()
        try:
            sent = await slack.post_message(
                channel=slack.default_channel,
                text=incident_text(run.incident, note=prompt),
                blocks=approval_blocks(
                    run_id=run.id,
                    step_id=step_id,
                    incident=run.incident,
                    prompt=prompt,
                    approvers=policy.approvers,
                    quorum=policy.quorum,
                ),
            )
        except ActionError as exc:
            log.warning("approval request not posted to slack", step=step_id, error=str(exc))
            return None
        return {"channel": sent.get("channel"), "ts": sent.get("ts"), "prompt": prompt}

    async def decided(
        self, run: PlaybookRun, step_id: str, row: StepRun, output: dict[str, Any]
    ) -> None:
        slack, notice = self.ports.slack, row.notice or {}
        if slack is None or not notice.get("ts"):
            return
        try:
            await slack.update_message(
                channel=str(notice["channel"]),
                ts=str(notice["ts"]),
                text=incident_text(run.incident, note=str(notice.get("prompt", ""))),
                blocks=decision_blocks(
                    run_id=run.id,
                    step_id=step_id,
                    incident=run.incident,
                    prompt=str(notice.get("prompt", "")),
                    decision="approved" if output["approved"] else "denied",
                    by=str(output["decided_by"]),
                    reason=output.get("reason"),
                ),
            )
        except ActionError as exc:
            log.warning("approval message not updated", step=step_id, error=str(exc))

    async def votes_so_far(self, run: PlaybookRun, row: StepRun) -> None:
        """Redraw a request that is still waiting with the approvals it has (buttons stay)."""
        slack, notice = self.ports.slack, row.notice or {}
        if slack is None or not notice.get("ts"):
            return
        approval = row.approval or {}
        policy = Policy.from_json(approval)
        votes = [Vote.from_json(v) for v in approval.get("votes") or []]
        prompt = str(notice.get("prompt", ""))
        try:
            await slack.update_message(
                channel=str(notice["channel"]),
                ts=str(notice["ts"]),
                text=incident_text(run.incident, note=prompt),
                blocks=approval_blocks(
                    run_id=run.id,
                    step_id=row.step_id,
                    incident=run.incident,
                    prompt=prompt,
                    approvers=policy.approvers,
                    quorum=policy.quorum,
                    approvals=[v.by for v in votes if v.approve],
                ),
            )
        except ActionError as exc:
            log.warning("approval message not updated", step=row.step_id, error=str(exc))


def incident_card(row: Incident) -> dict[str, Any]:
    """What an incident message shows, from the stored incident (not the run's snapshot)."""
    return {
        "id": row.id,
        "rule": row.rule,
        "kind": row.kind,
        "title": row.title,
        "severity": row.severity,
        "status": row.status,
        "group": row.group,
        "event_count": row.event_count,
        "first_seen": rfc3339(row.first_seen),
        "last_seen": rfc3339(row.last_seen),
    }


def _drawn(session: Session, run_id: str, step_id: str) -> None:
    step = session.get(StepRun, (run_id, step_id))
    if step is not None:
        step.refreshed_at = now()
        session.add(step)
