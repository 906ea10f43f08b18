"""What reads return: view models of incidents, runs, audit records and pages of them.

The API serves them as JSON and the CLI renders them (tables or `--json`), from SQL directly or
from the API, so both fronts show the same thing. Times are always UTC-aware; values under
secret-looking keys in step outputs are masked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from responder.incidents import sla as clocks
from responder.incidents.etag import incident_etag
from responder.incidents.store import Incident
from responder.playbooks.runs import StepRun
from responder.security.redact import scrub_value
from responder.settings import SlaSettings


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Utc = Annotated[datetime, AfterValidator(as_utc)]
T = TypeVar("T")


class _View(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class _RowView(_View):
    """A view that is its table row's fields, as they are."""

    @classmethod
    def of(cls, row: object) -> Self:
        return cls.model_validate(row)


class Comment(_View):
    by: str
    at: str
    text: str


DEFAULT_TARGETS = clocks.targets(SlaSettings())


class ClockView(_View):
    state: clocks.ClockState = Field(description="on_track, at_risk, met or breached")
    target_s: int = Field(description="the severity's target, in seconds")
    due_at: Utc
    stopped_at: Utc | None = Field(description="acknowledged / closed at; null while running")
    remaining_s: int = Field(description="seconds left (negative: overdue); when stopped, then")

    @classmethod
    def of(cls, clock: clocks.Clock) -> ClockView:
        return cls(
            state=clock.state,
            target_s=int(clock.target.total_seconds()),
            due_at=clock.due_at,
            stopped_at=clock.stopped_at,
            remaining_s=int(clock.remaining.total_seconds()),
        )


class SlaView(_View):
    acknowledge: ClockView
    resolve: ClockView
    breached: bool = Field(description="either clock is breached")
    state: clocks.ClockState = Field(description="the worse of the two clocks")

    @classmethod
    def of(cls, row: Incident, targets: clocks.Targets, now: datetime) -> SlaView:
        sla = clocks.sla(
            severity=row.severity,
            created_at=as_utc(row.created_at),
            acknowledged_at=as_utc(row.acknowledged_at) if row.acknowledged_at else None,
            resolved_at=as_utc(row.resolved_at) if row.resolved_at else None,
            now=now,
            targets=targets,
        )
        return cls(
            acknowledge=ClockView.of(sla.acknowledge),
            resolve=ClockView.of(sla.resolve),
            breached=sla.breached,
            state=sla.worst,
        )


class IncidentView(_View):
    id: str
    rule: str
    kind: str
    title: str
    severity: str
    status: str
    group: dict[str, Any]
    first_seen: Utc
    last_seen: Utc
    event_count: int
    assignee: str | None
    event_ids: list[dict[str, str]]
    comments: list[Comment]
    version: int = Field(description="correlation changes applied (not analyst edits)")
    created_at: Utc
    updated_at: Utc
    acknowledged_at: Utc | None = Field(default=None, description="first left `open`")
    resolved_at: Utc | None = Field(default=None, description="closed (null once reopened)")
    etag: str = Field(description="changes on every write; send it back as If-Match")
    reportable_category: str | None = Field(
        default=None, description="set when the incident was marked reportable (its clocks run)"
    )
    reportable_since: Utc | None = None
    sla: SlaView = Field(description="the SLA clocks at the time of the answer")

    @classmethod
    def of(
        cls, row: Incident, *, targets: clocks.Targets | None = None, now: datetime | None = None
    ) -> IncidentView:
        data = {name: getattr(row, name) for name in cls.model_fields if name not in DERIVED}
        sla = SlaView.of(row, targets or DEFAULT_TARGETS, now or datetime.now(UTC))
        return cls.model_validate({**data, "etag": incident_etag(row), "sla": sla})


DERIVED = frozenset({"etag", "sla"})


class EventView(_RowView):
    position: int
    source: str
    event_id: str
    type: str
    severity: str
    time: Utc
    body: dict[str, Any]


class AuditView(_RowView):
    seq: int
    at: Utc
    actor: str
    action: str
    subject: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class RunView(_RowView):
    id: str
    playbook_id: str
    incident_id: str
    trigger: str
    incident_version: int
    mode: str
    status: str
    incident: dict[str, Any]
    error: str | None
    wake_at: Utc | None
    created_at: Utc
    updated_at: Utc


class StepView(_View):
    run_id: str
    step_id: str
    position: int
    action: str
    status: str
    params: dict[str, Any]
    output: Any
    attempts: int
    error: str | None
    decision: str | None
    decided_by: str | None
    decided_at: Utc | None
    deadline: Utc | None
    notice: dict[str, Any] | None
    approval: dict[str, Any] | None = Field(
        default=None, description="who may decide, the quorum, the votes so far"
    )
    undo_output: Any
    started_at: Utc | None
    finished_at: Utc | None

    @classmethod
    def of(cls, row: StepRun) -> StepView:
        view = cls.model_validate(row)
        return view.model_copy(
            update={
                "params": scrub_value("params", view.params),
                "output": scrub_value("output", view.output),
                "notice": scrub_value("notice", view.notice),
                "undo_output": scrub_value("undo_output", view.undo_output),
            }
        )


class IncidentDetail(IncidentView):
    events: list[EventView] = Field(description="evidence, oldest first (up to events_limit)")
    timeline: list[AuditView] = Field(description="the incident's audit records, in order")
    runs: list[RunView] = Field(description="playbook runs on this incident, oldest first")
    blast_radius: dict[str, Any] | None = Field(
        default=None,
        description="what the incident's assets affect along the asset graph, as playbooks read "
        "it (incident.blast_radius; README, 'Blast radius'); null before the worker computed it",
    )


class RunDetail(RunView):
    steps: list[StepView]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the next page; absent on the last"
    )
