"""Playbooks: YAML responses to incidents (schema, loader, trigger, templating, planning).

Everything in this package is pure (no Kafka, SQL or network); the durable runner builds on it:

* `load_playbooks(dir, registry)` → `PlaybookSet`; `.matching(incident_view(change), kind)`
* `step_context(...)` + `templating.render` / `templating.truthy` to prepare each step
* `plan_run(...)` for dry runs (kill switch, `replay --dry-run`)
"""

from __future__ import annotations

from responder.playbooks.loader import PlaybookSet, load_playbook_file, load_playbooks
from responder.playbooks.plan import PlannedRun, PlannedStep, plan_changes, plan_run, step_context
from responder.playbooks.schema import Guards, Mode, Playbook, Retry, Step, Trigger, Undo
from responder.playbooks.templating import TemplateError, render, truthy
from responder.playbooks.trigger import change_kind, incident_view

__all__ = [
    "Guards",
    "Mode",
    "PlannedRun",
    "PlannedStep",
    "Playbook",
    "PlaybookSet",
    "Retry",
    "Step",
    "TemplateError",
    "Trigger",
    "Undo",
    "change_kind",
    "incident_view",
    "load_playbook_file",
    "load_playbooks",
    "plan_changes",
    "plan_run",
    "render",
    "step_context",
    "truthy",
]
