"""Durable playbook runs: one row per run and one per step execution, in the incident database.

A run is created in the same transaction that stores the incident change that triggered it, with
an id derived from (playbook, incident, change version): a redelivered change never starts a
second run. The runner claims a run with a lease, records each step's start before acting and its
output after; a worker that dies mid-run leaves a `running` run whose lease expires, and the next
worker resumes it after the last completed step (completed side effects are never repeated).
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Integer, text, update
from sqlalchemy import select as sa_select
from sqlmodel import Field, Session, SQLModel, col, func, select

from responder.actions.evidence import SNAPSHOT_ACTION
from responder.audit.store import AuditRecord
from responder.incidents.store import Incident, IncidentEvent
from responder.playbooks.statuses import ACTIVE, STEP_DONE, STEP_RUNNING
from responder.storage.bulk import table_of
from responder.storage.database import by_id_or_prefix

RUN_NAMESPACE = uuid.UUID("0b7e3f4a-5c6d-4e8f-9a1b-2c3d4e5f6a7b")


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


def run_id(playbook_id: str, incident_id: str, version: int) -> str:
    """The run a change starts, named for (playbook, incident, version): the text of
    `uuid.uuid5(RUN_NAMESPACE, "playbook|incident|version")`, hashed here without building
    the UUID object (a quarter of the time; the sink names a run for a third of its changes)."""
    name = f"{playbook_id}|{incident_id}|{version}".encode()
    sha1 = hashlib.sha1(RUN_NAMESPACE.bytes + name, usedforsecurity=False)  # uuid5's hash
    digest = bytearray(sha1.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class PlaybookRun(SQLModel, table=True):
    __tablename__ = "playbook_runs"

    id: str = Field(primary_key=True, max_length=64)
    playbook_id: str = Field(max_length=128, index=True)
    incident_id: str = Field(max_length=64, index=True)
    trigger: str = Field(max_length=32)
    incident_version: int
    mode: str = Field(max_length=16)
    status: str = Field(max_length=32, index=True)
    incident: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The run's events (`run_events`): its incident's first `evidence` evidence rows, as its
    # change left them (evidence rows are only ever appended), then `events`: those the change
    # brought past the evidence limit. Runs stored before revision 0015 hold every body here.
    evidence: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    events: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    error: str | None = None
    approval: dict[str, Any] | None = Field(  # a guard's block: policy and votes (quorum.py)
        default=None, sa_column=Column(JSON, nullable=True)
    )
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = _ts(nullable=True)
    wake_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts(nullable=False, index=True)
    updated_at: datetime = _ts(nullable=False)


class StepRun(SQLModel, table=True):
    __tablename__ = "playbook_steps"

    run_id: str = Field(primary_key=True, foreign_key="playbook_runs.id", max_length=64)
    step_id: str = Field(primary_key=True, max_length=128)
    position: int
    action: str = Field(max_length=128, index=True)
    status: str = Field(max_length=32, index=True)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    output: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    attempts: int = 0
    error: str | None = None
    decision: str | None = Field(default=None, max_length=16)
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = _ts(nullable=True)
    deadline: datetime | None = _ts(nullable=True)
    notice: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    approval: dict[str, Any] | None = Field(  # who may decide, the quorum, votes (quorum.py)
        default=None, sa_column=Column(JSON, nullable=True)
    )
    undo_output: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    started_at: datetime | None = _ts(nullable=True, index=True)
    finished_at: datetime | None = _ts(nullable=True)
    refreshed_at: datetime | None = _ts(nullable=True)  # a posted message last redrawn


class Switch(SQLModel, table=True):
    """Operator switches that take effect without a restart (`kill_switch`)."""

    __tablename__ = "switches"

    name: str = Field(primary_key=True, max_length=64)
    on: bool = False
    by: str = Field(max_length=200)
    at: datetime = _ts(nullable=False)


KILL_SWITCH = "kill_switch"


def kill_switch_on(session: Session) -> bool:
    """Whether the live kill switch is on (one Core statement: the sink asks every batch that
    starts runs, and an ORM `get` cost several times the round trip)."""
    table = table_of(Switch)
    found = (
        session.connection()
        .execute(sa_select(table.c.on).where(table.c.name == KILL_SWITCH))
        .scalar()
    )
    return bool(found)


# --- queries ------------------------------------------------------------------------------------


RUN_LIMIT_LOCK = 727_002  # advisory lock class of `lock_run_limits` (the audit chain's is 727_001)


def lock_run_limits(session: Session, playbook_ids: Iterable[str]) -> None:
    """Hold each playbook's run limit (`guards.max_runs_per_hour`) for the rest of the
    transaction, on PostgreSQL (SQLite's write lock already serializes writers).

    Counting the last hour's runs and inserting the new ones is one decision: two sinks
    storing at once (two workers, or two transactions of one) would each count the runs
    before the other's insert and together pass the limit. The locks are taken in the order
    of their keys, and before the audit chain's (`audit.store.lock_chain`, taken last in the
    sink's transaction), so two transactions cannot each hold a lock the other waits for."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({_lock_key(playbook_id) for playbook_id in playbook_ids})
    if keys:  # one statement: the function scan takes them in the array's order
        session.connection().execute(
            text(
                "SELECT count(pg_advisory_xact_lock(:lock, k)) FROM unnest(CAST(:keys AS int[])) AS k"
            ),
            {"lock": RUN_LIMIT_LOCK, "keys": keys},
        )


def _lock_key(playbook_id: str) -> int:
    """A playbook id's advisory lock key: a signed 32-bit integer (CRC-32; two ids that share
    a key share a lock, which only serializes them)."""
    key = zlib.crc32(playbook_id.encode())
    return key - 2**32 if key >= 2**31 else key


def runs_in_last_hour(session: Session, playbook_ids: Iterable[str]) -> dict[str, int]:
    """Runs each playbook started in the last hour that count toward `max_runs_per_hour` (dry
    runs do not), in one statement; a playbook without any is not in the answer."""
    ids = sorted(set(playbook_ids))
    if not ids:
        return {}
    table = table_of(PlaybookRun)
    query = (
        sa_select(table.c.playbook_id, func.count())
        .where(table.c.playbook_id.in_(ids))
        .where(table.c.created_at >= now() - timedelta(hours=1))
        .where(table.c.mode != "dry_run")
        .group_by(table.c.playbook_id)
    )
    return {playbook_id: int(count) for playbook_id, count in session.connection().execute(query)}


def action_uses_in_last_hour(session: Session, action: str) -> int:
    since = now() - timedelta(hours=1)
    query = select(func.count()).where(
        StepRun.action == action,
        col(StepRun.status).in_([STEP_DONE, STEP_RUNNING]),
        col(StepRun.started_at) >= since,
    )
    return int(session.exec(query).one())


def evidence_recorded(session: Session, incident_id: str) -> bool:
    """Whether the audit chain holds an evidence snapshot of the incident (`evidence.snapshot`)."""
    query = (
        select(AuditRecord.seq)
        .where(AuditRecord.action == SNAPSHOT_ACTION, AuditRecord.subject == incident_id)
        .limit(1)
    )
    return session.exec(query).first() is not None


def runnable(session: Session, limit: int = 20) -> list[str]:
    """Ids of runs the runner should look at now (not leased by a live worker)."""
    at = now()
    query = (
        select(PlaybookRun.id)
        .where(col(PlaybookRun.status).in_(ACTIVE))
        .where((col(PlaybookRun.wake_at).is_(None)) | (col(PlaybookRun.wake_at) <= at))
        .where((col(PlaybookRun.lease_until).is_(None)) | (col(PlaybookRun.lease_until) < at))
        .order_by(col(PlaybookRun.created_at))
        .limit(limit)
    )
    return list(session.exec(query).all())


def claim(session: Session, run: str, owner: str, lease: timedelta) -> bool:
    """Take the run's lease if nobody holds a live one (one worker advances a run at a time)."""
    at = now()
    result = session.execute(
        update(PlaybookRun)
        .where(col(PlaybookRun.id) == run)
        .where((col(PlaybookRun.lease_until).is_(None)) | (col(PlaybookRun.lease_until) < at))
        .values(lease_owner=owner, lease_until=at + lease)
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0) == 1)


def renew_lease(session: Session, run: str, owner: str, lease: timedelta) -> bool:
    """Extend `owner`'s lease of the run, in the caller's transaction; False if the run is no
    longer theirs (the lease ran out and another runner claimed it). The owner is in the
    statement's condition, so on PostgreSQL a claim that commits while this waits for the row
    is seen."""
    table = table_of(PlaybookRun)
    result = session.connection().execute(  # Core: no ORM object of the session is touched
        table.update()
        .where(table.c.id == run)
        .where(table.c.lease_owner == owner)
        .values(lease_until=now() + lease)
    )
    return bool(result.rowcount == 1)


class EvidenceChanged(RuntimeError):
    """The evidence rows a run counts are not what its change left (rows missing or added
    below its count): the run must not act on other events than those that started it."""


def run_events(session: Session, run: PlaybookRun) -> list[dict[str, Any]]:
    """The events a run sees (`incident.events` in its templates): its incident's evidence as
    of its change, in position order, then the change's events past the evidence limit.
    `EvidenceChanged` if the rows below its count are not exactly positions 0..count-1."""
    if not run.evidence:
        return list(run.events)
    table = table_of(IncidentEvent)
    rows = session.connection().execute(
        sa_select(table.c.position, table.c.body)
        .where(table.c.incident_id == run.incident_id, table.c.position < run.evidence)
        .order_by(table.c.position)
    )
    found = rows.all()
    if [position for position, _ in found] != list(range(run.evidence)):
        raise EvidenceChanged(
            f"run {run.id}: its incident's evidence rows 0..{run.evidence - 1} are not as its "
            "change left them"
        )
    return [*(body for _, body in found), *run.events]


def steps_of(session: Session, run: str) -> dict[str, StepRun]:
    rows = session.exec(select(StepRun).where(StepRun.run_id == run)).all()
    return {r.step_id: r for r in rows}


def runs_of_incident(session: Session, incident_id: str) -> list[PlaybookRun]:
    query = (
        select(PlaybookRun)
        .where(PlaybookRun.incident_id == incident_id)
        .order_by(col(PlaybookRun.created_at))
    )
    return list(session.exec(query).all())


def list_runs(session: Session, *, status: str | None = None, limit: int = 50) -> list[PlaybookRun]:
    query = select(PlaybookRun).order_by(col(PlaybookRun.created_at).desc()).limit(limit)
    if status:
        query = query.where(PlaybookRun.status == status)
    return list(session.exec(query).all())


def get_run(session: Session, run: str) -> PlaybookRun | None:
    """By full id or a unique prefix."""
    return by_id_or_prefix(session, PlaybookRun, run)


def stale_messages(session: Session, limit: int = 50) -> list[tuple[StepRun, Incident]]:
    """Completed `slack.notify` steps whose incident changed since the message was drawn."""
    drawn = func.coalesce(col(StepRun.refreshed_at), col(StepRun.finished_at))
    query = (
        select(StepRun, Incident)
        .join(PlaybookRun, col(PlaybookRun.id) == col(StepRun.run_id))
        .join(Incident, col(Incident.id) == col(PlaybookRun.incident_id))
        .where(StepRun.action == "slack.notify", StepRun.status == STEP_DONE)
        .where(col(Incident.updated_at) > drawn)
        .limit(limit)
    )
    return [(step, incident) for step, incident in session.exec(query).all()]
