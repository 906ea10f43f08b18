"""The analysts' operations (responder.service) on SQLite and PostgreSQL: validation before
publishing, commands applied by the worker's apply_command, optimistic checks and run cancel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from responder.commands import (
    IncidentCommand,
    IncidentComment,
    RunCancel,
    SeverityChange,
    StaleCommand,
)
from responder.incidents.etag import incident_etag
from responder.incidents.store import get_incident
from responder.playbooks.decisions import DecisionError
from responder.service import incidents, runs, switch
from responder.service.errors import Conflict, Invalid, NotFound, PreconditionFailed
from responder.service.identity import person
from responder.service.writer import Writer
from tests.support.fakes.http import response
from tests.support.fakes.publisher import RecordingPublisher
from tests.support.runner_kit import ASK, Kit, change

pytestmark = pytest.mark.integration

ASK_THEN_TELL = (
    ASK
    + """  - {id: tell, action: slack.notify, with: {text: "went"}}
"""
)

SLOW = """
id: slow
title: A slow first step
on: {kind: credential_compromise}
steps:
  - {id: first, action: http.request, with: {url: "https://tickets.example/api"}}
  - {id: second, action: slack.notify, with: {text: "second"}}
"""


@pytest.fixture
def kit(db: Engine, tmp_path: Path) -> Kit:
    (tmp_path / "playbooks").mkdir()
    return Kit(db=db, directory=tmp_path / "playbooks")


def etag(kit: Kit, incident_id: str = "inc-1") -> str:
    with Session(kit.db) as session:
        row = get_incident(session, incident_id)
        assert row is not None
        return incident_etag(row)


async def test_incident_operations_validate_then_publish_with_the_identity(kit: Kit) -> None:
    """Each incident operation checks the incident and publishes a command carrying `by`."""
    kit.apply(change())
    w = Writer(kit.db, publisher := RecordingPublisher())
    tag = etag(kit)
    await incidents.acknowledge(w, "token:alice", "inc-1", comment="looking", expected=tag)
    await incidents.assign(w, "token:alice", "inc-1", "bob")
    await incidents.comment(w, "token:alice", "inc-1", "a note")
    await incidents.change_severity(w, "token:alice", "inc-1", "low")
    await incidents.mark_false_positive(w, "token:alice", "inc-1")
    kinds = [type(c).__name__ for c in publisher.commands]
    assert kinds == [
        "IncidentCommand",
        "IncidentCommand",
        "IncidentComment",
        "SeverityChange",
        "IncidentCommand",
    ]
    assert {c.by for c in publisher.commands} == {"token:alice"}
    assert publisher.commands[0].expected == tag  # type: ignore[union-attr]
    assert len({c.id for c in publisher.commands}) == 5
    for command in publisher.commands:
        kit.command(command)
    with Session(kit.db) as session:
        row = get_incident(session, "inc-1")
        assert row is not None
        assert (row.status, row.assignee, row.severity) == ("false_positive", "bob", "low")
        assert [c["text"] for c in row.comments] == ["looking", "a note"]
        assert {c["by"] for c in row.comments} == {"analyst:token:alice"}


async def test_operations_refuse_unknown_targets_stale_tags_and_bad_values(kit: Kit) -> None:
    """Nothing is published for a missing incident, a stale ETag or an invalid value."""
    kit.apply(change())
    w = Writer(kit.db, publisher := RecordingPublisher())
    with pytest.raises(NotFound):
        await incidents.acknowledge(w, "al", "nope")
    with pytest.raises(PreconditionFailed) as stale:
        await incidents.acknowledge(w, "al", "inc-1", expected="0" * 32)
    assert stale.value.current == etag(kit)
    with pytest.raises(Invalid):
        await incidents.change_severity(w, "al", "inc-1", "apocalyptic")
    with pytest.raises(Invalid):
        await incidents.comment(w, "al", "inc-1", "x" * 5000)
    with pytest.raises(NotFound):
        await runs.cancel(w, "al", "no-run")
    assert publisher.commands == []


def test_cli_names_cannot_pose_as_api_tokens() -> None:
    """`token:` identities belong to the API; the CLI's --by refuses them."""
    assert person(" alice ") == "alice"
    for bad in ("token:admin", "", "a\nb", "x" * 201):
        with pytest.raises(Invalid):
            person(bad)


def test_worker_refuses_a_command_based_on_a_stale_incident(kit: Kit) -> None:
    """A command carrying an old ETag is refused when the incident changed in between."""
    kit.apply(change())
    seen = etag(kit)
    kit.command(IncidentCommand(incident_id="inc-1", assignee="carol", by="carol"))
    with pytest.raises(StaleCommand, match="changed since it was read"):
        kit.command(SeverityChange(incident_id="inc-1", severity="low", by="dave", expected=seen))
    kit.apply(change(2))  # correlation changes move the tag too
    fresh = etag(kit)
    kit.apply(change(3))
    with pytest.raises(StaleCommand):
        kit.command(IncidentComment(incident_id="inc-1", text="late", by="dave", expected=fresh))
    current = etag(kit)
    kit.command(IncidentComment(incident_id="inc-1", text="now", by="dave", expected=current))
    with Session(kit.db) as session:
        row = get_incident(session, "inc-1")
        assert row is not None and row.severity == "critical"
        assert [c["text"] for c in row.comments] == ["now"]


async def test_cancelled_waiting_run_takes_no_further_step(kit: Kit) -> None:
    """Cancel a run waiting for approval: it is final, decisions are refused, nothing runs."""
    kit.playbook("ask", ASK_THEN_TELL)
    [rid] = kit.apply(change())
    await kit.drive()
    w = Writer(kit.db, publisher := RecordingPublisher())
    with pytest.raises(Conflict):
        await runs.decide(w, "al", rid, approved=True, step="tell")
    await runs.cancel(w, "al", rid[:8], reason="wrong incident")
    [command] = publisher.commands
    assert isinstance(command, RunCancel) and command.run_id == rid
    assert kit.command(command) == {"run_id": rid, "status": "cancelled"}
    await kit.drive()
    assert kit.run(rid).status == "cancelled"
    assert kit.steps(rid)["approve"].status == "cancelled"
    assert "tell" not in kit.steps(rid)
    with pytest.raises(Conflict):
        await runs.decide(w, "al", rid, approved=True)
    with pytest.raises(DecisionError):
        kit.command(RunCancel(run_id=rid, by="al"))
    [record] = [a for a in kit.audit() if a.action == "run.cancelled"]
    assert record.actor == "analyst:al" and record.data["reason"] == "wrong incident"
    assert kit.chain_ok()


async def test_runner_stops_before_the_next_step_of_a_run_cancelled_mid_step(kit: Kit) -> None:
    """A step already acting finishes and is recorded; the run then stays cancelled."""
    kit.playbook("slow", SLOW)
    kit.http.respond("https://tickets.example/api", response(201, json={}))
    started, release = asyncio.Event(), asyncio.Event()
    original = kit.http.request

    async def slow_request(**kwargs: object) -> object:
        started.set()
        await release.wait()
        return await original(**kwargs)  # type: ignore[arg-type]

    kit.http.request = slow_request  # type: ignore[method-assign, assignment]
    [rid] = kit.apply(change())
    ticking = asyncio.ensure_future(kit.runner().tick())
    async with asyncio.timeout(10):
        await started.wait()
    await asyncio.to_thread(kit.command, RunCancel(run_id=rid, by="al"))
    release.set()
    async with asyncio.timeout(10):
        await ticking
    await kit.drive()
    assert kit.run(rid).status == "cancelled"
    steps = kit.steps(rid)
    assert steps["first"].status == "completed" and "second" not in steps
    assert not [a for a in kit.audit() if a.action == "run.completed"]


async def test_kill_switch_operation_and_state(kit: Kit) -> None:
    """The kill switch is published as a command and its state read back."""
    w = Writer(kit.db, publisher := RecordingPublisher())
    await switch.set_kill_switch(w, "token:oncall", on=True, reason="bad rule")
    kit.command(publisher.commands[0])
    with Session(kit.db) as session:
        state = switch.kill_switch_state(session)
    assert state.on and state.by == "token:oncall" and state.at is not None
