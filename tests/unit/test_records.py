"""The correlation topic's micro-batch format, and changes serialized without parsing events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from responder.correlation.change import Change
from responder.correlation.engine import Correlator, route, routed_by_key
from responder.correlation.match import MISSING
from responder.correlation.rules import RuleSet
from responder.correlation.window import GroupState
from responder.events.schema import rfc3339
from responder.incidents.model import IncidentChange
from responder.streams import records
from responder.streams.records import Router, decode, read
from tests.support.builders import epoch, event, rule

BY_RESOURCE = rule(id="by-res", match={"type": "a.b"}, window="1h")
IPS = rule(
    id="ips",
    match={"type": "a.b"},
    window="1h",
    correlation={"type": "value_count", "condition": {"field": "actor.ip", "gte": 3}},
)
RULES = RuleSet([BY_RESOURCE, IPS])


def _event(i: int, *, ip: Any = MISSING, pad: int = 10, resource: str = "r1") -> dict[str, Any]:
    doc = event(f"e{i}", at=i, type="a.b", resource_id=resource, attributes={"pad": "x" * pad})
    if ip is not MISSING:
        doc["actor"] = {"ip": ip}
    return doc


def _route(router: Router, doc: dict[str, Any]) -> int:
    return router.add(doc, epoch(doc), orjson.dumps(doc))


def test_an_event_is_shipped_once_per_message_and_every_record_points_at_it() -> None:
    router = Router(RULES, 1)
    docs = [_event(0, ip="10.0.0.1"), _event(1), _event(2, ip=None, resource="r2")]
    assert [_route(router, d) for d in docs] == [2, 2, 2]
    [message] = router.messages()[0]
    assert message.count(b'"id":"e0"') == 1  # shipped once, referenced by both rules
    out = decode(message)
    assert [k for k, _ in out] == [
        'by-res|["r1"]',
        'ips|["r1"]',
        'by-res|["r1"]',
        'ips|["r1"]',
        'by-res|["r2"]',
        'ips|["r2"]',
    ]
    events = [e for _, e in out]
    assert [(e.id, e.source, e.type, e.severity, e.time) for e in events[:2]] == [
        ("e0", docs[0]["source"], "a.b", records.RANK["low"], epoch(docs[0])),
    ] * 2
    # the counted value: only for the value_count rule; absent is not null
    assert [e.value for e in events] == [MISSING, "10.0.0.1", MISSING, MISSING, MISSING, None]
    assert events[0].raw == orjson.dumps(docs[0]) and events[0].body is None  # not parsed ...
    assert events[5].doc()["id"] == "e2"  # ... until asked
    assert events[0] is not events[1]  # each group keeps its own (its arrival number)


def test_the_group_comes_back_from_the_key_as_route_made_it() -> None:
    doc = event("e1", type="a.b", attributes={"n": 1.0, "flag": True})
    by_values = rule(id="g", match={"type": "a.b"}, group_by=["attributes.n", "attributes.flag"])
    grouped = RuleSet([by_values])
    [(rule_id, key, group)] = route(grouped, doc)
    router = Router(grouped, 1)
    _route(router, doc)
    [(decoded_key, _)] = decode(router.messages()[0][0])
    assert decoded_key == key
    assert routed_by_key(grouped, key) == (rule_id, key, group)
    assert routed_by_key(RuleSet([]), key) is None  # the rule went away: skipped, not failed


@pytest.mark.parametrize(
    "key",
    ['g|["only one"]', "g|not json", "g", 'g|{"a": 1}', 7, ["g"]],
)
def test_a_key_route_could_not_have_made_is_refused(key: Any) -> None:
    grouped = RuleSet([rule(id="g", match={"type": "a.b"}, group_by=["resource.id", "type"])])
    with pytest.raises(ValueError):
        routed_by_key(grouped, key)


def test_large_batches_are_cut_into_self_contained_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(records, "CHUNK_BYTES", 1000)
    router = Router(RULES, 1)
    docs = [_event(i, pad=100, resource=f"r{i}") for i in range(40)]
    for doc in docs:
        _route(router, doc)
    router.progress = {0: 39.0}
    messages = router.messages()[0]
    assert len(messages) > 3
    assert all(len(m) < 1000 + 800 for m in messages)
    decoded = [rec for m in messages for rec in decode(m)]
    assert [e.id for _, e in decoded] == [f"e{i}" for i in range(40) for _ in range(2)]
    assert all(e.raw is not None and orjson.loads(e.raw)["id"] == e.id for _, e in decoded)
    assert [read(m)[1] for m in messages] == [[]] * (len(messages) - 1) + [[(0, 39.0)]]


def test_a_foreign_message_is_refused() -> None:
    with pytest.raises(ValueError, match="bad magic"):
        decode(b'[{"old": "format"}]')


def _forged(docs: Any, recs: Any) -> bytes:
    header = orjson.dumps({"docs": docs, "recs": recs})
    return records.MAGIC + len(header).to_bytes(4, "big") + header + b'{"id":"x"}'


@pytest.mark.parametrize(
    ("docs", "recs"),
    [
        ([[0, 10, "s", "x", "t", 1, 0.0]], [["k|[1]", 1]]),  # no such event
        ([[0, 10, "s", "x", "t", 1, 0.0]], [["k|[1]", -1]]),  # counted from the end: no
        ([[0, 11, "s", "x", "t", 1, 0.0]], [["k|[1]", 0]]),  # past the message's end
        ([[-1, 10, "s", "x", "t", 1, 0.0]], [["k|[1]", 0]]),
        ([["0", 10, "s", "x", "t", 1, 0.0]], [["k|[1]", 0]]),
        ([[0, 10, "s", "x"]], [["k|[1]", 0]]),  # a head of the wrong size
        ([[0, 10, "s", "x", "t", 1, 0.0]], [["k|[1]"]]),
    ],
)
def test_a_forged_header_is_undecodable(docs: Any, recs: Any) -> None:
    """What the stage sends to the DLQ as `undecodable correlation message`."""
    with pytest.raises((ValueError, TypeError, IndexError)):
        decode(_forged(docs, recs))


def test_stream_json_of_a_change_is_the_wire_model() -> None:
    """The worker writes `Change.to_json()` with event bytes embedded; the sink reads it as an
    IncidentChange that equals what replay builds from parsed events."""
    r = rule(
        id="r",
        match={"type": "a.b"},
        window="10m",
        correlation={"type": "event_count", "condition": {"gte": 2}},
    )
    rules = RuleSet([r])
    engine = Correlator(rules)
    state = GroupState()
    docs = [event("e1", at=0, type="a.b"), event("e2", at=30, type="a.b")]
    changes = []
    for doc in docs:
        router = Router(rules, 1)
        _route(router, doc)
        [(key, ev)] = decode(router.messages()[0][0])
        routed = routed_by_key(rules, key)
        assert routed is not None
        change = engine.feed(state, routed, ev)
        if change is not None:
            changes.append(change)
    [opened] = changes
    wire = IncidentChange.model_validate_json(opened.to_json())
    assert wire == opened.model()
    assert json.loads(opened.to_json())["events"] == docs


@given(st.floats(min_value=-62135596800.0, max_value=253402300799.0))
def test_a_change_writes_its_times_as_rfc3339_does(ts: float) -> None:
    """`to_json` lets orjson write the times; the text is the one the events' times use."""
    change = Change("opened", 1, "i", "r", "k", "t", "low", {}, ts, ts, 0, [])
    wire = orjson.loads(change.to_json())
    when = rfc3339(datetime.fromtimestamp(ts, UTC))
    assert wire["first_seen"] == wire["last_seen"] == when
