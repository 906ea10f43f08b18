"""Roles: viewer < analyst < responder < admin nest; ingest only ingests, metrics only reads
metrics; admin does all."""

from __future__ import annotations

import pytest

from responder.service.identity import Role, permits

V, A, R, AD, IN, M = (
    Role.viewer,
    Role.analyst,
    Role.responder,
    Role.admin,
    Role.ingest,
    Role.metrics,
)


@pytest.mark.parametrize(
    ("need", "allowed"),
    [
        (V, {V, A, R, AD}),
        (A, {A, R, AD}),
        (R, {R, AD}),
        (AD, {AD}),
        (IN, {IN, AD}),
        (M, {M, AD}),
    ],
)
def test_who_may_do_what(need: Role, allowed: set[Role]) -> None:
    """Exactly the listed roles are permitted for each need."""
    assert {have for have in Role if permits(have, need)} == allowed
