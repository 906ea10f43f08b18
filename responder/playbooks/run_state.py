"""What the runner holds about one run while it advances it, and how a step stops it.

Plain data and exceptions, no I/O: the runner (`runner.py`) builds a `RunState` from the rows,
the journal (`journal.py`) records changes of it, and neither needs the other to name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from responder.playbooks.runs import PlaybookRun, StepRun
from responder.playbooks.schema import Playbook


class Pause(Exception):
    """The run waits (approval, guard); the runner releases it."""


class StepFailed(Exception):
    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass
class RunState:
    run: PlaybookRun
    steps: dict[str, StepRun]
    playbook: Playbook
    outputs: dict[str, Any] = field(default_factory=dict)
    killed: bool = False  # the kill switch (setting or live switch) is on
