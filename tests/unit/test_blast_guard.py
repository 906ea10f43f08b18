"""The blast-radius guards on plain radii: a cut radius holds back what a guard watches."""

from __future__ import annotations

from responder.playbooks.blast_guard import blast_guard
from responder.playbooks.schema import Guards


def test_a_cut_radius_is_held_back_when_a_guard_watches_it() -> None:
    """A radius cut at the walk's limits may hide critical assets or more than the limit."""
    cut = {"size": 500, "critical": [], "truncated": True}
    for guards in (Guards(max_blast_radius=1_000), Guards(critical_requires_approval=True)):
        assert "cut at the walk's limits" in (blast_guard(guards, cut) or "")
        assert blast_guard(guards, {**cut, "truncated": False}) is None
    assert blast_guard(Guards(), cut) is None  # no guard set: nothing held back
