"""The correlation topic's micro-batch format: events once per message, records by index."""

from __future__ import annotations

import orjson

from responder.streams import records
from responder.streams.records import PartitionBatch, Record, decode


def _docs(n: int, pad: int = 10) -> list[bytes]:
    return [orjson.dumps({"id": f"e{i}", "source": "t", "pad": "x" * pad}) for i in range(n)]


def test_round_trip_keeps_every_record_and_its_event() -> None:
    docs = _docs(3)
    batch = PartitionBatch(docs)
    batch.records += [
        Record("r1", "r1|[1]", {"a": 1}, 1.5, 0),
        Record("r2", "r2|[1]", {"b": 1}, 1.5, 0),  # the same event for a second rule
        Record("r1", "r1|[2]", {"a": 2}, 2.0, 2),
    ]
    messages = list(batch.messages())
    assert len(messages) == 1
    assert messages[0].count(b'"id":"e0"') == 1  # shipped once, referenced twice
    assert b'"id":"e1"' not in messages[0]  # an event no record points at is not shipped
    out = list(decode(messages[0]))
    assert [(r, k, g, t, d["id"]) for r, k, g, t, d in out] == [
        ("r1", "r1|[1]", {"a": 1}, 1.5, "e0"),
        ("r2", "r2|[1]", {"b": 1}, 1.5, "e0"),
        ("r1", "r1|[2]", {"a": 2}, 2.0, "e2"),
    ]


def test_large_batches_are_cut_into_self_contained_messages(monkeypatch) -> None:
    monkeypatch.setattr(records, "CHUNK_BYTES", 1000)
    docs = _docs(40, pad=100)
    batch = PartitionBatch(docs)
    batch.records += [Record("r", f"r|{i}", {}, float(i), i) for i in range(40)]
    batch.records.append(Record("r", "r|again", {}, 0.0, 0))  # points back at the first event
    messages = list(batch.messages())
    assert len(messages) > 3
    assert all(len(m) < 1000 + 400 for m in messages)
    decoded = [rec for m in messages for rec in decode(m)]
    assert [k for _, k, _, _, _ in decoded] == [f"r|{i}" for i in range(40)] + ["r|again"]
    assert decoded[-1][4]["id"] == "e0"  # resolved within its own message
