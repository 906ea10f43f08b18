"""Telling humans a run needs them: Slack approval requests, and the update once decided.

Best effort by design: the request is always visible through the CLI/API (`responder runs`),
so a Slack outage or a missing token never blocks a run; it is logged and the notice is None.
"""

from __future__ import annotations

from typing import Any

import structlog

from responder.actions.ports import Ports
from responder.actions.registry import ActionError
from responder.actions.slack import approval_blocks, decision_blocks, incident_text
from responder.playbooks.runs import PlaybookRun, StepRun

log = structlog.get_logger(__name__)


class Notifier:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    async def ask(self, run: PlaybookRun, step_id: str, prompt: str) -> dict[str, Any] | None:
        slack = self.ports.slack
        if slack is None:
            log.info("approval requested (slack not configured)", step=step_id, prompt=prompt)
            return None
        try:
            sent = await slack.post_message(
                channel=slack.default_channel,
                text=incident_text(run.incident, note=prompt),
                blocks=approval_blocks(
                    run_id=run.id, step_id=step_id, incident=run.incident, prompt=prompt
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
