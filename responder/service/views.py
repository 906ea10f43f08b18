"""What reads return: view models of incidents, runs, audit records and pages of them.

The API serves them as JSON and the CLI renders them (tables or `--json`), from SQL directly or
from the API, so both fronts show the same thing. Times are always UTC-aware; values under
secret-looking keys in step outputs are masked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from responder.audit.store import AuditRecord
from responder.incidents.etag import incident_etag
from responder.incidents.store import Incident, IncidentEvent
from responder.playbooks.runs import PlaybookRun, StepRun
from responder.security.redact import scrub_value


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Utc = Annotated[datetime, AfterValidator(as_utc)]
T = TypeVar("T")


class _View(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class Comment(_View):
    by: str
    at: str
    text: str


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
    etag: str = Field(description="changes on every write; send it back as If-Match")

    @classmethod
    def of(cls, row: Incident) -> IncidentView:
        data = {name: getattr(row, name) for name in cls.model_fields if name != "etag"}
        return cls.model_validate({**data, "etag": incident_etag(row)})


class EventView(_View):
    position: int
    source: str
    event_id: str
    type: str
    severity: str
    time: Utc
    body: dict[str, Any]

    @classmethod
    def of(cls, row: IncidentEvent) -> EventView:
        return cls.model_validate(row)


class AuditView(_View):
    seq: int
    at: Utc
    actor: str
    action: str
    subject: str
    data: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: AuditRecord) -> AuditView:
        return cls.model_validate(row)


class RunView(_View):
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

    @classmethod
    def of(cls, row: PlaybookRun) -> RunView:
        return cls.model_validate(row)


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


class RunDetail(RunView):
    steps: list[StepView]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the next page; absent on the last"
    )
