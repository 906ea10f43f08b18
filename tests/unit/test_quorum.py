"""Approvers, quorum and votes on plain values (playbooks/quorum.py)."""

from __future__ import annotations

import pytest

from responder.actions.approval import ApprovalRequest
from responder.playbooks.quorum import (
    Approved,
    Denied,
    Directory,
    Pending,
    Policy,
    Refused,
    Vote,
    cast,
    identity,
    tally,
)

AT = "2026-11-25T09:00:00Z"
DIRECTORY = Directory.of(
    groups={"secops": ["U1", "U2", "alice"], "leads": ["slack:W9", "group:secops"]},
    users={"U3": "alice"},
)


def vote(by: str, approve: bool = True) -> Vote:
    return Vote(by, DIRECTORY.person(by), approve, AT)


def test_bare_slack_ids_read_as_slack_identities() -> None:
    """`U123` and `W123` are Slack users; anything else is taken as written."""
    assert identity("U123ABC") == "slack:U123ABC"
    assert identity("W9") == "slack:W9"
    assert identity("alice") == "alice"
    assert identity("token:ci") == "token:ci"
    assert identity("u123") == "u123"  # not a Slack id: a responder user of that name


def test_an_empty_approver_list_admits_anyone() -> None:
    """No approvers named: anyone who may decide at all may decide this step."""
    assert DIRECTORY.allows([], "slack:U77")
    assert DIRECTORY.allows([], "token:ops")


def test_groups_expand_to_their_members_and_mapped_users_count_as_themselves() -> None:
    """group:secops admits U1, U2 and alice, and U3 because U3 is alice."""
    approvers = ["group:secops"]
    assert DIRECTORY.allows(approvers, "slack:U1")
    assert DIRECTORY.allows(approvers, "alice")
    assert DIRECTORY.allows(approvers, "slack:U3")
    assert not DIRECTORY.allows(approvers, "slack:U4")
    assert not DIRECTORY.allows(approvers, "token:alice")


def test_groups_do_not_nest_and_unknown_groups_admit_nobody() -> None:
    """A group inside a group and a group the settings do not define admit no one (fail closed)."""
    assert DIRECTORY.allows(["group:leads"], "slack:W9")
    assert not DIRECTORY.allows(["group:leads"], "slack:U1")
    assert not DIRECTORY.allows(["group:nope"], "slack:U1")
    assert DIRECTORY.unknown_groups(["group:nope", "group:secops", "U1"]) == ["group:nope"]


def test_quorum_two_waits_for_a_second_distinct_approver() -> None:
    """One approval of two keeps it pending; a second person approves it."""
    policy = Policy(("group:secops",), 2)
    votes, outcome = cast(policy, DIRECTORY, (), by="slack:U1", approve=True, at=AT)
    assert outcome == Pending(("slack:U1",), 1)
    votes, outcome = cast(policy, DIRECTORY, votes, by="alice", approve=True, at=AT)
    assert outcome == Approved(("slack:U1", "alice"))
    assert [v.person for v in votes] == ["slack:U1", "alice"]


def test_the_same_person_cannot_vote_twice_through_another_identity() -> None:
    """alice from the CLI and alice's Slack account (U3) are one person: the second is refused."""
    policy = Policy(("group:secops",), 2)
    votes, _ = cast(policy, DIRECTORY, (), by="alice", approve=True, at=AT)
    with pytest.raises(Refused, match="voted on this step already"):
        cast(policy, DIRECTORY, votes, by="slack:U3", approve=True, at=AT)
    with pytest.raises(Refused, match="voted on this step already"):
        cast(policy, DIRECTORY, votes, by="alice", approve=False, at=AT)


def test_a_voter_outside_the_approvers_is_refused_with_the_unknown_groups_named() -> None:
    """Not an approver: Refused, and a misspelt group is named in the message."""
    with pytest.raises(Refused, match="not among the approvers"):
        cast(Policy(("U1",)), DIRECTORY, (), by="slack:U2", approve=True, at=AT)
    with pytest.raises(Refused, match="unknown groups: group:secop"):
        cast(Policy(("group:secop",)), DIRECTORY, (), by="slack:U1", approve=True, at=AT)


def test_one_denial_denies_whatever_the_approvals() -> None:
    """A denial by an allowed approver decides, even after approvals."""
    policy = Policy((), 3)
    assert tally(policy, [vote("slack:U1"), vote("slack:U2", approve=False)]) == Denied("slack:U2")


def test_votes_and_policies_survive_a_round_trip_through_json() -> None:
    """What the step row stores reads back as the same values."""
    policy = Policy(("U1", "group:secops"), 2)
    assert Policy.from_json(policy.to_json()) == policy
    assert Policy.from_json(None) == Policy()
    one = Vote("slack:U3", "alice", True, AT, "c" * 32, "ok")
    assert Vote.from_json(one.to_json()) == one


def test_a_quorum_must_be_reachable_by_a_plain_approver_list() -> None:
    """Three approvals from two named people can never happen: refused when the params load."""
    with pytest.raises(ValueError, match="cannot be reached"):
        ApprovalRequest(prompt="Go?", approvers=["U1", "slack:U1", "U2"], quorum=3)
    assert ApprovalRequest(prompt="Go?", approvers=["group:secops"], quorum=5).quorum == 5
    with pytest.raises(ValueError, match="quorum"):
        Policy((), 0)
