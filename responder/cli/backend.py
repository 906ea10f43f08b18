"""Where the analyst commands go: straight to SQL and Kafka (`Direct`), or through the REST
API (`responder.cli.remote.Remote`, with `--api URL`). Both run the same service operations and
return the same view models, so the commands print the same tables and JSON either way."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from sqlmodel import Session

from responder.bootstrap import Services
from responder.commands import AnyCommand
from responder.incidents.sla import targets
from responder.service import incidents as incident_ops
from responder.service import runs as run_ops
from responder.service import switch as switch_ops
from responder.service.identity import person
from responder.service.views import IncidentDetail, IncidentView, RunDetail, RunView
from responder.service.writer import Writer

T = TypeVar("T")
IncidentAction = Literal["ack", "assign", "comment", "severity", "resolve", "false-positive"]
RunAction = Literal["approve", "deny", "cancel"]
STATUS_OF: dict[str, incident_ops.StatusName] = {
    "ack": "acknowledged",
    "resolve": "resolved",
    "false-positive": "false_positive",
}


@dataclass(frozen=True)
class Request:
    """One analyst action on an incident or a run, as every backend takes it."""

    action: str
    target: str  # an id or a unique prefix
    body: dict[str, Any]  # the action's fields (None values are left out)
    by: str | None = None
    expected: str | None = None  # the incident's ETag the caller saw

    @classmethod
    def of(
        cls,
        action: str,
        target: str,
        body: dict[str, Any],
        by: str | None,
        expected: str | None = None,
    ) -> Request:
        fields = {k: v for k, v in body.items() if v is not None}
        return cls(action, target, fields, by or None, expected)


@dataclass(frozen=True)
class Sent:
    """A command the backend published: its id and the full id of what it targets."""

    command_id: str
    target: str


class Backend(Protocol):
    commands_topic: str

    def incidents(
        self, *, status: Sequence[str], severity: Sequence[str], limit: int
    ) -> list[IncidentView]: ...

    def incident(self, incident_id: str) -> IncidentDetail: ...

    def runs(self, *, status: Sequence[str], limit: int) -> list[RunView]: ...

    def run(self, run_id: str) -> RunDetail: ...

    def kill_switch(self) -> switch_ops.KillSwitchState: ...

    def incident_action(self, request: Request) -> Sent: ...

    def run_action(self, request: Request) -> Sent: ...

    def set_kill_switch(self, on: bool, reason: str | None, *, by: str | None) -> Sent: ...


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class Direct:
    """The service operations over this machine's database and Kafka (bootstrap's settings)."""

    def __init__(self, services: Services, default_by: str) -> None:
        self.services = services
        self.default_by = default_by
        self.commands_topic = services.settings.kafka.topics.commands

    def _writer(self) -> Writer:
        return self.services.writer()

    def _by(self, by: str | None) -> str:
        return person(by or self.default_by)

    def incidents(
        self, *, status: Sequence[str], severity: Sequence[str], limit: int
    ) -> list[IncidentView]:
        query = incident_ops.IncidentFilter(status=status, severity=severity)
        with Session(self.services.engine) as session:
            return incident_ops.list_incidents(
                session, query, limit=limit, targets=targets(self.services.settings.sla)
            ).items

    def incident(self, incident_id: str) -> IncidentDetail:
        with Session(self.services.engine) as session:
            return incident_ops.incident_detail(
                session, incident_id, targets=targets(self.services.settings.sla)
            )

    def runs(self, *, status: Sequence[str], limit: int) -> list[RunView]:
        with Session(self.services.engine) as session:
            return run_ops.list_runs(session, status=status, limit=limit).items

    def run(self, run_id: str) -> RunDetail:
        with Session(self.services.engine) as session:
            return run_ops.run_detail(session, run_id)

    def kill_switch(self) -> switch_ops.KillSwitchState:
        with Session(self.services.engine) as session:
            return switch_ops.kill_switch_state(
                session, setting=self.services.settings.playbooks.kill_switch
            )

    def incident_action(self, request: Request) -> Sent:
        w, who, body = self._writer(), self._by(request.by), request.body
        incident_id, expected = request.target, request.expected
        command: AnyCommand
        if request.action == "assign":
            command = _run(
                incident_ops.assign(w, who, incident_id, body["assignee"], expected=expected)
            )
        elif request.action == "comment":
            command = _run(
                incident_ops.comment(w, who, incident_id, body["text"], expected=expected)
            )
        elif request.action == "severity":
            command = _run(
                incident_ops.change_severity(
                    w,
                    who,
                    incident_id,
                    body["severity"],
                    comment=body.get("comment"),
                    expected=expected,
                )
            )
        else:
            command = _run(
                incident_ops.set_status(
                    w,
                    who,
                    incident_id,
                    STATUS_OF[request.action],
                    comment=body.get("comment"),
                    expected=expected,
                )
            )
        return Sent(command.id, getattr(command, "incident_id", incident_id))

    def run_action(self, request: Request) -> Sent:
        w, who, run_id = self._writer(), self._by(request.by), request.target
        reason = request.body.get("reason")
        if request.action == "cancel":
            command = _run(run_ops.cancel(w, who, run_id, reason=reason))
        else:
            approved, step = request.action == "approve", request.body.get("step")
            command = _run(
                run_ops.decide(w, who, run_id, approved=approved, step=step, reason=reason)
            )
        return Sent(command.id, getattr(command, "run_id", run_id))

    def set_kill_switch(self, on: bool, reason: str | None, *, by: str | None) -> Sent:
        command = _run(
            switch_ops.set_kill_switch(self._writer(), self._by(by), on=on, reason=reason)
        )
        return Sent(command.id, "kill_switch")
