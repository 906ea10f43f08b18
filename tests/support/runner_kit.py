"""Builders for playbook-runner tests: an incident change, playbooks on disk, a runner on fakes."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

import responder.actions.catalog  # noqa: F401  (register every action)
from responder.actions.ports import ModelRegistryPort, Ports, WafPort
from responder.assets.lineage import GraphSnapshot
from responder.audit.store import AuditRecord, verify_chain
from responder.commands import AnyCommand, apply_command
from responder.evidence.snapshot import Snapshotter
from responder.evidence.store import EvidenceStore, LocalEvidenceStore
from responder.incidents.model import IncidentChange
from responder.incidents.store import SqlIncidents
from responder.playbooks.blast_sql import BlastRadii
from responder.playbooks.loader import load_playbooks
from responder.playbooks.quorum import Directory
from responder.playbooks.runner import Runner
from responder.playbooks.runs import PlaybookRun, StepRun, steps_of
from responder.playbooks.start_sql import RunStarter
from responder.settings import PlaybookSettings, Settings
from responder.streams.sink import store_changes
from tests.support.fakes.aws import FakeIam
from tests.support.fakes.http import FakeHttp
from tests.support.fakes.mlflow import FakeRegistry
from tests.support.fakes.slack import FakeSlack

ASK = """
id: ask
title: Ask first
on: {kind: credential_compromise}
steps:
  - {id: approve, action: approval.request, with: {prompt: "Go?"}}
"""  # a playbook that waits for one approval on a credential compromise

NOTHING = """
id: nothing
title: Responds to no incident of these tests
on: {kind: never}
steps:
  - {id: tell, action: slack.notify, with: {text: never}}
"""  # a playbook set that starts no run


T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
KEY = "AKIAEXAMPLE000000001"


def event(event_id: str, minutes: float, *, type: str = "key.used", **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "source": "cloudtrail",
        "type": type,
        "time": (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "severity": "high",
        "title": f"{type} {event_id}",
        "resource": {"kind": "api_key", "id": KEY, "name": "ci-bot"},
        "attributes": {},
        "labels": {},
        "schema_version": "1",
        **extra,
    }


def change(
    version: int = 1,
    *,
    incident_id: str = "inc-1",
    kind: str = "credential_compromise",
    change_kind: str = "opened",
    severity: str = "critical",
    events: list[dict[str, Any]] | None = None,
) -> IncidentChange:
    evs = events if events is not None else [event(f"e{version}", version)]
    return IncidentChange(
        change=change_kind,
        version=version,
        incident_id=incident_id,
        rule="leaked-key-then-used",
        kind=kind,
        title=f"Leaked key {KEY} used",
        severity=severity,
        group={"resource.id": KEY},
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=version),
        event_count=version,
        events=evs,
    )


@dataclass
class Kit:
    """A database, playbooks, fakes and a runner wired like the worker wires them."""

    db: Engine
    directory: Path
    settings: PlaybookSettings = field(default_factory=lambda: PlaybookSettings(lease_s=30))
    kill_switch: bool = False
    slack: FakeSlack = field(default_factory=FakeSlack)
    iam: FakeIam = field(default_factory=FakeIam)
    http: FakeHttp = field(default_factory=FakeHttp)
    waf: WafPort | None = None
    models: ModelRegistryPort = field(default_factory=FakeRegistry)
    evidence_store: EvidenceStore | None = None  # default: `evidence/` beside the playbooks
    assets: GraphSnapshot | None = None  # the worker's graph: incidents get a blast radius

    def __post_init__(self) -> None:
        self.iam.add_key(KEY, user_name="ci-bot")
        if self.evidence_store is None:
            self.evidence_store = LocalEvidenceStore(self.directory.parent / "evidence")

    def snapshotter(self) -> Snapshotter:
        assert self.evidence_store is not None
        return Snapshotter(
            engine=self.db, store=self.evidence_store, models=self.models, settings=Settings()
        )

    def playbook(self, name: str, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"{name}.yaml").write_text(textwrap.dedent(text))

    def ports(self) -> Ports:
        return Ports(
            slack=self.slack,
            iam=self.iam,
            waf=self.waf,
            http=self.http,
            models=self.models,
            incidents=SqlIncidents(self.db),
            evidence=self.snapshotter(),
        )

    def runner(self, owner: str | None = None) -> Runner:
        return Runner(
            engine=self.db,
            playbooks=load_playbooks(self.directory),
            ports=self.ports(),
            settings=self.settings,
            owner=owner,
        )

    def apply(self, *changes: IncidentChange) -> list[str]:
        """Store changes as the sink does (one batch); the ids of the runs they started."""
        starter = RunStarter(load_playbooks(self.directory), kill_switch=self.kill_switch)
        radii = None if self.assets is None else BlastRadii(self.assets)
        with Session(self.db) as session, session.begin():
            return store_changes(session, list(changes), starter, radii).runs

    async def drive(self, runner: Runner | None = None, rounds: int = 10) -> None:
        """Tick until nothing moves (runs waiting for a human stay waiting)."""
        runner = runner or self.runner()
        for _ in range(rounds):
            if await runner.tick() == 0:
                return

    def command(self, command: AnyCommand, directory: Directory | None = None) -> dict[str, Any]:
        with Session(self.db) as session, session.begin():
            return apply_command(session, command, directory)

    def run(self, run_id: str) -> PlaybookRun:
        with Session(self.db) as session:
            row = session.get(PlaybookRun, run_id)
            assert row is not None
            return row

    def steps(self, run_id: str) -> dict[str, StepRun]:
        with Session(self.db) as session:
            return steps_of(session, run_id)

    def audit(self) -> list[AuditRecord]:
        with Session(self.db) as session:
            return list(session.exec(select(AuditRecord).order_by(col(AuditRecord.seq))).all())

    def chain_ok(self) -> bool:
        with Session(self.db) as session:
            _, broken = verify_chain(session)
            return broken is None
