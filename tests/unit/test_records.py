"""The correlation topic's micro-batch format, and changes serialized without parsing events."""

from __future__ import annotations

import json

import orjson
import pytest

from responder.correlation.engine import Correlator, Routed
from responder.correlation.match import MISSING
from responder.correlation.rules import RuleSet
from responder.correlation.window import GroupState
from responder.incidents.model import IncidentChange
from responder.streams import records
from responder.streams.records import Doc, PartitionBatch, Record, decode
from tests.support.builders import epoch, event, rule


def _docs(n: int, pad: int = 10) -> list[Doc]:
    return [
        Doc(orjson.dumps({"id": f"e{i}", "source": "t", "pad": "x" * pad}), "t", f"e{i}", "a.b", 2)
        for i in range(n)
    ]


def test_round_trip_keeps_every_record_and_its_event_bytes() -> None:
    docs = _docs(3)
    batch = PartitionBatch(docs)
    batch.records += [
        Record("r1", "r1|[1]", {"a": 1}, 1.5, 0),
        Record("r2", "r2|[1]", {"b": 1}, 1.5, 0, value="10.0.0.1"),  # same event, second rule
        Record("r1", "r1|[2]", {"a": 2}, 2.0, 2, value=None),  # null is a value, not missing
    ]
    [message] = list(batch.messages())
    assert message.count(b'"id":"e0"') == 1  # shipped once, referenced twice
    assert b'"id":"e1"' not in message  # an event no record points at is not shipped
    out = list(decode(message))
    assert [(r, k, g) for r, k, g, _ in out] == [
        ("r1", "r1|[1]", {"a": 1}),
        ("r2", "r2|[1]", {"b": 1}),
        ("r1", "r1|[2]", {"a": 2}),
    ]
    events = [e for *_, e in out]
    assert [(e.id, e.source, e.type, e.severity, e.time) for e in events] == [
        ("e0", "t", "a.b", 2, 1.5),
        ("e0", "t", "a.b", 2, 1.5),
        ("e2", "t", "a.b", 2, 2.0),
    ]
    assert [e.value for e in events] == [MISSING, "10.0.0.1", None]
    assert events[0].raw == docs[0].raw and events[0].body is None  # not parsed ...
    assert events[2].doc()["id"] == "e2"  # ... until asked


def test_large_batches_are_cut_into_self_contained_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(records, "CHUNK_BYTES", 1000)
    docs = _docs(40, pad=100)
    batch = PartitionBatch(docs)
    batch.records += [Record("r", f"r|{i}", {}, float(i), i) for i in range(40)]
    batch.records.append(Record("r", "r|again", {}, 0.0, 0))  # points back at the first event
    messages = list(batch.messages())
    assert len(messages) > 3
    assert all(len(m) < 1000 + 600 for m in messages)
    decoded = [rec for m in messages for rec in decode(m)]
    assert [k for _, k, _, _ in decoded] == [f"r|{i}" for i in range(40)] + ["r|again"]
    assert decoded[-1][3].doc()["id"] == "e0"  # resolved within its own message


def test_a_foreign_message_is_refused() -> None:
    with pytest.raises(ValueError, match="bad magic"):
        list(decode(b'[{"old": "format"}]'))


def test_stream_json_of_a_change_is_the_wire_model() -> None:
    """The worker writes `Change.to_json()` with event bytes embedded; the sink reads it as an
    IncidentChange that equals what replay builds from parsed events."""
    r = rule(window="10m", correlation={"type": "event_count", "condition": {"gte": 2}})
    engine = Correlator(RuleSet([r]))
    state = GroupState()
    docs = [event("e1", at=0), event("e2", at=30)]
    changes = []
    for doc in docs:
        raw = orjson.dumps(doc)
        [(_, _, _, ev)] = decode(
            next(
                PartitionBatch(
                    [Doc(raw, doc["source"], doc["id"], doc["type"], 1)],
                    [Record("r", "r|k", {"resource.id": "res-1"}, epoch(doc), 0)],
                ).messages()
            )
        )
        change = engine.feed(state, Routed("r", "r|k", {"resource.id": "res-1"}), ev)
        if change is not None:
            changes.append(change)
    [opened] = changes
    wire = IncidentChange.model_validate_json(opened.to_json())
    assert wire == opened.model()
    assert json.loads(opened.to_json())["events"] == docs
