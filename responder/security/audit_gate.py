"""How many refusals a minute are written to the audit log one by one (pure: the clock is
passed in). Beyond that they are counted, and the next record written says how many were left
out, so a flood of forged requests cannot flood the hash chain, which every writer serializes on.
Used for refused Slack clicks and refused (forged) commands.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AuditGate:
    per_minute: int = 30
    _window: float = 0.0
    _admitted: int = 0
    _suppressed: int = 0

    def admit(self, now: float) -> tuple[bool, int]:
        """(whether to write this one, how many were left out before it and are now told)."""
        if now - self._window >= 60:
            self._window, self._admitted = now, 0
        if self._admitted >= self.per_minute:
            self._suppressed += 1
            return False, 0
        self._admitted += 1
        told, self._suppressed = self._suppressed, 0
        return True, told
