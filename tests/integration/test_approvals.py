"""Approvers and quorum, counted durably in SQL by the decisions the worker applies, on SQLite
and PostgreSQL: the runner kit's runner with fake ports, commands applied as CommandStage does."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from responder.commands import Decision
from responder.playbooks.decisions import DecisionError
from responder.playbooks.quorum import Directory
from responder.service.runs import run_detail
from tests.support.runner_kit import KEY, Kit, change

pytestmark = pytest.mark.integration

DIRECTORY = Directory.of(groups={"secops": ["U1", "U2", "alice"]}, users={"U3": "alice"})

QUORUM = """
id: contain
title: Contain a used leaked key
on: {kind: credential_compromise}
guards: {require_evidence: false}  # about approvals, not evidence (tests/integration/test_evidence.py)
steps:
  - id: approve
    action: approval.request
    with: {prompt: "Deactivate?", approvers: ["group:secops"], quorum: 2}
  - id: deactivate
    action: aws.iam.deactivate_access_key
    if: "{{ steps.approve.output.approved }}"
    with: {access_key_id: "{{ incident.group['resource.id'] }}", user_name: ci-bot}
"""

BULK = """
id: bulk
title: One call per event
on: {kind: credential_compromise}
guards:
  for_each_over: 2
  approval: {approvers: [U1, U2, U9], quorum: 2}
steps:
  - id: each
    action: http.request
    for_each: "{{ events }}"
    with: {url: "https://tickets.example/api", json: {event: "{{ item.id }}"}}
"""


def decision(rid: str, by: str, approved: bool = True) -> Decision:
    return Decision(run_id=rid, approved=approved, by=by)


async def test_quorum_two_waits_for_a_second_distinct_approver(kit: Kit) -> None:
    """Quorum 2: one approval waits, the same person again is refused, a second one resumes it."""
    kit.playbook("contain", QUORUM)
    [rid] = kit.apply(change())
    await kit.drive()
    assert kit.steps(rid)["approve"].approval == {
        "approvers": ["group:secops"],
        "quorum": 2,
        "votes": [],
    }
    first = kit.command(decision(rid, "slack:U1"), DIRECTORY)
    assert first["decision"] == "pending" and first["missing"] == 1
    await kit.drive()
    assert kit.run(rid).status == "waiting"
    with Session(kit.db) as session:  # what the API and `runs show` show
        [shown] = run_detail(session, rid).steps
        assert shown.approval is not None and shown.approval["votes"][0]["by"] == "slack:U1"
    with pytest.raises(DecisionError, match="voted on this step already"):
        kit.command(decision(rid, "slack:U1"), DIRECTORY)
    kit.command(decision(rid, "slack:U3"), DIRECTORY)  # alice
    await kit.drive()

    approve = kit.steps(rid)["approve"]
    assert approve.output == {
        "approved": True,
        "decided_by": "slack:U1, alice",
        "reason": "approved",
    }
    assert [v["person"] for v in (approve.approval or {})["votes"]] == ["slack:U1", "alice"]
    assert kit.iam.keys[KEY].status == "Inactive"
    assert kit.iam.calls["set_access_key_status"] == 1
    assert kit.run(rid).status == "completed"
    records = [(r.actor, r.action, r.data) for r in kit.audit() if r.action.startswith("approval")]
    assert records[0][:2] == ("analyst:slack:U1", "approval.vote")
    assert records[0][2]["approvals"] == ["slack:U1"] and records[0][2]["quorum"] == 2
    assert records[1][:2] == ("analyst:slack:U3", "approval.approved")
    assert records[1][2]["approvals"] == ["slack:U1", "alice"]
    assert kit.chain_ok()


async def test_someone_outside_the_approvers_is_refused_and_one_denial_denies(kit: Kit) -> None:
    """A voter outside the group does not count; an allowed approver's denial decides."""
    kit.playbook("contain", QUORUM)
    [rid] = kit.apply(change())
    await kit.drive()
    for outsider in ("slack:U4", "token:admin", "bob"):
        with pytest.raises(DecisionError, match="not among the approvers"):
            kit.command(decision(rid, outsider), DIRECTORY)
    with pytest.raises(DecisionError, match="not among the approvers"):  # no directory: no group
        kit.command(decision(rid, "slack:U1"))
    kit.command(decision(rid, "slack:U2"), DIRECTORY)
    kit.command(decision(rid, "alice", approved=False), DIRECTORY)
    with pytest.raises(DecisionError, match="already denied"):
        kit.command(decision(rid, "slack:U1"), DIRECTORY)
    await kit.drive()
    approve = kit.steps(rid)["approve"]
    assert approve.output["approved"] is False and approve.decided_by == "alice"
    assert kit.steps(rid)["deactivate"].status == "skipped"
    assert kit.iam.calls["set_access_key_status"] == 0


async def test_a_for_each_over_the_guard_waits_for_the_guards_quorum(kit: Kit) -> None:
    """A for_each over `for_each_over` waits for two guard approvers, then acts once per item."""
    kit.playbook("bulk", BULK)
    events = [change(3).events[0], change(4).events[0], change(5).events[0]]
    [rid] = kit.apply(change(1, events=events))
    await kit.drive()
    step = kit.steps(rid)["each"]
    assert (kit.run(rid).status, step.status) == ("blocked_by_guard", "blocked_by_guard")
    assert step.error == "guard: 3 items, more than for_each_over=2"
    assert "Needs *2* approvals" in str(kit.slack.posts[-1]["blocks"])
    assert kit.http.requests == []

    assert kit.command(decision(rid, "slack:U9"))["decision"] == "pending"
    assert kit.run(rid).status == "blocked_by_guard"
    kit.command(decision(rid, "slack:U2"))
    await kit.drive()
    assert kit.run(rid).status == "completed"
    assert len(kit.http.requests) == 3


async def test_a_run_blocked_at_its_start_follows_the_guards_approvers(kit: Kit) -> None:
    """max_runs_per_hour blocks the next run; only the guard's approvers release it."""
    kit.playbook(
        "tell",
        """
        id: tell
        title: Tell
        on: {kind: credential_compromise}
        guards: {max_runs_per_hour: 1, approval: {approvers: [U1]}}
        steps:
          - {id: notify, action: slack.notify}
        """,
    )
    kit.apply(change())
    [blocked] = kit.apply(change(1, incident_id="inc-2"))
    assert kit.run(blocked).status == "blocked_by_guard"
    with pytest.raises(DecisionError, match="not among the approvers"):
        kit.command(decision(blocked, "slack:U2"))
    assert kit.command(decision(blocked, "slack:U1"))["decision"] == "approved"
    await kit.drive()
    assert kit.run(blocked).status == "completed"
