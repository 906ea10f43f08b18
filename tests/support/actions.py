"""An incident view and an action context for action tests (unit and integration)."""

from __future__ import annotations

from typing import Any

from responder.actions.ports import Ports
from responder.actions.registry import ActionContext

INCIDENT: dict[str, Any] = {
    "id": "inc-42",
    "rule": "leaked-key-then-used",
    "kind": "credential_compromise",
    "title": "Leaked key AKIA123 used",
    "severity": "critical",
    "status": "open",
    "group": {"resource.id": "AKIA123"},
    "event_count": 3,
    "first_seen": "2026-11-25T09:00:00+00:00",
    "last_seen": "2026-11-25T09:05:00+00:00",
}


def ctx(ports: Ports, incident: dict[str, Any] | None = None) -> ActionContext:
    return ActionContext(
        run_id="run-1", step_id="notify", ports=ports, incident=incident or INCIDENT
    )
