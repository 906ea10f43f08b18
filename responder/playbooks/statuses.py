"""Run and step statuses: the states the runner moves runs and steps through.

Plain strings (they are stored as such in `playbook_runs.status` and `playbook_steps.status`),
in a module of their own so the pure step rules (`step_rules`) and the SQL tables (`runs`,
which re-exports them) share them without the rules depending on the tables.
"""

from __future__ import annotations

# Run statuses. Active ones are picked up by the runner; the others are final or need a human.
PENDING, RUNNING, WAITING, UNDOING = "pending", "running", "waiting", "undoing"
COMPLETED, FAILED, DENIED, BLOCKED, UNDONE = (
    "completed",
    "failed",
    "denied",
    "blocked_by_guard",
    "undone",
)
ACTIVE = (PENDING, RUNNING, WAITING, UNDOING)
CANCELLED = "cancelled"  # by an analyst: final; the runner records nothing more on it
CANCELLABLE = (PENDING, RUNNING, WAITING, BLOCKED)

# Step statuses.
STEP_RUNNING, STEP_DONE, STEP_FAILED, STEP_SKIPPED, STEP_PLANNED = (
    "running",
    "completed",
    "failed",
    "skipped",
    "planned",
)
STEP_WAITING, STEP_DENIED, STEP_BLOCKED = "waiting_approval", "denied", "blocked_by_guard"
STEP_UNDONE, STEP_UNDO_FAILED = "undone", "undo_failed"
STEP_CANCELLED = "cancelled"  # was waiting for a decision when its run was cancelled
FINISHED_STEPS = (STEP_DONE, STEP_FAILED, STEP_SKIPPED, STEP_PLANNED, STEP_UNDONE, STEP_UNDO_FAILED)


__all__ = [
    "ACTIVE",
    "BLOCKED",
    "CANCELLABLE",
    "CANCELLED",
    "COMPLETED",
    "DENIED",
    "FAILED",
    "FINISHED_STEPS",
    "PENDING",
    "RUNNING",
    "STEP_BLOCKED",
    "STEP_CANCELLED",
    "STEP_DENIED",
    "STEP_DONE",
    "STEP_FAILED",
    "STEP_PLANNED",
    "STEP_RUNNING",
    "STEP_SKIPPED",
    "STEP_UNDONE",
    "STEP_UNDO_FAILED",
    "STEP_WAITING",
    "UNDOING",
    "UNDONE",
    "WAITING",
]
