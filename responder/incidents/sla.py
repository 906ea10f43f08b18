"""SLA clocks: how long an incident may wait for acknowledgement and for resolution. Pure.

Both clocks start when responder opened the incident (`created_at`): nobody could act on it
before. The acknowledge clock stops the first time the incident leaves `open` (acknowledged,
resolved or false positive); the resolve clock stops when it is closed, and runs again if the
incident is reopened. A clock that stopped after its target, or runs past it, is breached; a
running clock with a quarter of its target or less left is at risk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from responder.events.schema import Severity
from responder.settings import SlaSettings

AT_RISK = 0.25  # the share of the target left when a running clock is at risk


class ClockState(StrEnum):
    on_track = "on_track"
    at_risk = "at_risk"
    met = "met"
    breached = "breached"


class ClockName(StrEnum):
    acknowledge = "acknowledge"
    resolve = "resolve"


@dataclass(frozen=True)
class Target:
    acknowledge: timedelta
    resolve: timedelta

    def of(self, clock: ClockName) -> timedelta:
        return self.acknowledge if clock == ClockName.acknowledge else self.resolve


Targets = Mapping[str, Target]
"""By severity name."""


def targets(settings: SlaSettings) -> dict[str, Target]:
    """The per-severity targets of the settings."""
    return {
        name: Target(
            timedelta(seconds=getattr(settings, f"{name}_acknowledge_s")),
            timedelta(seconds=getattr(settings, f"{name}_resolve_s")),
        )
        for name in Severity.names()
    }


@dataclass(frozen=True)
class Clock:
    name: ClockName
    target: timedelta
    due_at: datetime
    stopped_at: datetime | None
    state: ClockState
    remaining: timedelta
    """Time left (negative once overdue); for a stopped clock, how much it had left then."""


@dataclass(frozen=True)
class Sla:
    acknowledge: Clock
    resolve: Clock

    @property
    def breached(self) -> bool:
        return ClockState.breached in (self.acknowledge.state, self.resolve.state)

    @property
    def worst(self) -> ClockState:
        """The state that deserves an analyst's eye first."""
        for state in (ClockState.breached, ClockState.at_risk, ClockState.on_track):
            if state in (self.acknowledge.state, self.resolve.state):
                return state
        return ClockState.met


def clock(
    name: ClockName, target: timedelta, started: datetime, stopped: datetime | None, now: datetime
) -> Clock:
    due = started + target
    end = stopped if stopped is not None else now
    remaining = due - end
    if stopped is not None:
        state = ClockState.met if stopped <= due else ClockState.breached
    elif now > due:
        state = ClockState.breached
    elif remaining <= target * AT_RISK:
        state = ClockState.at_risk
    else:
        state = ClockState.on_track
    return Clock(name, target, due, stopped, state, remaining)


def sla(
    *,
    severity: str,
    created_at: datetime,
    acknowledged_at: datetime | None,
    resolved_at: datetime | None,
    now: datetime,
    targets: Targets,
) -> Sla:
    """The incident's two clocks at `now` (an unknown severity gets the `info` targets)."""
    target = targets.get(severity) or targets["info"]
    return Sla(
        acknowledge=clock(
            ClockName.acknowledge, target.acknowledge, created_at, acknowledged_at, now
        ),
        resolve=clock(ClockName.resolve, target.resolve, created_at, resolved_at, now),
    )
