"""Who acts: roles, the principal behind an API token, and the `by` a command records.

Roles nest: viewer < analyst < responder < admin. `ingest` and `metrics` stand apart: they
may only post events, or only read the API's metrics (admin may do both). Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from responder.service.errors import Invalid


class Role(StrEnum):
    viewer = "viewer"
    analyst = "analyst"
    responder = "responder"
    admin = "admin"
    ingest = "ingest"
    metrics = "metrics"


_RANK = {Role.viewer: 1, Role.analyst: 2, Role.responder: 3, Role.admin: 4}
APART = frozenset({Role.ingest, Role.metrics})


def permits(have: Role, need: Role) -> bool:
    """Whether a token with role `have` may do what needs `need`."""
    if have == Role.admin:
        return True
    if need in APART or have in APART:
        return have == need
    return _RANK[have] >= _RANK[need]


TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ACTOR_PREFIX = "token:"  # the `by` of an API caller
SLACK_PREFIX = "slack:"  # the `by` of a Slack user (verified by Slack)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of the API (from its bearer token)."""

    token_id: str
    name: str
    role: Role

    @property
    def by(self) -> str:
        """The identity commands and audit records carry: `token:NAME`."""
        return f"{ACTOR_PREFIX}{self.name}"


def person(name: str) -> str:
    """A `by` typed on the command line; `token:` names are the API's alone."""
    name = name.strip()
    if not name or len(name) > 200:
        raise Invalid("--by must be 1 to 200 characters")
    if name.startswith(ACTOR_PREFIX):
        raise Invalid(f"{name!r}: names starting with {ACTOR_PREFIX!r} are API token identities")
    if name.startswith(SLACK_PREFIX):
        raise Invalid(f"{name!r}: names starting with {SLACK_PREFIX!r} are Slack identities")
    if any(ch.isspace() and ch != " " for ch in name) or not name.isprintable():
        raise Invalid(f"{name!r}: unprintable characters")
    return name
