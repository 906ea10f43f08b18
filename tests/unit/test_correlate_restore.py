"""The correlation stage's restore: a restored window serializes and correlates as the one that
was written; an entry that cannot be restored is logged, dead-lettered and skipped (its group
starts afresh) while the others are restored; the garbage collector stays out of its way."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import os
from typing import Any

import orjson
import pytest
import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaTimeoutError
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from responder.correlation.match import MISSING
from responder.correlation.rules import Rule, RuleSet
from responder.correlation.window import (
    GroupState,
    OpenIncident,
    WindowEvent,
    state_from_dict,
    state_to_dict,
    window_event,
)
from responder.events.schema import Severity
from responder.settings import CorrelationSettings, KafkaSettings
from responder.streams import correlate
from responder.streams.collector import collection_paused
from responder.streams.correlate import WATERMARK_KEY, CorrelateStage
from responder.streams.kafka import consumer_record
from responder.streams.native_windows import NativeWindows
from tests.support.builders import event, rule

BY_IP = rule(
    id="by-ip",
    window="10m",
    correlation={"type": "value_count", "condition": {"field": "actor.ip", "gte": 3}},
)
COUNT = rule(id="count", window="10m")


def written(rule: Rule, docs: list[dict[str, Any]], incident: bool = True) -> bytes:
    """A changelog value as a flush writes it: a state fed parsed events, one open incident."""
    state = GroupState()
    for i, doc in enumerate(docs):
        state.add(window_event(rule, doc, 1000.0 + 10 * i))
    if incident:
        state.incident = OpenIncident(
            "inc-1", "Burst", 3, 1000.0, 1010.0, 2, {(d["source"], d["id"]) for d in docs}
        )
    return orjson.dumps(state_to_dict(state))


def parsed_form(rule: Rule, data: dict[str, Any]) -> GroupState:
    """The restore as it was, with every event body parsed: what an entry must restore to (or
    fail with) still."""
    inc = data.get("incident")
    state = GroupState(
        events=[window_event(rule, body, t, seq) for t, seq, body in data["events"]],
        incident=None
        if inc is None
        else OpenIncident(
            id=inc["id"],
            title=inc["title"],
            severity=inc["severity"],
            first_seen=inc["first_seen"],
            last_seen=inc["last_seen"],
            version=inc["version"],
            event_keys={(s, i) for s, i in inc["event_keys"]},
        ),
        max_time=data["max_time"],
        next_seq=data["next_seq"],
    )
    return shaped_as_written(state)


def shaped_as_written(state: GroupState) -> GroupState:
    """The restore's refusals, written out plainly: the types a flush writes, or ValueError."""

    def finite(value: Any) -> bool:
        return type(value) in (int, float) and math.isfinite(value)

    def texts(*values: Any) -> bool:
        return all(type(v) is str for v in values)

    sound = all(
        finite(e.time) and type(e.seq) is int and texts(e.source, e.id, e.type)
        for e in state.events
    )
    sound = sound and type(state.next_seq) is int
    sound = sound and (finite(state.max_time) or (state.max_time is None and not state.events))
    i = state.incident
    if i is not None:
        sound = sound and texts(i.id, i.title) and type(i.version) is int
        sound = sound and type(i.severity) is int and i.severity in {int(s) for s in Severity}
        sound = sound and finite(i.first_seen) and finite(i.last_seen)
        sound = sound and all(texts(s, k) for s, k in i.event_keys)
    if not sound:
        raise ValueError("not the shape a flush writes")
    return state


def same_event(a: WindowEvent, b: WindowEvent) -> bool:
    return (
        (a.time, a.seq, a.key, a.type, a.severity, a.doc())
        == (
            b.time,
            b.seq,
            b.key,
            b.type,
            b.severity,
            b.doc(),
        )
        and (a.value is MISSING) == (b.value is MISSING)
        and (a.value is MISSING or a.value == b.value)
    )


def same_state(a: GroupState, b: GroupState) -> bool:
    return (
        len(a.events) == len(b.events)
        and all(same_event(x, y) for x, y in zip(a.events, b.events, strict=True))
        and a.incident == b.incident
        and (a.max_time, a.next_seq, a.keys, a.oldest) == (b.max_time, b.next_seq, b.keys, b.oldest)
    )


def test_a_restored_window_is_the_written_one_and_writes_the_same_bytes() -> None:
    docs = [
        event("e1", actor={"ip": "10.0.0.1"}, attributes={"score": 0.25, "tags": ["a", "b"]}),
        event("e2", actor={"ip": "10.0.0.2"}, severity="critical"),
        event("e3", source="other", labels={"app.kubernetes.io/name": "x"}),  # no actor.ip
    ]
    value = written(BY_IP, docs)
    restored = state_from_dict(BY_IP, orjson.loads(value))
    # the bodies stay serialized, as live events' do, and are written back byte for byte
    assert all(e.body is None and e.raw is not None for e in restored.events)
    assert same_state(restored, parsed_form(BY_IP, orjson.loads(value)))
    assert [e.value for e in restored.events][:2] == ["10.0.0.1", "10.0.0.2"]
    assert restored.events[2].value is MISSING
    assert restored.seen(("unit", "e2")) and not restored.seen(("unit", "e4"))
    assert orjson.dumps(state_to_dict(restored)) == value
    assert [e.doc() for e in restored.events] == docs


HOSTILE = [
    (("next_seq",), "x"),
    (("next_seq",), True),
    (("max_time",), "late"),
    (("events", 0, 0), "yesterday"),
    (("events", 0, 0), False),
    (("events", 0, 1), 1.5),
    (("events", 0, 2, "id"), 7),
    (("incident", "last_seen"), "z"),
    (("incident", "version"), "v"),
    (("incident", "severity"), 99),
    (("incident", "title"), ["a"]),
    (("incident", "event_keys"), [[1, 2]]),
]


@pytest.mark.parametrize(("spot", "new"), HOSTILE)
def test_an_entry_of_another_shape_is_refused_not_restored_to_fail_later(
    spot: tuple[Any, ...], new: Any
) -> None:
    """Written by whoever can write the changelog: restored, such a window would fail every
    later event of its group (never correlated again) or its next flush."""
    data = replaced(orjson.loads(written(BY_IP, [event("e1", actor={"ip": "a"})])), spot, new)
    with pytest.raises(ValueError, match="restored"):
        state_from_dict(BY_IP, data)


def test_restored_windows_of_no_event_and_of_events_out_of_order() -> None:
    empty = state_from_dict(COUNT, orjson.loads(written(COUNT, [], incident=True)))
    assert empty.events == [] and empty.keys == set() and empty.oldest == float("inf")
    assert empty.incident is not None
    data = orjson.loads(written(COUNT, [event("a"), event("b"), event("c")], incident=False))
    data["events"].reverse()  # arrival order is not time order
    restored = state_from_dict(COUNT, data)
    assert restored.oldest == 1000.0 and restored.keys == {
        ("unit", "a"),
        ("unit", "b"),
        ("unit", "c"),
    }
    assert same_state(restored, parsed_form(COUNT, data))


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
SPOTS = [
    (),
    ("events",),
    ("events", 0),
    ("events", 0, 0),
    ("events", 0, 1),
    ("events", 0, 2),
    ("events", 0, 2, "source"),
    ("events", 0, 2, "id"),
    ("events", 0, 2, "type"),
    ("events", 0, 2, "severity"),
    ("events", 0, 2, "actor"),
    ("events", 0, 2, "actor", "ip"),
    ("events", 1, 0),
    ("incident",),
    ("incident", "id"),
    ("incident", "event_keys"),
    ("incident", "event_keys", 0),
    ("max_time",),
    ("next_seq",),
]


def replaced(data: Any, spot: tuple[Any, ...], new: Any) -> Any:
    if not spot:
        return new
    head, rest = spot[0], spot[1:]
    if isinstance(data, dict) and isinstance(head, str):
        return {**data, head: replaced(data.get(head), rest, new)}
    if isinstance(data, list) and isinstance(head, int) and head < len(data):
        return [replaced(v, rest, new) if i == head else v for i, v in enumerate(data)]
    return data


def outcome(build: Any, data: Any) -> tuple[str, Any]:
    try:
        state = build(BY_IP, data)
    except Exception:  # refused: the stage dead-letters it
        return ("raises", None)
    return ("state", orjson.dumps(state_to_dict(state)))


@settings(max_examples=400, deadline=None)
@given(spot=st.sampled_from(SPOTS), new=JSON, drop=st.booleans())
def test_a_corrupt_entry_fails_as_it_did_and_a_sound_one_restores_the_same(
    spot: tuple[Any, ...], new: Any, drop: bool
) -> None:
    """Any one field of a written entry replaced by any JSON value (or removed): restoring it
    is refused where the parsed form refused it, or gives the state the parsed form gave."""
    base = orjson.loads(
        written(BY_IP, [event("e1", actor={"ip": "10.0.0.1"}), event("e2", actor={"ip": "b"})])
    )
    if drop and len(spot) == 1:
        data = {k: v for k, v in base.items() if k != spot[0]}
    else:
        data = replaced(base, spot, new)
    data = orjson.loads(orjson.dumps(data))  # what a changelog value parses to
    shared = {"unit": "unit", "test.seen": "test.seen"}  # as another window restored them

    def restore(rule: Rule, data: dict[str, Any]) -> GroupState:
        return state_from_dict(rule, data, shared)

    assert outcome(restore, data) == outcome(parsed_form, data)
    assert outcome(state_from_dict, data) == outcome(parsed_form, data)


def compiled_store(rules: RuleSet) -> Any:
    stage = CorrelateStage(KafkaSettings(), rules, CorrelationSettings(), native=True)
    if not stage.compiled_windows:
        if os.environ.get("RESPONDER_REQUIRE_NATIVE") == "1":  # (CI builds it)
            pytest.fail("responder-native is not installed")
        pytest.skip("responder-native is not built")
    return stage.new_store()


@settings(max_examples=400, deadline=None)
@given(spot=st.sampled_from(SPOTS), new=JSON, drop=st.booleans())
def test_the_compiled_restore_takes_only_what_python_restores_and_restores_the_same(
    spot: tuple[Any, ...], new: Any, drop: bool
) -> None:
    """The compiled engine reads a changelog value itself only where it is the shape a flush
    writes; whatever it takes, Python restores to the same window (the same bytes written back,
    a forged integer time as the same float); whatever Python refuses, it leaves to Python."""
    base = orjson.loads(
        written(BY_IP, [event("e1", actor={"ip": "10.0.0.1"}), event("e2", actor={"ip": "b"})])
    )
    if drop and len(spot) == 1:
        data = {k: v for k, v in base.items() if k != spot[0]}
    else:
        data = replaced(base, spot, new)
    value = orjson.dumps(data)
    store = compiled_store(RuleSet([BY_IP]))
    newest = compiled_restore(store, 'by-ip|["x"]', value)
    try:
        expected = state_from_dict(BY_IP, orjson.loads(value))
    except Exception:
        assert newest is None and 'by-ip|["x"]' not in store
        return
    if newest is None:  # left to Python, which restores it
        assert 'by-ip|["x"]' not in store
        return
    assert newest == expected.max_time
    assert same_state(store['by-ip|["x"]'], expected)
    written_back = store.changelog('by-ip|["x"]')
    python = orjson.dumps(state_to_dict(expected)) if not expected.empty else None
    if written_back is None or python is None:
        assert written_back == python
    else:
        assert orjson.loads(written_back) == orjson.loads(python)


def test_the_compiled_restore_takes_what_a_flush_writes_byte_for_byte() -> None:
    docs = [
        event("e1", actor={"ip": "10.0.0.1"}, attributes={"score": 0.25, "big": 1e16}),
        event("e2", actor={"ip": "10.0.0.2"}, severity="critical", labels={"a.b": "é\n"}),
        event("e3", source="other"),  # no actor.ip: MISSING
    ]
    value = written(BY_IP, docs)
    store = compiled_store(RuleSet([BY_IP]))
    assert compiled_restore(store, 'by-ip|["x"]', value) == 1020.0
    assert store.changelog('by-ip|["x"]') == value
    assert same_state(store['by-ip|["x"]'], state_from_dict(BY_IP, orjson.loads(value)))
    assert [e.value for e in store['by-ip|["x"]'].events][:2] == ["10.0.0.1", "10.0.0.2"]


class DeadLetters:
    """The producer's send, as the DLQ gets it: queued, acknowledged once awaited."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]] = []
        self.fail = fail

    async def send(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        self.sent.append((topic, value, key, dict(headers)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            done.set_exception(KafkaTimeoutError())
        else:
            done.set_result(None)
        return done


def changelog_record(key: str, value: bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    record = consumer_record("changelog", value, offset)
    return dataclasses.replace(record, key=key.encode())


CORRUPT = {
    "not JSON": b"{not json",
    "not an object": b"[1, 2]",
    "no events": orjson.dumps({"incident": None, "max_time": 5.0, "next_seq": 0}),
    "an event without a source": orjson.dumps(
        {
            "events": [[5.0, 0, {"id": "x", "type": "t", "severity": "low"}]],
            "incident": None,
            "max_time": 5.0,
            "next_seq": 1,
        }
    ),
    "an unknown severity": orjson.dumps(
        {
            "events": [[5.0, 0, {"source": "s", "id": "x", "type": "t", "severity": "dire"}]],
            "incident": None,
            "max_time": 5.0,
            "next_seq": 1,
        }
    ),
    "a newest time that is text": orjson.dumps(
        {"events": [], "incident": None, "max_time": "late", "next_seq": 0}
    ),
    # these two used to restore, then fail every later event of their group
    "a next sequence that is text": orjson.dumps(
        {"events": [], "incident": None, "max_time": 5.0, "next_seq": "x"}
    ),
    "an incident time that is text": orjson.dumps(
        {
            "events": [[5.0, 0, {"source": "s", "id": "x", "type": "t", "severity": "low"}]],
            "incident": {
                "id": "i",
                "title": "t",
                "severity": 3,
                "first_seen": 5.0,
                "last_seen": "z",
                "version": 1,
                "event_keys": [["s", "x"]],
            },
            "max_time": 5.0,
            "next_seq": 1,
        }
    ),
    "a body nested deeper than it could be written": b'{"events": [[5.0, 0, {"source": "s", '
    b'"id": "x", "type": "t", "severity": "low", "deep": '
    + b"[" * 300
    + b"]" * 300
    + b'}]], "incident": null, "max_time": 9e9, "next_seq": 1}',
}


@pytest.mark.parametrize("chunk", [correlate.RESTORE_CHUNK, 2], ids=["one-chunk", "chunks-of-2"])
@pytest.mark.parametrize("native", [False, True], ids=["python", "compiled"])
def test_the_stage_restores_every_sound_entry_and_dead_letters_each_corrupt_one(
    monkeypatch: pytest.MonkeyPatch, native: bool, chunk: int
) -> None:
    monkeypatch.setattr(correlate, "RESTORE_CHUNK", chunk)
    # a logger of its own: the module's may be bound already (cached) by an earlier test
    monkeypatch.setattr(correlate, "log", structlog.get_logger(correlate.__name__))
    rules = RuleSet([BY_IP, COUNT])
    stage = CorrelateStage(KafkaSettings(), rules, CorrelationSettings(), native=native)
    dlq = DeadLetters()
    stage.producer = dlq
    good = {
        'by-ip|["r1"]': written(BY_IP, [event("e1", actor={"ip": "10.0.0.1"})]),
        'count|["r2"]': written(COUNT, [event("e2"), event("e3")], incident=False),
    }
    records: dict[str, Any] = {}
    entries = [*good.items(), *((f'count|["{n}"]', v) for n, v in CORRUPT.items())]
    offsets = {}
    for offset, (name, value) in enumerate(entries):
        records[name] = changelog_record(name, value, offset)
        offsets[name.encode()] = str(offset).encode()
    records['unknown-rule|["x"]'] = changelog_record('unknown-rule|["x"]', good['count|["r2"]'], 99)

    with capture_logs() as logs:
        count = restore_one(stage, records)

    assert count == 2 and set(stage.stores[0]) == set(good)
    for key, value in good.items():
        rule_ = BY_IP if key.startswith("by-ip") else COUNT
        assert same_state(stage.stores[0][key], parsed_form(rule_, orjson.loads(value)))
    if not native:  # the Python store's windows share one copy of an event source or type
        by_ip, count_ = stage.stores[0]['by-ip|["r1"]'], stage.stores[0]['count|["r2"]']
        assert by_ip.events[0].source is count_.events[0].source is count_.events[1].source
        assert by_ip.events[0].type is count_.events[1].type
    assert stage.watermark[0] == 1010.0  # the newest of the restored windows, no corrupt one's
    failed = [e["key"] for e in logs if e["event"] == "changelog entry not restored"]
    assert failed == [f'count|["{n}"]' for n in CORRUPT]
    assert [(t, v, k) for t, v, k, _ in dlq.sent] == [
        (KafkaSettings().topics.dlq, v, f'count|["{n}"]'.encode()) for n, v in CORRUPT.items()
    ]
    for _, _, sent_key, headers in dlq.sent:
        assert sent_key is not None
        assert headers["responder.reason"].startswith(b"correlate restore")
        assert headers["responder.source.offset"] == offsets[sent_key]
    # a corrupt entry's group starts afresh, as a group never seen
    assert 'count|["not JSON"]' not in stage.stores[0]


@pytest.mark.parametrize("dlq_down", [False, True], ids=["dlq-up", "dlq-down"])
def test_a_flood_of_corrupt_entries_is_dead_lettered_in_one_go_and_the_windows_stay(
    monkeypatch: pytest.MonkeyPatch, dlq_down: bool
) -> None:
    """Each corrupt entry goes to the DLQ (awaited once, not one round trip each) but only the
    first few are logged one by one; a DLQ that cannot take them loses no sound window."""
    monkeypatch.setattr(correlate, "log", structlog.get_logger(correlate.__name__))
    stage = CorrelateStage(KafkaSettings(), RuleSet([COUNT]), CorrelationSettings())
    dlq = DeadLetters(fail=dlq_down)
    stage.producer = dlq
    good = written(COUNT, [event("e1")], incident=False)
    records: dict[str, Any] = {'count|["ok"]': changelog_record('count|["ok"]', good, 0)}
    flood = 3 * correlate.LOGGED_CORRUPT
    for n in range(flood):
        key = f'count|["bad{n}"]'
        records[key] = changelog_record(key, b"{not json", n + 1)

    with capture_logs() as logs:
        count = restore_one(stage, records)

    assert count == 1 and set(stage.stores[0]) == {'count|["ok"]'}
    assert len(dlq.sent) == flood
    one_by_one = [e for e in logs if e["event"] == "changelog entry not restored"]
    assert len(one_by_one) == correlate.LOGGED_CORRUPT
    (summary,) = [e for e in logs if e["event"] == "changelog entries not restored"]
    sent = 0 if dlq_down else flood
    assert (summary["dead_lettered"], summary["not_sent"]) == (sent, flood - sent)


def test_the_input_progress_entry_is_restored_as_progress_not_as_a_window() -> None:
    stage = CorrelateStage(KafkaSettings(), RuleSet([COUNT]), CorrelationSettings())
    marks = orjson.dumps({"partitions": [[0, 5000.0], [1, 7000.0]]})
    records = {
        WATERMARK_KEY: changelog_record(WATERMARK_KEY, marks, 0),
        'count|["r"]': changelog_record('count|["r"]', written(COUNT, [event("e")]), 1),
    }
    assert restore_one(stage, records) == 1
    assert set(stage.stores[0]) == {'count|["r"]'}
    assert stage.progress[0].current() == 5000.0


@pytest.mark.parametrize("was_enabled", [True, False])
def test_restore_pauses_garbage_collection_and_puts_it_back(was_enabled: bool) -> None:
    """Inside, no collection runs; afterwards the collector is as it was (on, or left off), and
    what was built inside is out of its scans (frozen), not all in the youngest generation."""
    if not was_enabled:
        gc.disable()
    gc.unfreeze()
    try:
        with collection_paused():
            assert not gc.isenabled()
            built = [{"n": [n]} for n in range(1000)]
        assert gc.isenabled() == was_enabled
        assert gc.get_freeze_count() >= 2000
        assert not any(o is built[0] for o in gc.get_objects())
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_large_window_restores_in_memory_of_its_size() -> None:
    """2,000 events in one entry (136 KB): the compiled restore once reserved the whole entry's
    length for each body, ~330 MB for this one and quadratic in the entry's size (an entry up to
    the topic's 5 MiB asked for hundreds of GB, on every restart)."""
    docs = [event(f"e{i}", actor={"ip": f"10.0.{i // 250}.{i % 250}"}) for i in range(2000)]
    value = written(BY_IP, docs)
    store = compiled_store(RuleSet([BY_IP]))
    resident = _resident_bytes()
    assert compiled_restore(store, 'by-ip|["x"]', value) == 1000.0 + 10 * 1999
    assert _resident_bytes() - resident < 64 * 1024 * 1024
    assert store.changelog('by-ip|["x"]') == value


def compiled_restore(store: NativeWindows, key: str, value: bytes) -> float | None:
    """One entry through the compiled restore: its newest event time, None if left to Python."""
    newest: float | None
    newest, left, panicked = store.restore_many([key], [value], 0)
    assert (newest is None) == (left == 0) and panicked == []
    return newest


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def restore_one(stage: CorrelateStage, records: dict[str, Any]) -> int:
    """Partition 0 restored from `records` (the newest record of each key), as `_restore` does
    once it has read them."""
    stage.restorer = Restorer({0: list(records.values())})
    return asyncio.run(stage._restore([0]))


class Restorer:
    """The restore's consumer over changelog records held here, a partition each; `fail_at`:
    the partition whose read raises."""

    def __init__(self, data: dict[int, list[Any]], fail_at: int | None = None) -> None:
        self.data, self.fail_at = data, fail_at
        self.at: dict[Any, int] = {}
        self.paused = False

    async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return {tp: len(self.data[tp.partition]) for tp in tps}

    async def beginning_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return {tp: 0 for tp in tps}

    def assign(self, tps: list[Any]) -> None:
        self.paused = False

    def seek(self, tp: Any, offset: int) -> None:
        self.at[tp] = offset

    def pause(self, *tps: Any) -> None:
        self.paused = True

    async def position(self, tp: Any) -> int:
        return self.at[tp]

    async def getmany(self, tp: Any, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        await asyncio.sleep(0.01)  # a fetch takes a while: builds run meanwhile
        if tp.partition == self.fail_at:
            raise KafkaTimeoutError()
        got = self.data[tp.partition][self.at[tp] : self.at[tp] + max_records]
        self.at[tp] += len(got)
        return {tp: got}


def records_of(entries: list[tuple[str, bytes]]) -> list[Any]:
    return [changelog_record(key, value, offset) for offset, (key, value) in enumerate(entries)]


def window_at(newest: float, python: bool = False) -> bytes:
    """A window whose newest event is at `newest`; `python`: of a shape the compiled restore
    leaves to Python (a sequence past 63 bits), which Python restores."""
    data = orjson.loads(written(COUNT, [event("e")], incident=False))
    data["events"][0][0] = data["max_time"] = newest
    if python:
        data["next_seq"] = 2**63 + 5
    return orjson.dumps(data)


@pytest.mark.parametrize("chunk", [correlate.RESTORE_CHUNK, 2, 1])
def test_windows_are_restored_in_their_order_so_a_cap_evicts_as_in_python(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Found in review: the compiled restore put every entry it takes first and the ones it
    leaves to Python after them, so under `max_groups_per_rule` other windows survived than in
    the Python store (eviction keeps the key just placed)."""
    monkeypatch.setattr(correlate, "RESTORE_CHUNK", chunk)
    entries = [
        ('count|["a"]', window_at(1.0, python=True)),
        ('count|["b"]', window_at(10.0)),
        ('count|["c"]', window_at(11.0)),
        ('count|["d"]', window_at(12.0)),  # over the cap: the oldest two others go (a, b)
    ]
    kept = []
    for native in (False, True):
        config = CorrelationSettings(max_groups_per_rule=3)
        stage = CorrelateStage(KafkaSettings(), RuleSet([COUNT]), config, native=native)
        if native and not stage.compiled_windows:
            pytest.skip("responder-native is not built")
        stage.producer = DeadLetters()
        stage.restorer = Restorer({0: records_of(entries)})
        assert asyncio.run(stage._restore([0])) == len(stage.stores[0]) <= 3
        kept.append(sorted(stage.stores[0]))
        assert stage.watermark[0] == 12.0
    assert kept[0] == kept[1] == ['count|["c"]', 'count|["d"]']


@pytest.mark.parametrize("native", [False, True], ids=["python", "compiled"])
def test_every_partition_is_read_built_and_put_in_place(native: bool) -> None:
    stage = CorrelateStage(KafkaSettings(), RuleSet([COUNT]), CorrelationSettings(), native=native)
    stage.producer = DeadLetters()
    marks = orjson.dumps({"partitions": [[0, 5000.0]]})
    data = {
        p: records_of(
            [(f'count|["{p}-{n}"]', window_at(100.0 * p + n)) for n in range(50)]
            + [(WATERMARK_KEY, marks)]
            + [('count|["corrupt"]', b"{not json")]
        )
        for p in range(3)
    }
    stage.restorer = Restorer(data)
    assert asyncio.run(stage._restore([0, 1, 2])) == 150
    for p in range(3):
        assert set(stage.stores[p]) == {f'count|["{p}-{n}"]' for n in range(50)}
        assert stage.watermark[p] == 100.0 * p + 49
        assert stage.progress[p].current() == 5000.0
    assert len(stage.producer.sent) == 3  # each partition's corrupt entry, dead-lettered
    assert stage.stats.restored_keys == 150 and stage.restorer.paused


@pytest.mark.parametrize("failure", ["dlq", "read"])
def test_a_restore_that_fails_puts_no_partition_in_place(failure: str) -> None:
    """Found in review: with the partitions built while the next is read, a build that failed
    left the others running, and they put their stores in place after the restore had failed
    (after the lock was let go, even after the partitions were revoked). Now nothing is put in
    place unless every partition is built, and no build outlives the restore."""
    stage = CorrelateStage(KafkaSettings(), RuleSet([COUNT]), CorrelationSettings(), native=True)
    stage.producer = DeadLetters()
    if failure == "dlq":  # partition 0's corrupt entry cannot be handed to the producer

        async def refused(*args: Any, **kwargs: Any) -> None:
            raise KafkaTimeoutError()

        stage.producer.send = refused
    data = {
        0: records_of([('count|["bad"]', b"{not json")]),
        1: records_of([(f'count|["{n}"]', window_at(float(n))) for n in range(30_000)]),
        2: records_of([('count|["two"]', window_at(1.0))]),
    }
    stage.restorer = Restorer(data, fail_at=2 if failure == "read" else None)

    async def restore() -> None:
        with pytest.raises(KafkaTimeoutError):
            await stage._restore([0, 1, 2])
        await asyncio.sleep(0.5)  # a build left running would have finished by now
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

    asyncio.run(restore())
    assert stage.stores == {} and stage.progress == {}
    assert set(stage.watermark.values()) <= {float("-inf")} and stage.stats.restored_keys == 0
    assert stage.restorer.paused
