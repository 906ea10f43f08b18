"""Who may approve a step, and when enough of them have: approvers, quorum and votes (pure).

A step that waits for a human (`approval.request`, a guard's block, `mode: approval`) carries a
`Policy`: the approvers allowed to decide it and how many distinct ones must approve (the
quorum). Each decision is a `Vote`; `cast` checks the voter and adds the vote, `tally` says what
the votes add up to: approved once `quorum` distinct people approved, denied by the first
denial, else still pending.

Identities are the `by` of commands: `slack:U123` (a Slack user, verified by Slack),
`token:NAME` (an API token), or a name typed on the command line. An approver entry is one of
those, a bare Slack user id (`U123`, read as `slack:U123`) or `group:NAME` (the members the
directory lists for NAME, each again an identity or a bare Slack id; groups do not nest). A Slack
user the directory maps to a responder user counts as that user: `approvers: [alice]` admits
`slack:U123` when U123 is alice, and alice approving from Slack and from the CLI is one person
for the quorum. An unknown group admits nobody. An empty approver list admits anyone who may
decide at all (the API's `responder` role, a CLI user).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from responder.actions.approval import MAX_QUORUM, SLACK_ID

SLACK_PREFIX = "slack:"
GROUP_PREFIX = "group:"


class Refused(ValueError):
    """The vote does not count: the voter is not an approver, or voted already."""


class NotApprover(Refused):
    """The voter is not among the step's approvers."""


class AlreadyVoted(Refused):
    """The voter (as a person: `Directory.person`) voted on the step before."""


def identity(entry: str) -> str:
    """An approver entry or group member as the identity commands carry: `U1` → `slack:U1`."""
    entry = entry.strip()
    return SLACK_PREFIX + entry if SLACK_ID.match(entry) else entry


@dataclass(frozen=True)
class Directory:
    """The groups approver lists may name, and which responder user a Slack user is."""

    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    users: Mapping[str, str] = field(default_factory=dict)  # Slack user id → responder user

    @classmethod
    def of(cls, groups: Mapping[str, Sequence[str]], users: Mapping[str, str]) -> Directory:
        return cls(
            groups={name: tuple(members) for name, members in groups.items()},
            users=dict(users),
        )

    def person(self, by: str) -> str:
        """Who `by` is, for counting: the mapped responder user of a Slack user, else `by`."""
        if by.startswith(SLACK_PREFIX):
            return self.users.get(by[len(SLACK_PREFIX) :], by)
        return by

    def identities(self, by: str) -> frozenset[str]:
        return frozenset({by, self.person(by)})

    def members(self, approvers: Iterable[str]) -> frozenset[str]:
        """Every identity the entries admit (groups expanded one level, unknown groups empty)."""
        found: set[str] = set()
        for entry in approvers:
            if entry.startswith(GROUP_PREFIX):
                for member in self.groups.get(entry[len(GROUP_PREFIX) :], ()):
                    if not member.startswith(GROUP_PREFIX):
                        found.add(identity(member))
            else:
                found.add(identity(entry))
        return frozenset(found)

    def allows(self, approvers: Sequence[str], by: str) -> bool:
        """Whether `by` may decide a step with these approvers (anyone when there are none)."""
        if not approvers:
            return True
        return bool(self.identities(by) & self.members(approvers))

    def unknown_groups(self, approvers: Iterable[str]) -> list[str]:
        return [
            entry
            for entry in approvers
            if entry.startswith(GROUP_PREFIX) and entry[len(GROUP_PREFIX) :] not in self.groups
        ]


@dataclass(frozen=True)
class Policy:
    """Who may decide and how many distinct approvals it takes."""

    approvers: tuple[str, ...] = ()
    quorum: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.quorum <= MAX_QUORUM:
            raise ValueError(f"quorum must be 1 to {MAX_QUORUM}")

    def to_json(self) -> dict[str, Any]:
        return {"approvers": list(self.approvers), "quorum": self.quorum}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Policy:
        data = data or {}
        return cls(tuple(str(a) for a in data.get("approvers") or ()), int(data.get("quorum", 1)))

    def describe(self) -> str:
        """`2 approvals from U1, group:secops`, for prompts and messages."""
        count = "1 approval" if self.quorum == 1 else f"{self.quorum} approvals"
        return count + (f" from {', '.join(self.approvers)}" if self.approvers else "")


ANYONE = Policy()  # no approver list, one approval


@dataclass(frozen=True)
class Vote:
    by: str  # the identity the command carried
    person: str  # who that is, for counting (`Directory.person`)
    approve: bool
    at: str  # RFC 3339
    command: str | None = None  # the command's id: its sender can tell it was applied
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "person": self.person,
            "approve": self.approve,
            "at": self.at,
            "command": self.command,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Vote:
        return cls(
            by=str(data["by"]),
            person=str(data.get("person") or data["by"]),
            approve=bool(data["approve"]),
            at=str(data.get("at", "")),
            command=data.get("command"),
            reason=data.get("reason"),
        )


@dataclass(frozen=True)
class Pending:
    """Not decided yet: `approvals` so far (distinct people), `missing` more needed."""

    approvals: tuple[str, ...]
    missing: int


@dataclass(frozen=True)
class Approved:
    by: tuple[str, ...]  # the distinct people who approved, in order


@dataclass(frozen=True)
class Denied:
    by: str
    reason: str | None = None


Outcome = Pending | Approved | Denied


def tally(policy: Policy, votes: Sequence[Vote]) -> Outcome:
    """What the votes add up to: one denial denies; `quorum` distinct approvals approve."""
    for vote in votes:
        if not vote.approve:
            return Denied(vote.person, vote.reason)
    people: list[str] = []
    for vote in votes:
        if vote.person not in people:
            people.append(vote.person)
    if len(people) >= policy.quorum:
        return Approved(tuple(people))
    return Pending(tuple(people), policy.quorum - len(people))


def check_voter(policy: Policy, directory: Directory, votes: Sequence[Vote], by: str) -> str:
    """The person `by` is, if they may vote now; Refused otherwise."""
    if not directory.allows(policy.approvers, by):
        unknown = directory.unknown_groups(policy.approvers)
        hint = f" (unknown groups: {', '.join(unknown)})" if unknown else ""
        raise NotApprover(f"{by} is not among the approvers of this step{hint}")
    person = directory.person(by)
    if any(vote.person == person for vote in votes):
        raise AlreadyVoted(f"{person} has voted on this step already")
    return person


def cast(
    policy: Policy,
    directory: Directory,
    votes: Sequence[Vote],
    *,
    by: str,
    approve: bool,
    at: str,
    command: str | None = None,
    reason: str | None = None,
) -> tuple[tuple[Vote, ...], Outcome]:
    """Add `by`'s vote (Refused if they may not vote) and tally again."""
    person = check_voter(policy, directory, votes, by)
    added = (*votes, Vote(by, person, approve, at, command, reason))
    return added, tally(policy, added)
