"""What each page shows, read through the service layer (the API's own queries), plus the
filters the queue understands. Every function takes a Session and returns view models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

from sqlmodel import Session

from responder.events.schema import Severity
from responder.incidents.model import IncidentStatus
from responder.incidents.sla import Targets
from responder.playbooks.statuses import BLOCKED, STEP_BLOCKED, STEP_WAITING, WAITING
from responder.service import incidents as incident_ops
from responder.service import runs as run_ops
from responder.service.identity import Principal, Role, permits
from responder.service.views import IncidentDetail, IncidentView, RunDetail, StepView

QUEUE_LIMIT = 100
ACTIVE = ("open", "acknowledged")
STATUS_CHOICES = ("active", *(s.value for s in IncidentStatus), "all")
SEVERITY_CHOICES = tuple(reversed(Severity.names()))


@dataclass(frozen=True)
class Can:
    """What the logged-in role may do: the buttons a page shows (the server checks again)."""

    act: bool  # acknowledge, assign, comment, resolve, false positive
    decide: bool  # approve or deny a waiting step

    @classmethod
    def of(cls, principal: Principal) -> Can:
        return cls(
            act=permits(principal.role, Role.analyst),
            decide=permits(principal.role, Role.responder),
        )


@dataclass(frozen=True)
class QueueFilter:
    status: str = "active"
    severity: str = ""
    sla: Literal["", "breached"] = ""
    q: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> QueueFilter:
        """From a query string; an unknown value means no filter on that field."""
        status = params.get("status", "active")
        severity = params.get("severity", "")
        return cls(
            status=status if status in STATUS_CHOICES else "active",
            severity=severity if severity in SEVERITY_CHOICES else "",
            sla="breached" if params.get("sla") == "breached" else "",
            q=params.get("q", "").strip()[:200],
        )

    def query(self) -> str:
        fields = {"status": self.status, "severity": self.severity, "sla": self.sla, "q": self.q}
        return urlencode({k: v for k, v in fields.items() if v})

    def incident_filter(self) -> incident_ops.IncidentFilter:
        status: tuple[str, ...] = ()
        if self.status == "active":
            status = ACTIVE
        elif self.status != "all":
            status = (self.status,)
        return incident_ops.IncidentFilter(
            status=status,
            severity=(self.severity,) if self.severity else (),
            text=self.q or None,
            sla=self.sla or None,
        )


def queue(session: Session, chosen: QueueFilter, targets: Targets) -> list[IncidentView]:
    page = incident_ops.list_incidents(
        session, chosen.incident_filter(), limit=QUEUE_LIMIT, targets=targets
    )
    return page.items


@dataclass(frozen=True)
class IncidentScreen:
    incident: IncidentDetail
    runs: list[RunDetail]


def incident(session: Session, incident_id: str, targets: Targets) -> IncidentScreen:
    detail = incident_ops.incident_detail(session, incident_id, targets=targets)
    runs = [run_ops.run_detail(session, run.id) for run in detail.runs]
    return IncidentScreen(detail, runs)


@dataclass(frozen=True)
class Waiting:
    run: RunDetail
    steps: list[StepView] = field(default_factory=list)


def waiting_steps(run: RunDetail) -> list[StepView]:
    return [s for s in run.steps if s.status in (STEP_WAITING, STEP_BLOCKED) and s.decision is None]


def approvals(session: Session, limit: int = 100) -> list[Waiting]:
    """Runs waiting for a human decision, newest first, with the steps they wait on."""
    page = run_ops.list_runs(session, status=(WAITING, BLOCKED), limit=limit)
    out = []
    for run in page.items:
        detail = run_ops.run_detail(session, run.id)
        out.append(Waiting(detail, waiting_steps(detail)))
    return out
