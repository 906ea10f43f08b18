"""Playbooks: YAML responses to incidents, and the durable runs that carry them out.

Pure (plain values in and out, no Kafka, SQL, files or network), re-exported here:

* `schema`: the playbook model and its load-time checks; `Trigger.matches` says whether an
  `on:` holds for an incident change
* `trigger`: the incident as templates and triggers see it (`incident_view`, `change_kind`)
* `templating`: rendering `with` / `if` / `for_each` in the sandbox of `responder.text`
* `plan`: what a run would do without doing it (`plan_run`, `plan_changes` for dry runs and
  `replay --dry-run`) and `step_context`, the variables every step's templates see
* `step_rules`: what happens next to a step (if, approvals, kill switch, approval mode,
  guards, for_each, retries, undo order), decided on plain values for the runner
* `statuses`: the run and step statuses
* `run_state`: what the runner holds about a run while advancing it

Files: `loader` reads `playbooks/*.yaml` into a `PlaybookSet` (pure once loaded).

SQL (each function runs in the caller's transaction unless it says otherwise):

* `runs`: the run and step tables, statuses and queries
* `start_sql`: `RunStarter` creates the runs an applied incident change triggers, inside the
  sink's transaction
* `journal`: every state change of a run or step, with its audit record
* `decisions`: human decisions (approve / deny, false positive → undo, the kill switch)

I/O loops: `runner` advances runs, applying the decisions of `step_rules` through the
journal and the action ports of `responder.actions`; `notify` posts approval requests and
redraws incident messages in Slack.
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
