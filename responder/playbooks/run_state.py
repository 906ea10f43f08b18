"""What the runner holds about one run while it advances it, and how a step stops it.

Plain data and exceptions, no I/O: the runner (`runner.py`) builds a `RunState` from the rows,
the journal (`journal.py`) records changes of it, and neither needs the other to name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from responder.playbooks.runs import PlaybookRun, StepRun
from responder.playbooks.schema import Playbook
from responder.playbooks.step_rules import Fail


class Pause(Exception):
    """The run waits (approval, guard); the runner releases it."""


class LeaseLost(Pause):
    """Another runner holds the run now (this one's lease ran out and it claimed the run): this
    runner starts no further action of it."""


class StepFailed(Exception):
    """A step failed (`step_rules.Fail`); the runner records it and fails the run or goes on."""

    def __init__(self, fail: Fail, partial: list[Any] | None = None) -> None:
        super().__init__(fail.reason)
        self.fail = fail
        self.attempts = fail.attempts
        # a for_each step that failed at an item: the outputs of the items before it, which
        # took effect and are undone on a false positive (`step_rules.undo_order`)
        self.partial = partial


@dataclass
class RunState:
    run: PlaybookRun
    steps: dict[str, StepRun]
    playbook: Playbook
    events: list[dict[str, Any]] = field(default_factory=list)  # `runs.run_events`
    outputs: dict[str, Any] = field(default_factory=dict)
    killed: bool = False  # the kill switch (setting or live switch) is on
    secrets: set[str] = field(default_factory=set)  # masked by key so far: mask them anywhere
