"""SLA clocks in SQL: which incidents have a breached clock now (the `sla=breached` filter) and
how many open ones do, by severity and clock (the metric). The same rule as the pure
`incidents.sla.clock`: a running clock past its target, or one stopped after it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, func, or_
from sqlmodel import Session, col, select

from responder.incidents.model import CLOSED
from responder.incidents.sla import ClockName, Targets
from responder.incidents.store import Incident
from responder.storage.intervals import seconds_between

STOPS = {ClockName.acknowledge: Incident.acknowledged_at, ClockName.resolve: Incident.resolved_at}


def clock_breached(name: ClockName, targets: Targets, now: datetime) -> ColumnElement[bool]:
    """Incidents whose clock `name` is breached at `now`."""
    stopped = col(STOPS[name])
    created = col(Incident.created_at)
    per_severity = []
    for severity, target in targets.items():
        limit = target.of(name)
        per_severity.append(
            and_(
                col(Incident.severity) == severity,
                or_(
                    and_(stopped.is_(None), created < now - limit),
                    and_(
                        stopped.is_not(None),
                        seconds_between(stopped, created) > limit.total_seconds(),
                    ),
                ),
            )
        )
    return or_(false(), *per_severity)


def breached(targets: Targets, now: datetime) -> ColumnElement[bool]:
    """Incidents with either clock breached at `now`."""
    return or_(*(clock_breached(name, targets, now) for name in ClockName))


def breach_counts(session: Session, targets: Targets, now: datetime) -> dict[tuple[str, str], int]:
    """Incidents not closed with a breached clock, by (severity, clock); zeros included."""
    counts = {(severity, name.value): 0 for severity in targets for name in ClockName}
    still_open = col(Incident.status).not_in([s.value for s in CLOSED])
    for name in ClockName:
        rows = session.exec(
            select(Incident.severity, func.count())
            .where(still_open, clock_breached(name, targets, now))
            .group_by(col(Incident.severity))
        ).all()
        for severity, n in rows:
            counts[(severity if severity in targets else "info", name.value)] += n
    return counts
