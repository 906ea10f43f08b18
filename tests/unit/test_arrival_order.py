"""Late events cost what in-order events cost: windows are swept once, not rescanned per end."""

from __future__ import annotations

from typing import Any

import pytest

from responder.correlation.window import GroupState
from tests.support.builders import correlator, event, feed, rule

MATCH = {"type": ["test.a", "test.b"]}
KINDS: list[dict[str, Any]] = [
    {"type": "temporal_ordered", "events": ["test.a", "test.b"]},
    {"type": "value_count", "condition": {"field": "attributes.v", "gte": 3}},
    {"type": "temporal", "events": ["test.a", "test.b"]},
    {"type": "event_count", "condition": {"gte": 1000}},
]


@pytest.mark.parametrize("correlation", KINDS, ids=lambda c: c["type"])
def test_reverse_order_scans_each_window_once(
    correlation: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 events of one group in reverse time order, none firing: the window contents are read
    a bounded number of times per event (a rescan per later event made it quadratic per event)."""
    scans = 0
    original = GroupState.in_window

    def counted(self: GroupState, end: float, length: float) -> Any:
        nonlocal scans
        scans += 1
        return original(self, end, length)

    monkeypatch.setattr(GroupState, "in_window", counted)
    c = correlator(rule(window="1h", match=MATCH, correlation=correlation), lateness=7200)
    docs = [event(f"e{i}", at=i, type="test.b", attributes={"v": i % 2}) for i in range(300)]
    assert feed(c, *reversed(docs)) == []
    assert scans <= len(docs)


def test_late_event_still_completes_an_ordered_sequence() -> None:
    """A leak reported after the uses it precedes in event time opens the incident at the
    earliest window that completes the sequence: the leak and the first use after it."""
    c = correlator(
        rule(
            window="1h",
            match=MATCH,
            correlation={"type": "temporal_ordered", "events": ["test.a", "test.b"]},
        ),
        lateness=7200,
    )
    uses = [event(f"use{i}", at=100 + i, type="test.b") for i in range(50)]
    assert feed(c, *reversed(uses)) == []
    [change] = feed(c, event("leak", at=50, type="test.a"))
    assert change.change == "opened"
    assert [e["id"] for e in change.events] == ["use0", "leak"]  # arrival order
