"""Event-time progress of the input partitions, as one correlation partition hears of it (pure).

Ingest reads `responder.events` partition by partition and tells every correlation partition how
far each input partition has come (the newest event time it read there, `None` before the
first). Lateness is then judged against the slowest input partition still making progress: the
effective watermark is the minimum over the *active* partitions, so a partition that is behind
(its consumer crashed, the broker was down, its producer is slow) holds window state back
instead of making its events late. A partition that has not advanced while the others advanced
for `idle_s` seconds is idle and stops holding them back; its later events are judged against
the others, as any late event is.

Idle time is counted on an *activity clock* that runs only while some partition advances (a gap
with no progress anywhere counts at most `MAX_GAP_S`), so an outage that stops every partition
makes none of them idle: when they resume, the one that resumes last is still waited for.

No I/O and no clock of its own: callers pass the current time (monotonic seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_GAP_S = 5.0
"""The most one stretch without progress anywhere adds to the activity clock."""

NO_PROGRESS = float("-inf")


@dataclass(slots=True)
class InputPartition:
    progress: float  # the newest event time read there (epoch seconds), -inf before the first
    advanced_at: float  # the activity clock when it last advanced (or was first heard of)


class Watermarks:
    """What one correlation partition knows of the input partitions' progress."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.parts: dict[int, InputPartition] = {}
        self.activity = 0.0  # seconds during which some partition advanced
        self.last_advance: float | None = None  # caller's time of the last advance anywhere
        self.changed = False  # progress moved since the caller last saved it

    def observe(self, partition: int, progress: float | None, now: float) -> None:
        """Input `partition` has been read up to event time `progress` (None: nothing yet)."""
        seen = NO_PROGRESS if progress is None else progress
        part = self.parts.get(partition)
        if part is None:
            self.parts[partition] = InputPartition(seen, self._tick(now))
            self.changed = True
        elif seen > part.progress:
            part.progress = seen
            part.advanced_at = self._tick(now)
            self.changed = True

    def _tick(self, now: float) -> float:
        if self.last_advance is not None:
            self.activity += min(max(0.0, now - self.last_advance), MAX_GAP_S)
        self.last_advance = now
        return self.activity

    def idle(self, partition: int) -> bool:
        part = self.parts[partition]
        return self.activity - part.advanced_at > self.idle_s

    def current(self) -> float | None:
        """The effective watermark: the least progress among active partitions (-inf while one
        has read nothing yet, and while no partition is known: a message's progress comes after
        its records, so the first message of a partition may hold hours of one input
        partition's events, and none of them may make another's late); None when every known
        partition is idle (each group's own newest event then stands in)."""
        if not self.parts:
            return NO_PROGRESS
        active = [
            p.progress for p in self.parts.values() if self.activity - p.advanced_at <= self.idle_s
        ]
        return min(active) if active else None

    def cap(self, limit: float) -> None:
        """No partition's progress beyond `limit` (event time: the caller's wall clock plus the
        skew it allows); progress written before such a limit existed is brought back to it."""
        for part in self.parts.values():
            if part.progress > limit:
                part.progress = limit
                self.changed = True

    # --- changelog form -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "partitions": [
                [n, None if p.progress == NO_PROGRESS else p.progress]
                for n, p in sorted(self.parts.items())
            ]
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], idle_s: float) -> Watermarks:
        """Restored progress; every partition gets a fresh idle allowance (a restart is not
        idleness)."""
        marks = cls(idle_s)
        for number, progress in data["partitions"]:
            if not isinstance(number, int) or isinstance(number, bool):
                raise ValueError(f"bad input partition {number!r}")
            if progress is not None and (
                type(progress) not in (int, float) or not math.isfinite(progress)
            ):
                raise ValueError(f"bad progress {progress!r}")
            marks.parts[number] = InputPartition(
                NO_PROGRESS if progress is None else float(progress), 0.0
            )
        return marks
