"""The compiled correlation engine (`responder_native.Windows`, behind `NativeWindows`) against
the Python one (`Correlator.feed` over a `GroupStore`), byte for byte: a suite whose purpose is
to find where they differ. Python is the reference: every divergence is a bug of the compiled
side.

Two correlation stages, `CorrelateStage(..., native=False)` and `native=True`, over the same
random rule set (every correlation type, windows, suppress, severity, titles plain and
sandboxed) and settings (caps small enough to evict, lateness), are handed the same batches:
messages as ingest's router writes them, of events in order, late, redelivered and reusing an
(source, id) pair, with group and counted values of every JSON type and times at the edges.
After every batch they must agree on every incident change (its JSON bytes), dead letter
(offset, reason, detail), changed key, watermark, record count and eviction, on each changed
key's changelog entry (bytes) and on every window state (`store[key]`). Between batches the
windows are flushed, restored (the compiled restore, or `state_from_dict` and `put`) and swept
(`begin_sweep`, then `sweep` a few keys at a time, one key dropped meanwhile) on both sides.
Besides: forged message headers, records fed one at a time (the fallback for messages of
another shape, `NativeWindows.feed` against `stage._feed`), windows restored from changelog
entries of every shape `state_from_dict` takes, events through ingest.

Known differences, on purpose (native/src/windows.rs says why): the compiled engine refuses a
record whose time is not a number a float carries exactly (TypeError) or whose severity is not
a rank 0..4 (ValueError), and an event whose source, id or type is not text (TypeError), before
its window changes, where Python carries them or fails later; a forged integer time is carried
as a float, so a changelog may write `5.0` where Python writes `5` (those are compared parsed,
times as floats), and a window restored with an integer time beyond 2**53 is refused. Only
forged messages and entries hold such values: the hostile tests compare everything up to one,
then check that both stages survive it.

Without the compiled module the file is skipped, unless RESPONDER_REQUIRE_NATIVE=1 (then the
import fails loudly). Long hunts: HYPOTHESIS_PROFILE=fuzz.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from hypothesis import event, given, note, settings
from hypothesis import strategies as st
from pydantic import ValidationError

if os.environ.get("RESPONDER_REQUIRE_NATIVE") == "1":
    import responder_native
else:
    responder_native = pytest.importorskip("responder_native", exc_type=ImportError)

from responder.correlation.capacity import GroupStore
from responder.correlation.engine import route, routed_by_key
from responder.correlation.match import MISSING, get_path
from responder.correlation.rules import Rule, RuleSet
from responder.correlation.watermark import Watermarks
from responder.correlation.window import GroupState, WindowEvent, state_from_dict
from responder.settings import CorrelationSettings, KafkaSettings
from responder.streams import records
from responder.streams.correlate import CorrelateStage, restore_entries
from responder.streams.ingest_batch import IngestBatch
from responder.streams.kafka import consumer_record
from responder.streams.native_windows import NativeWindows

KAFKA = KafkaSettings()
TYPES = ["a.x", "a.y", "a.z", "b.w"]
SEVERITIES = ["info", "low", "medium", "high", "critical"]
BASE = 1_600_000_000.0  # 2020-09-13: event times well behind any wall clock
HORIZON = BASE + 10_000_000.0
"""The stages' horizon (wall clock plus skew), fixed: read at two moments it would differ."""


def budget(examples: int) -> int:
    """`examples` under the ci profile (100 by default), scaled up with the profile's own
    (HYPOTHESIS_PROFILE=fuzz runs 200 times as many)."""
    return max(examples, examples * settings().max_examples // 100)


def chance(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws (Hypothesis favours the ends of an integer range, so
    the test for rare cases sits in the middle of a wide one)."""
    return 5000 <= draw(st.integers(0, 9999)) < 5000 + 10000 // one_in


# -- values ------------------------------------------------------------------------------------

TEXTS = [
    "red",
    "blue",
    "",
    "caf\u00e9",
    "\U0001f600",
    "a\nb",
    "tab\there",
    'q"uote',
    "back\\slash",
    "nul\x00",
    "\x1f\x7f",
    "\u2028\u2029",
    "|pipe|",
    '["x"]',
    "\ufeff",
]
NUMBERS: list[Any] = [
    0,
    1,
    -1,
    7,
    2**53,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    1.0,
    0.5,
    -0.0,
    0.0,
    9007199254740992.0,
    1e16,
    1e19,
    1.5e-7,
    5e-324,
    -2.5,
]
NESTED: list[Any] = [
    {"a": 1},
    [["a", 1]],
    {"a": 1.0},
    {"a": True},
    [["a", True]],
    [1, [2, [3]]],
    [1, [2.0, [3]]],
    {"b": {"c": []}, "a": None},
    {"a": None, "b": {"c": []}},
    [],
    {},
    [[]],
    ["1"],
    [1],
    [True],
]
VALUES: list[Any] = [*TEXTS[:6], *NUMBERS, True, False, None, *NESTED, "1", "true"]
"""Values of a value_count field (1, 1.0, true, "1", {"a": 1} and [["a", 1]] among them)."""
GROUP_VALUES: list[Any] = [
    *TEXTS,
    *NUMBERS,
    True,
    False,
    *NESTED,
    "\u00e9" * 10_000,  # as long as a plain title prints (PLAIN_VALUE characters, not bytes)
    "\u00e9" * 10_001,  # longer: the sandbox renders the title
]
"""Group values of every JSON type (None: the event has no group)."""

GROUP_PATHS = ["g", "labels.team", "attributes.g", "attributes.deep.er", "resource.id"]
VALUE_PATHS = ["v", "attributes.v", "attributes.nest.v"]

TITLES: list[str | None] = [
    None,
    "{{ group['g'] }} seen {{ count }} times",
    "Key {{ group['labels.team'] }} / {{ group['attributes.g'] }}",
    "{{ count }}",
    'Plain caf\u00e9 "q" \\ \x01 \u2028 text',
    "{{ group['g'] | upper }}",
    "{{ event.title }} x{{ count }}",
    "{{ event['attributes']['v'] }}",
    "{{ rule.id }}: {{ group }}",
    "{{ group['nope'] }}!",
    "{{ group['g'] }}{{ group['resource.id'] }}{{ count }}{{ count }}",
    "{{ group['attributes.deep.er'] }}",
]


# -- rules -------------------------------------------------------------------------------------

RULE_IDS = ["r0", "r1.x", "r-2_b"]


@st.composite
def correlations(draw: st.DrawFn, types: list[str]) -> dict[str, Any] | None:
    kind = draw(st.sampled_from(["none", "event_count", "value_count", "temporal", "ordered"]))
    op = draw(st.sampled_from(["gte", "gt", "eq"]))
    n = draw(st.integers(0, 4))
    if kind == "none":
        return None
    if kind == "event_count":
        return {"type": "event_count", "condition": {op: n}}
    if kind == "value_count":
        path = draw(st.sampled_from(VALUE_PATHS))
        return {"type": "value_count", "condition": {"field": path, op: n}}
    wanted = draw(st.lists(st.sampled_from(types), min_size=1, max_size=4))  # repeats too
    return {"type": "temporal" if kind == "temporal" else "temporal_ordered", "events": wanted}


@st.composite
def rule_docs(draw: st.DrawFn, rule_id: str) -> dict[str, Any]:
    types = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=4, unique=True))
    match: dict[str, Any] = {"type": types}
    if chance(draw, 5):
        match = {"source|exists": True}  # every type
        types = TYPES
    incident: dict[str, Any] = {"kind": draw(st.sampled_from(["test", "privacy_breach"]))}
    if draw(st.booleans()):
        incident["severity"] = draw(st.sampled_from(SEVERITIES))
    title = draw(st.sampled_from(TITLES))
    if title is not None:
        incident["title"] = title
    if chance(draw, 4):
        incident["reportable"] = draw(st.sampled_from(["gdpr_personal_data_breach", "x_1"]))
    doc: dict[str, Any] = {
        "id": rule_id,
        "title": draw(st.sampled_from([f"Rule {rule_id}", "Rule of {{ count }}"])),
        "match": match,
        "group_by": draw(st.lists(st.sampled_from(GROUP_PATHS), min_size=1, max_size=2)),
        "window": draw(st.sampled_from([0.5, 1, 2, 5, 10, 60, 600])),
        "incident": incident,
    }
    correlation = draw(correlations(types))
    if correlation is not None:
        doc["correlation"] = correlation
    if draw(st.booleans()):
        doc["suppress"] = draw(st.sampled_from([0.25, 1, 3, 20, 3600]))
    return doc


@st.composite
def rule_sets(draw: st.DrawFn) -> RuleSet:
    count = draw(st.integers(1, len(RULE_IDS)))
    return RuleSet(Rule.model_validate(draw(rule_docs(i))) for i in RULE_IDS[:count])


@st.composite
def correlation_settings(draw: st.DrawFn) -> CorrelationSettings:
    return CorrelationSettings(
        allowed_lateness_s=draw(st.sampled_from([0.0, 1.0, 5.0, 600.0])),
        max_groups_per_rule=draw(st.sampled_from([1, 2, 3, 5, 100_000])),
        idle_partition_s=draw(st.sampled_from([2.5, 300.0])),
    )


# -- events ------------------------------------------------------------------------------------


@dataclass
class Ev:
    """One event as ingest hands it to the router: its document, epoch time, input partition."""

    doc: dict[str, Any]
    time: float
    input: int

    def body(self) -> bytes:
        return orjson.dumps(self.doc)


def document(
    source: str,
    event_id: str,
    kind: str,
    severity: str,
    group: Any,
    value: Any,
    team: str,
    resource: str,
    dotted: bool = False,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "source": source,
        "id": event_id,
        "type": kind,
        "severity": severity,
        "title": f"{kind} {event_id}",
        "labels": {"team": team},
        "resource": {"kind": "thing", "id": resource},
        "attributes": {},
    }
    attributes = doc["attributes"]
    if group is not MISSING:
        doc["g"] = group
        attributes["g"] = group
        attributes["deep"] = {"er": group}
    if value is not MISSING:
        doc["v"] = value
        attributes["v"] = value
        if dotted:
            attributes["nest.v"] = value  # a key with a dot: `attributes.nest.v` finds it too
        else:
            attributes["nest"] = {"v": value}
    return doc


@st.composite
def times(draw: st.DrawFn, newest: float | None, mode: str) -> float:
    """An event time: in order, late, or anywhere near the group's newest; sometimes at an
    edge (fractions of a microsecond, halves to round to even, the last second of year 9999,
    beyond what a datetime holds)."""
    if chance(draw, 40):
        return draw(
            st.sampled_from(
                [
                    BASE + 1 / 128,  # 7812.5 us: rounds half to even
                    BASE + 3 / 128,
                    BASE + 0.0000005,
                    BASE + 0.9999995,
                    BASE - 0.5,
                    253402300799.0,
                    253402300799.9999,
                    253402300799.9999995,  # rounds into year 10000
                    -62135596800.0,
                    -62135596800.4,
                    0.0,
                    -0.5,
                    1e12,
                    1e17,
                    9.3e18,
                    -9.3e18,
                    HORIZON + 5.0,
                ]
            )
        )
    step = draw(st.sampled_from([1.0, 0.5, 1 / 128, 0.001, 1e-6, 0.1]))
    if newest is None:
        base = BASE
    elif mode == "in order":
        base = newest + step * draw(st.integers(0, 4))
    elif mode == "late":
        base = newest - step * draw(st.integers(-2, 12))
    else:
        base = newest + step * draw(st.integers(-30, 30))
    if chance(draw, 4):
        base += draw(st.floats(0, 1, allow_nan=False))  # a fraction of microseconds
    return base


@st.composite
def streams(draw: st.DrawFn, *, max_size: int = 24) -> list[Ev]:
    """Events in arrival order: new ones, exact redeliveries and reused (source, id) pairs with
    other content (another group, another time)."""
    count = draw(st.integers(1, max_size))
    mode = draw(st.sampled_from(["in order", "late", "any"]))
    groups = draw(st.lists(st.sampled_from(GROUP_VALUES), min_size=1, max_size=3))
    inputs = draw(st.integers(1, 3))
    out: list[Ev] = []
    newest: float | None = None
    for n in range(count):
        if out and chance(draw, 6):
            out.append(draw(st.sampled_from(out)))  # redelivered as it was
            continue
        source = draw(st.sampled_from(["s1", "s2"]))
        event_id = f"e{n}"
        if out and chance(draw, 8):
            earlier = draw(st.sampled_from(out)).doc
            source, event_id = earlier["source"], earlier["id"]  # the same event, other content
        group = draw(st.sampled_from([*groups, MISSING])) if chance(draw, 10) else None
        group = draw(st.sampled_from(groups)) if group is None else group
        doc = document(
            source,
            event_id,
            draw(st.sampled_from(TYPES)),
            draw(st.sampled_from(SEVERITIES)),
            group,
            draw(st.sampled_from([*VALUES, MISSING])),
            draw(st.sampled_from(["red", "blue"])),
            draw(st.sampled_from(["res-1", "res-2"])),
            chance(draw, 5),
        )
        time = draw(times(newest, mode))
        if math.isfinite(time) and abs(time - BASE) < 1e6:
            newest = time if newest is None else max(newest, time)
        out.append(Ev(doc, time, draw(st.integers(0, inputs - 1))))
    return out


# -- the two stages ----------------------------------------------------------------------------


class Ticked(Watermarks):
    """Input progress on a clock of its own, a second per observation: the stage's monotonic
    clock, read at other moments by each stage, would make their idle partitions differ."""

    def __init__(self, idle_s: float) -> None:
        super().__init__(idle_s)
        self.ticks = 0.0

    def observe(self, partition: int, progress: float | None, now: float) -> None:
        self.ticks += 1.0
        super().observe(partition, progress, self.ticks)


def stage(rules: RuleSet, config: CorrelationSettings, partitions: int, native: bool) -> Any:
    correlate = CorrelateStage(KAFKA, rules, config, native=native)
    correlate.horizon = lambda: HORIZON  # type: ignore[method-assign]
    for p in range(partitions):
        correlate.stores[p] = correlate.new_store()
        correlate.progress[p] = Ticked(config.idle_partition_s)
    assert correlate.compiled_windows is native
    return correlate


def typed(value: Any) -> Any:
    """A value with its JSON type kept (1, 1.0 and true are equal in Python, not here)."""
    return "<missing>" if value is MISSING else orjson.dumps(value)


def same_number(a: Any, b: Any, loose: bool) -> bool:
    """Python's time (a float, or a forged integer) and the compiled engine's (a float)."""
    if loose and type(a) is int:
        return float(a) == b and type(b) is float
    return type(a) is type(b) and (a == b or (math.isnan(a) and math.isnan(b)))


def state_diff(a: GroupState, b: GroupState, loose: bool = False) -> str | None:
    """Where two window states differ (None: nowhere)."""
    if len(a.events) != len(b.events):
        return f"{len(a.events)} events against {len(b.events)}"
    for x, y in zip(a.events, b.events, strict=True):
        if not same_number(x.time, y.time, loose):
            return f"event time {x.time!r} against {y.time!r}"
        mine = (x.seq, x.source, x.id, x.type, x.severity, typed(x.value), x.raw)
        theirs = (y.seq, y.source, y.id, y.type, y.severity, typed(y.value), y.raw)
        if mine != theirs or (type(x.severity) is bool) != (type(y.severity) is bool):
            return f"event {mine!r} against {theirs!r}"
    i, j = a.incident, b.incident
    if (i is None) != (j is None):
        return f"incident {i!r} against {j!r}"
    if i is not None and j is not None:
        if (i.id, i.title, i.severity, i.version, i.event_keys) != (
            j.id,
            j.title,
            j.severity,
            j.version,
            j.event_keys,
        ):
            return f"incident {i!r} against {j!r}"
        if not (same_number(i.first_seen, j.first_seen, loose)) or not (
            same_number(i.last_seen, j.last_seen, loose)
        ):
            return f"incident times {i!r} against {j!r}"
    if not same_number(a.max_time, b.max_time, loose) or not same_number(a.oldest, b.oldest, loose):
        return f"times {a.max_time!r}/{a.oldest!r} against {b.max_time!r}/{b.oldest!r}"
    if (a.next_seq, a.keys) != (b.next_seq, b.keys):
        return f"next_seq/keys {a.next_seq!r} {a.keys!r} against {b.next_seq!r} {b.keys!r}"
    return None


def floated(entry: bytes | None) -> Any:
    """A changelog entry parsed, its times as floats."""
    if entry is None:
        return None
    data = orjson.loads(entry)
    data["events"] = [[float(t), seq, body] for t, seq, body in data["events"]]
    if data["max_time"] is not None:
        data["max_time"] = float(data["max_time"])
    inc = data["incident"]
    if inc is not None:
        inc["first_seen"], inc["last_seen"] = float(inc["first_seen"]), float(inc["last_seen"])
    return data


def same_entry(a: bytes | None, b: bytes | None, loose: bool) -> bool:
    if a == b:
        return True
    if not loose:
        return False
    read = outcome(floated, a), outcome(floated, b)
    return read[0] == read[1] if read[0][0] == "fed" else read[0][0] == read[1][0]


def _restored(store: Any, key: str, rule: Rule, value: bytes, strings: dict[str, str]) -> Any:
    """One changelog entry restored as the stage restores it (`restore_entries`)."""
    newest, failed = restore_entries(store, [key], [value], {rule.id: rule}, strings)
    if failed:
        raise failed[0][1]
    return newest


def restore_put(store: Any, key: str, rule: Rule, value: bytes, strings: dict[str, str]) -> None:
    store.put(key, state_from_dict(rule, orjson.loads(value), strings), rule.id)


def same_changelog(mine: Any, theirs: Any, key: str, loose: bool) -> None:
    """The key's changelog entry from both stores: the same bytes, or the same refusal (an
    integer orjson cannot write)."""
    a, b = outcome(mine.changelog, key), outcome(theirs.changelog, key)
    if a[0] == b[0] == "fed":
        assert same_entry(a[1], b[1], loose), (key, a[1], b[1])
    else:
        assert a == b, (key, a, b)


def dead(correlate: CorrelateStage) -> list[tuple[int, int, str, list[str]]]:
    return [(msg.partition, msg.offset, reason, detail) for msg, reason, detail in correlate.dead]


@dataclass
class Pair:
    """The Python stage and the compiled one, fed alike and compared after every step."""

    rules: RuleSet
    config: CorrelationSettings
    partitions: int
    loose: bool = False  # forged integer times: changelog entries compared parsed
    py: Any = None
    nat: Any = None
    offsets: dict[int, int] = field(default_factory=dict)
    changes: set[str] = field(default_factory=set)  # the kinds of change seen (statistics)

    def __post_init__(self) -> None:
        self.py = stage(self.rules, self.config, self.partitions, native=False)
        self.nat = stage(self.rules, self.config, self.partitions, native=True)

    def records(self, values: dict[int, list[bytes]]) -> dict[TopicPartition, list[Any]]:
        batch: dict[TopicPartition, list[Any]] = {}
        for p, messages in sorted(values.items()):
            tp = TopicPartition("correlate", p)
            for value in messages:
                offset = self.offsets.get(p, 0)
                self.offsets[p] = offset + 1
                batch.setdefault(tp, []).append(
                    consumer_record("correlate", value, offset, partition=p)
                )
        return batch

    def handle(self, values: dict[int, list[bytes]], *, compare: bool = True) -> None:
        batch = self.records(values)
        self.py.handle(batch)
        self.nat.handle(batch)
        if compare:
            self.agree()
        self.changes.update(v.split(b'"', 4)[3].decode() for _, v in self.py.outbox)
        self.py.outbox.clear()
        self.nat.outbox.clear()
        self.py.dead.clear()
        self.nat.dead.clear()

    def agree(self) -> None:
        py, nat = self.py, self.nat
        assert py.outbox == nat.outbox
        assert dead(py) == dead(nat)
        assert py.dirty == nat.dirty
        assert py.watermark == nat.watermark
        assert py.stats.records == nat.stats.records
        assert py.evictions == nat.evictions
        assert py.pending == nat.pending
        for p in range(self.partitions):
            for key in sorted(py.dirty.get(p, ())):  # what a flush writes (drops empty windows)
                same_changelog(py.stores[p], nat.stores[p], key, self.loose)
            self.same_stores(p)

    def same_stores(self, p: int) -> None:
        mine: GroupStore = self.py.stores[p]
        theirs: NativeWindows = self.nat.stores[p]
        assert len(mine) == len(theirs)
        assert set(mine) == set(theirs)
        assert dict(mine.counts) == theirs.counts()
        for key in mine:
            assert key in theirs
            assert state_diff(mine[key], theirs[key], self.loose) is None, (
                key,
                state_diff(mine[key], theirs[key], self.loose),
            )

    def flush(self) -> None:
        """What a flush does to the stores: each changed key's entry written (and compared)."""
        for p in range(self.partitions):
            keys = self.py.dirty.pop(p, set())
            assert keys == self.nat.dirty.pop(p, set())
            for key in sorted(keys):
                same_changelog(self.py.stores[p], self.nat.stores[p], key, self.loose)

    def restore(self, put: bool = False) -> None:
        """Each partition's windows written out and restored into a fresh store, as a restart
        restores them (`restore_entries`: the compiled restore where it takes the entry), or with
        `put` from the GroupState `state_from_dict` makes; then compared. An entry that is not
        restored (it cannot be read: a forged event of no bytes) is refused alike."""
        refused: list[list[tuple[str, str]]] = []
        for correlate in (self.py, self.nat):
            refused.append([])
            for p in range(self.partitions):
                old = correlate.stores[p]
                written = {key: outcome(old.changelog, key) for key in sorted(old)}
                store = correlate.new_store()
                strings: dict[str, str] = {}
                for key, (how, value) in written.items():
                    if how != "fed" or value is None:
                        continue  # (an entry orjson cannot write: the flush raised)
                    rule = self.rules.rules[key.split("|", 1)[0]]
                    if put:
                        done = outcome(restore_put, store, key, rule, value, strings)
                    else:
                        done = outcome(_restored, store, key, rule, value, strings)
                    if done[0] != "fed":
                        refused[-1].append((key, done[0]))
                correlate.stores[p] = store
                correlate._evicted(p, store)
        assert refused[0] == refused[1]
        for p in range(self.partitions):
            self.same_stores(p)
        assert self.py.evictions == self.nat.evictions

    def sweep(self, horizon: float) -> None:
        for p in range(self.partitions):
            gone = min(self.py.stores[p], default=None)  # dropped once the sweep began
            found = []
            for side in (self.py, self.nat):
                store = side.stores[p]
                total = store.begin_sweep()
                if gone is not None:
                    store.drop(gone)
                dropped, looked, left = [], 0, total
                while left:
                    some, n, left = store.sweep(horizon, 3)
                    assert n <= 3 and (n == 3 or not left)
                    dropped += some
                    looked += n
                assert looked == total and store.sweep(horizon, 3) == ([], 0, 0)
                assert gone not in dropped
                side.dirty[p].update(dropped)
                found.append(sorted(dropped))
            assert found[0] == found[1]
            self.same_stores(p)


def messages_of(
    rules: RuleSet, partitions: int, events: list[Ev], held: list[int], announce: bool
) -> dict[int, list[bytes]]:
    """The correlation messages ingest's router writes for these events."""
    router = records.Router(rules, partitions)
    router.hold(held)
    for e in events:
        router.add(dict(e.doc), e.time, e.body(), e.input)
    return router.messages(announce)


# -- steps -------------------------------------------------------------------------------------


@dataclass
class Scenario:
    rules: RuleSet
    config: CorrelationSettings
    partitions: int
    steps: list[tuple[str, Any]]

    def __repr__(self) -> str:
        rules = [r.model_dump(exclude_defaults=True) for r in self.rules.rules.values()]
        steps = "\n  ".join(repr(s) for s in self.steps)
        return f"Scenario(rules={rules!r},\n config={self.config!r},\n partitions={self.partitions}, steps=\n  {steps})"


@st.composite
def scenarios(draw: st.DrawFn, *, max_steps: int = 6, max_events: int = 24) -> Scenario:
    rules = draw(rule_sets())
    steps: list[tuple[str, Any]] = []
    stream = draw(streams(max_size=max_events))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=max_steps)))
    start = 0
    for cut in [*cuts, len(stream)]:
        part = stream[start:cut]
        start = cut
        held = draw(st.lists(st.integers(0, 3), max_size=2))
        steps.append(("batch", (part, held, draw(st.booleans()))))
        extra = draw(st.sampled_from(["", "", "", "flush", "restore", "put", "sweep"]))
        if extra == "sweep":
            steps.append(("sweep", BASE + draw(st.integers(-5, 40))))
        elif extra:
            steps.append((extra, None))
    return Scenario(rules, draw(correlation_settings()), draw(st.integers(1, 3)), steps)


def run(scenario: Scenario, loose: bool = False) -> Pair:
    pair = Pair(scenario.rules, scenario.config, scenario.partitions, loose=loose)
    for kind, arg in scenario.steps:
        if kind == "batch":
            events, held, announce = arg
            pair.handle(messages_of(scenario.rules, scenario.partitions, events, held, announce))
        elif kind == "flush":
            pair.flush()
        elif kind in ("restore", "put"):
            pair.restore(put=kind == "put")
        elif kind == "sweep":
            pair.sweep(arg)
    pair.flush()
    pair.restore()
    pair.restore(put=True)
    return pair


def _statistics(pair: Pair) -> None:
    event(f"records fed: {'none' if not pair.py.stats.records else 'some'}")
    event(f"evictions: {'some' if pair.py.evictions else 'none'}")
    for kind in sorted(pair.changes):
        event(f"changes: {kind}")


@settings(max_examples=budget(300))
@given(scenarios())
def test_messages_correlate_alike(scenario: Scenario) -> None:
    """Messages as ingest writes them, in order, late and duplicated, through both stages."""
    note(repr(scenario))
    _statistics(run(scenario))


# -- forged messages ---------------------------------------------------------------------------

HOSTILE: dict[str, list[Any]] = {
    "time": [
        5,
        int(BASE),
        int(BASE) + 3,
        "yesterday",
        None,
        True,
        1e300,
        -1e300,
        1e17,
        9.3e18,
        1e12,
        2**53 + 1,
        2**63,
        [1.0],
        {"t": 1},
    ],
    "rank": [5, -1, "low", 1.0, True, None, 2**64 - 1, 0, 4],
    "text": [5, None, ["x"], {"a": 1}, "", 1.5, True, "s1", "a.x", "e0"],
    "bounds": [-1, 10**6, "0", 1.0, None, 0],
    "key": [
        5,
        None,
        True,
        ["r0"],
        "nope",
        'r0|["a"',
        "r0|[]",
        'gone|["x"]',
        'r0|{"a": 1}',
        "r0|[1, 2, 3]",
        "r0|null",
        "r0|",
        "|[]",
        'r0|["red"]',
        'r1.x|["red"]',
        "r0|[18446744073709551615]",
        "r0|[1e400]",
        'r0|["\\ud800"]',
        # spelled otherwise than ingest spells them, yet valid (the compiled side resolves
        # the common shape itself, Python the rest)
        'r0| [ "red" ]',
        'r0|["\\u0072ed"]',
        'r0|["red"]\n',
        "r0|[1.0e0]",
        "r0|[1E2]",
        "r0|[-0]",
        "r0|[-0.0]",
        "r0|[1e-400]",
        "r0|[-1e-400]",
        "r0|[0.1]",
        "r0|[9007199254740993]",
        "r0|[-9223372036854775809]",
        "r0|[1.7976931348623157e308]",
        'r0|[{"b": 1, "a": 2}]',
        'r0|[{"a": 1, "a": 2}]',
        "r0|" + "[" * 200 + "]" * 200,
        'r0|["red", 1]',
        'r1.x|["red", "blue"]',
        "r1.x|[true, null]",
    ],
    "index": [-1, 99, "0", True, 1.0, None, 0],
    "value": [2**64 - 1, -(2**63), 1e19, -0.0, {"a": [1, {"b": None}]}, "x", None, True, 1, 1.0],
    "wm": [
        [[True, 5.0]],
        [[0, "x"]],
        [[0, 5]],
        "x",
        [[0]],
        [[2**64 - 1, 1.0]],
        [[-1, BASE]],
        [[0, 1e300]],
        [[0, None], [0, BASE + 1]],
        None,
        [],
    ],
}


@dataclass(frozen=True)
class Edit:
    """One change to a message's header: `what` at entry `at` (modulo their number)."""

    what: str
    at: int
    field: int
    to: Any


@st.composite
def edits(draw: st.DrawFn) -> Edit:
    what = draw(
        st.sampled_from(
            ["time", "rank", "text", "bounds", "key", "index", "value", "wm", "arity", "extra"]
        )
    )
    pool = HOSTILE.get(what, [None])
    return Edit(
        what, draw(st.integers(0, 50)), draw(st.integers(0, 9)), draw(st.sampled_from(pool))
    )


def forge(value: bytes, changes: list[Edit]) -> bytes:
    """The message with its header edited (framed again)."""
    size = int.from_bytes(value[4:8], "big")
    header = orjson.loads(value[8 : 8 + size])
    docs, recs = header["docs"], header["recs"]
    for change in changes:
        head = docs[change.at % len(docs)] if docs else None
        rec = recs[change.at % len(recs)] if recs else None
        where: dict[str, tuple[list[Any] | None, int]] = {
            "time": (head, 6),
            "rank": (head, 5),
            "text": (head, 2 + change.field % 3),
            "bounds": (head, change.field % 2),
            "key": (rec, 0),
            "index": (rec, 1),
        }
        if change.what in where:
            target, at = where[change.what]
            if target is not None and at < len(target):
                target[at] = change.to
        elif change.what == "value" and rec is not None:
            rec[2:] = [change.to]
        elif change.what == "wm":
            header["wm"] = change.to
        elif change.what == "arity":
            target = head if change.field % 2 and head is not None else rec
            if target is not None:
                target.append(1) if change.field % 4 < 2 else target.pop()
        elif change.what == "extra":
            header["x"] = change.field
    encoded = orjson.dumps(header)
    return records.MAGIC + len(encoded).to_bytes(4, "big") + encoded + value[8 + size :]


def refused_on_purpose(rules: RuleSet, value: bytes) -> tuple[bool, bool]:
    """(whether a record of the message is one the compiled engine refuses on purpose where
    Python carries it or fails otherwise; whether one carries an integer time, which the
    compiled engine writes back as a float)."""
    try:
        decoded, _ = records.read(value)
    except Exception:
        return False, False
    refused = integers = False
    for key, ev in decoded:
        try:
            if routed_by_key(rules, key) is None:
                continue
        except Exception:
            continue
        t, rank = ev.time, ev.severity
        if type(t) is int:
            integers = True
        if (
            type(t) not in (int, float)
            or (type(t) is int and abs(t) > 2**53)
            or type(rank) is not int
            or not 0 <= rank <= 4
            or not all(type(s) is str for s in (ev.source, ev.id, ev.type))
        ):
            refused = True
    return refused, integers


@st.composite
def hostile_scenarios(draw: st.DrawFn) -> Scenario:
    scenario = draw(scenarios(max_steps=4, max_events=16))
    batches = [i for i, (kind, _) in enumerate(scenario.steps) if kind == "batch"]
    for at in draw(st.lists(st.sampled_from(batches), min_size=1, max_size=2, unique=True)):
        events, held, announce = scenario.steps[at][1]
        changes = draw(st.lists(edits(), min_size=1, max_size=3))
        scenario.steps[at] = ("forged", (events, held, announce, changes, draw(st.integers(0, 9))))
    return scenario


def run_hostile(scenario: Scenario) -> str:
    """The scenario with forged messages: compared as any other until a record the compiled
    engine refuses on purpose makes the two differ (then both must only survive)."""
    pair = Pair(scenario.rules, scenario.config, scenario.partitions)
    compare = True
    for kind, arg in scenario.steps:
        if kind == "batch":
            events, held, announce = arg
            pair.handle(
                messages_of(scenario.rules, scenario.partitions, events, held, announce),
                compare=compare,
            )
        elif kind == "forged":
            events, held, announce, changes, which = arg
            values = messages_of(scenario.rules, scenario.partitions, events, held, announce)
            every = [(p, i) for p, vs in sorted(values.items()) for i in range(len(vs))]
            if every:
                p, i = every[which % len(every)]
                values[p][i] = forge(values[p][i], changes)
                refused, integers = refused_on_purpose(scenario.rules, values[p][i])
                pair.loose = pair.loose or integers
                compare = compare and not refused
            pair.handle(values, compare=compare)
        elif not compare:
            continue
        elif kind == "flush":
            pair.flush()
        elif kind in ("restore", "put"):
            pair.restore(put=kind == "put")
        elif kind == "sweep":
            pair.sweep(arg)
    if compare:
        pair.flush()
        pair.restore()
    return "compared" if compare else "refused on purpose"


@settings(max_examples=budget(300))
@given(hostile_scenarios())
def test_forged_messages_correlate_alike(scenario: Scenario) -> None:
    """Forged headers (times, ranks, texts, keys, indexes, values, progress of every type, bad
    bounds and arity): read alike or dead-lettered alike; neither stage ever raises."""
    note(repr(scenario))
    event(run_hostile(scenario))


# -- records fed one by one (the fallback for messages of another shape) -----------------------


@dataclass
class Record:
    """A record as `records.read` hands it to the stage: its key and its event's fields."""

    key: Any
    time: Any
    source: Any
    id: Any
    type: Any
    severity: Any
    value: Any
    raw: bytes
    watermark: float | None

    def event(self) -> WindowEvent:
        """A fresh WindowEvent (the Python engine keeps the one it is fed and sets its seq)."""
        return WindowEvent(
            self.time,
            -1,
            self.source,
            self.id,
            self.type,
            self.severity,
            self.value,
            None,
            self.raw,
        )


@st.composite
def fed_records(draw: st.DrawFn, rules: RuleSet, hostile: bool) -> list[Record]:
    stream = draw(streams(max_size=20))
    out: list[Record] = []
    newest = BASE
    for e in stream:
        routed = route(rules, e.doc)
        if not routed or chance(draw, 10):
            keys: list[Any] = [draw(st.sampled_from(HOSTILE["key"]))]
        else:
            keys = [r.key for r in routed]
        if math.isfinite(e.time) and e.time > newest and e.time < HORIZON:
            newest = e.time
        watermark = draw(
            st.sampled_from([None, float("-inf"), newest, newest - 5, newest + 30, BASE])
        )
        time: Any = e.time
        if chance(draw, 8):
            time = int(e.time) if abs(e.time) < 2**53 else e.time  # forged: an integer time
        doc = e.doc
        fields: list[Any] = [
            time,
            doc["source"],
            doc["id"],
            doc["type"],
            SEVERITIES.index(doc["severity"]),
        ]
        if hostile and chance(draw, 4):
            at = draw(st.integers(0, 4))
            pool = HOSTILE["time" if at == 0 else "rank" if at == 4 else "text"]
            fields[at] = draw(st.sampled_from(pool))
        for key in keys:
            rule_id = key.split("|", 1)[0] if type(key) is str else None
            rule = rules.rules.get(rule_id) if rule_id is not None else None
            field_path = None if rule is None else rule.value_field
            value = MISSING
            if field_path is not None:
                value = get_path(doc, tuple(field_path.split(".")))
            if hostile and chance(draw, 6):
                value = draw(st.sampled_from(HOSTILE["value"]))
            t, source, event_id, kind, rank = fields
            out.append(Record(key, t, source, event_id, kind, rank, value, e.body(), watermark))
    return out


def outcome(feed: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        return "fed", feed(*args)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def feed_one_by_one(
    rules: RuleSet, config: CorrelationSettings, fed: list[Record], hostile: bool
) -> str:
    py, nat = stage(rules, config, 1, False), stage(rules, config, 1, True)
    mine: GroupStore = py.stores[0]
    theirs: NativeWindows = nat.stores[0]
    loose = False
    for record in fed:
        dirty: set[str] = set()
        ours = outcome(py._feed, mine, record.key, record.event(), record.watermark, dirty)
        other = outcome(
            nat._feed_native, theirs, record.key, record.event(), record.watermark, set()
        )
        loose = loose or type(record.time) is int  # (kept even where its change failed)
        if ours != other:
            refused = hostile and refused_on_purpose_record(record)
            assert refused, (record, ours, other)
            return "refused on purpose"  # Python carried it, or failed later or otherwise
        assert set(theirs.take_fed()) == dirty
        assert mine.take_evicted() == theirs.take_evicted()
        assert len(mine) == len(theirs) and set(mine) == set(theirs)
        assert dict(mine.counts) == theirs.counts()
        for key in mine:
            assert state_diff(mine[key], theirs[key], loose) is None, (
                key,
                state_diff(mine[key], theirs[key], loose),
            )
    for key in sorted(mine):
        same_changelog(mine, theirs, key, loose)
    return "compared"


def refused_on_purpose_record(record: Record) -> bool:
    t, rank = record.time, record.severity
    return (
        type(t) not in (int, float)
        or (type(t) is int and abs(t) > 2**53)
        or type(rank) is not int
        or not 0 <= rank <= 4
        or not all(type(s) is str for s in (record.source, record.id, record.type))
    )


@settings(max_examples=budget(300))
@given(st.data(), rule_sets(), correlation_settings(), st.booleans())
def test_records_fed_one_by_one_alike(
    data: st.DataObject, rules: RuleSet, config: CorrelationSettings, hostile: bool
) -> None:
    """`NativeWindows.feed` against `stage._feed`: the same change, the same exception (class and
    message), the same windows after every record."""
    fed = data.draw(fed_records(rules, hostile))
    event(feed_one_by_one(rules, config, fed, hostile))


# -- divergences found, each reduced to its smallest case ------------------------------------


def rule_set(**fields: Any) -> RuleSet:
    """One rule `r0` on type a.x grouped by `g` (fields override)."""
    doc: dict[str, Any] = {
        "id": "r0",
        "title": "Rule r0",
        "match": {"type": ["a.x"]},
        "group_by": ["g"],
        "window": 10,
        "incident": {"kind": "test"},
    }
    doc.update(fields)
    return RuleSet([Rule.model_validate(doc)])


def ev(event_id: str, time: float, group: Any = "red", value: Any = MISSING, **fields: Any) -> Ev:
    doc = document("s1", event_id, "a.x", "low", group, value, "red", "res-1")
    doc.update(fields)
    return Ev(doc, time, 0)


def record(key: Any, e: Ev, watermark: float | None = None, **fields: Any) -> Record:
    doc = e.doc
    made = Record(
        key,
        e.time,
        doc["source"],
        doc["id"],
        doc["type"],
        SEVERITIES.index(doc["severity"]),
        doc.get("v", MISSING),
        e.body(),
        watermark,
    )
    for name, value in fields.items():
        setattr(made, name, value)
    return made


def test_a_counted_value_of_64_bits_unsigned_is_restored_and_fed_alike() -> None:
    """Found: the compiled engine took a value from Python as a signed 64-bit integer, so a
    window counting a value from 2**63 to 2**64 - 1 (orjson reads them) could not be restored
    (`put` raised OverflowError, and with it the partition's whole restore) and a record fed
    one by one with it was dead-lettered, where Python counts it."""
    rules = rule_set(correlation={"type": "value_count", "condition": {"field": "v", "gte": 2}})
    pair = Pair(rules, CorrelationSettings(), 1)
    pair.handle(messages_of(rules, 1, [ev("e0", BASE, value=2**64 - 1)], [], False))
    pair.restore()
    pair.handle(messages_of(rules, 1, [ev("e1", BASE + 1, value=2**63)], [], False))
    fed = [
        record('r0|["red"]', ev("e0", BASE, value=2**64 - 1)),
        record('r0|["red"]', ev("e1", BASE + 1, value=-(2**63))),
    ]
    assert feed_one_by_one(rules, CorrelationSettings(), fed, hostile=False) == "compared"


def test_records_python_would_not_feed_are_not_refused_either() -> None:
    """Found: the compiled one-by-one feed checked an event's time before resolving its key, so
    a record Python passes over (its rule no longer in the set, or a redelivery) was refused
    with TypeError and dead-lettered when its time was forged; and a key that is not a string
    was refused in other words than Python's, a bad key with a forged time with TypeError."""
    rules = rule_set()
    first = ev("e0", BASE)
    fed = [
        record('gone|["red"]', first, time="yesterday"),  # Python: not fed (False)
        record('r0|["red"]', first),
        record('r0|["red"]', first, time="yesterday"),  # Python: a redelivery (None)
        record('r0|["red"]', first, time=None, severity=9),
        record(5, first),
        record('r0|["red"', first, time="yesterday"),  # JSONDecodeError, as Python's
        record('r0|["red", 1]', first, time=[]),  # ValueError: does not fit the rule
    ]
    assert feed_one_by_one(rules, CorrelationSettings(), fed, hostile=False) == "compared"
    # the same records in a message (read by records.read: its times are not ingest's)
    pair = Pair(rules, CorrelationSettings(), 1)
    [value] = messages_of(rules, 1, [first], [], False)[0]
    gone = forge(value, [Edit("key", 0, 0, 'gone|["red"]'), Edit("time", 0, 0, "yesterday")])
    again = forge(value, [Edit("time", 0, 0, "yesterday")])
    pair.handle({0: [gone, value, again]})  # (compared: no dead letter on either side)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("time", "yesterday", TypeError),  # (Python: TypeError too, in other words)
        ("time", True, TypeError),  # Python carries these three
        ("time", 2**53 + 1, TypeError),
        ("time", [1.0], TypeError),
        ("severity", 9, ValueError),
        ("severity", True, ValueError),
        ("severity", "low", ValueError),
        ("source", 5, TypeError),
        ("id", None, TypeError),
        ("type", ["a.x"], TypeError),
    ],
)
def test_what_the_compiled_engine_refuses_on_purpose(field: str, value: Any, error: type) -> None:
    """The records only a forged message holds that the compiled engine refuses (see its module
    doc), before the window changes: the window is made (its rule's cap enforced) and noted as
    fed, as Python's is, and holds what it held."""
    rules = rule_set()
    pair = Pair(rules, CorrelationSettings(), 1)
    pair.handle(messages_of(rules, 1, [ev("e0", BASE)], [], False))
    store: NativeWindows = pair.nat.stores[0]
    before = store['r0|["red"]']
    forged = record('r0|["red"]', ev("e1", BASE + 1), **{field: value})
    with pytest.raises(error):
        store.feed(forged.key, forged.event(), None)
    assert store.take_fed() == ['r0|["red"]']
    assert state_diff(before, store['r0|["red"]']) is None
    assert isinstance(store, responder_native.Windows)


@pytest.mark.parametrize(
    "time",
    [
        1e12,  # ValueError: year 33658 is out of range
        253402300799.9999995,  # rounds into year 10000
        -62135596800.4,  # year 0
        1e17,  # OSError: gmtime's year does not fit an int
        -6.8e16,
        6.77679762492576e16,  # ValueError: year -2147483648 (CPython adds 1900 in an int)
        9.3e18,  # OverflowError: beyond time_t
        -9.3e18,
        -9.223372036854775808e18,  # time_t's least: OSError, not OverflowError
    ],
)
def test_a_time_datetime_cannot_hold_fails_its_change_as_in_python(time: float) -> None:
    """Found: an incident change whose first or last time `datetime.fromtimestamp` refuses
    failed with ValueError ("year N is out of range") whatever the time, where Python fails with
    OverflowError beyond time_t, OSError where gmtime cannot hold the year and ValueError
    otherwise, so the dead letter named another exception."""
    rules = rule_set()
    fed = [record('r0|["red"]', ev("e0", time)), record('r0|["blue"]', ev("e1", BASE))]
    fed[1].time = time  # (an incident that takes it: attached)
    fed.insert(1, record('r0|["blue"]', ev("e2", time - 1 if abs(time) < 1e15 else time)))
    assert feed_one_by_one(rules, CorrelationSettings(), fed, hostile=False) == "compared"
    pair = Pair(rules, CorrelationSettings(), 1)
    pair.handle(messages_of(rules, 1, [ev("e0", BASE), ev("e1", time)], [], False))


# -- windows restored from changelog entries of every shape state_from_dict takes ---------------

ENTRY_TIMES: list[Any] = [
    BASE,
    BASE + 0.5,
    BASE + 1 / 128,
    int(BASE),
    int(BASE) + 2,
    2**53,
    -(2**53),
    2**53 + 1,
    1e12,
    1e17,
    0,
    -0.0,
]


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    """A changelog value: the shape a flush writes, or another `state_from_dict` restores
    (integer times, an incident without events, keys in another order, a key more)."""
    stream = draw(streams(max_size=6))
    events = []
    for seq, e in enumerate(stream):
        time: Any = e.time
        if chance(draw, 4):
            time = draw(st.sampled_from(ENTRY_TIMES))
        events.append([time, seq if not chance(draw, 10) else draw(st.sampled_from(SEQS)), e.doc])
    times = [t for t, _, _ in events]
    data: dict[str, Any] = {
        "events": events,
        "incident": None,
        "max_time": max(times) if times else None,
        "next_seq": len(events) if not chance(draw, 10) else draw(st.sampled_from(SEQS)),
    }
    if chance(draw, 8) and times:
        data["max_time"] = draw(st.sampled_from(ENTRY_TIMES))
    if draw(st.booleans()):
        keys = [[e["source"], e["id"]] for _, _, e in events]
        keys += draw(st.lists(st.sampled_from([["s9", "x"], ["s1", "e0"]]), max_size=2))
        first = min(times) if times else draw(st.sampled_from(ENTRY_TIMES))
        data["incident"] = {
            "id": "inc-1",
            "title": draw(st.sampled_from(["Burst", 'caf\u00e9 \x01 "q"', ""])),
            "severity": draw(st.integers(0, 4)),
            "first_seen": first if not chance(draw, 6) else draw(st.sampled_from(ENTRY_TIMES)),
            "last_seen": max(times) if times else first,
            "version": draw(st.sampled_from([1, 2, 7, 2**31, *SEQS])),
            "event_keys": sorted(keys),
        }
    if chance(draw, 8):
        data = dict(reversed(list(data.items())))
    if chance(draw, 10):
        data["extra"] = 1
    return data


SEQS = [0, -1, 2**31, 2**62, 2**63 - 2, -(2**63), 2**63, 2**64 - 2]


def integer_times(entry: dict[str, Any], beyond: int = -1) -> bool:
    """Whether a changelog value holds a time written as an integer (beyond this size)."""
    inc = entry["incident"] or {}
    times = [t for t, _, _ in entry["events"]]
    times += [entry["max_time"], inc.get("first_seen"), inc.get("last_seen")]
    return any(type(t) is int and abs(t) > beyond for t in times)


@settings(max_examples=budget(200))
@given(st.data(), rule_sets(), correlation_settings(), st.booleans())
def test_restored_windows_correlate_alike(
    data: st.DataObject, rules: RuleSet, config: CorrelationSettings, put: bool
) -> None:
    """Windows restored from changelog entries (the compiled restore, or `state_from_dict` and
    `put`), then fed: restored alike (or refused alike) and correlated alike."""
    pair = Pair(rules, config, 1)
    stores = (pair.py.stores[0], pair.nat.stores[0])
    keys = [r.key for e in data.draw(streams(max_size=8)) for r in route(rules, e.doc)]
    for key in dict.fromkeys(keys):
        entry = data.draw(entries())
        value = orjson.dumps(entry)
        rule = rules.rules[key.split("|", 1)[0]]
        done = []
        for store in stores:
            if put:
                state = state_from_dict(rule, orjson.loads(value), {})
                done.append(outcome(store.put, key, state, rule.id))
            else:
                done.append(outcome(_restored, store, key, rule, value, {}))
        pair.loose = pair.loose or integer_times(entry)
        if done[0] != done[1] and integer_times(entry, beyond=2**53):
            # refused on purpose: a time no float carries (the stage dead-letters the entry)
            assert done[1] == ("TypeError", "a time that is not a number"), done
            event("refused on purpose")
            return
        assert done[0] == done[1], (entry, done)
    pair.same_stores(0)
    assert stores[0].take_evicted() == stores[1].take_evicted()
    for key in sorted(stores[0]):
        same_changelog(stores[0], stores[1], key, pair.loose)
    for events in data.draw(st.lists(streams(max_size=8), max_size=3)):
        pair.handle(messages_of(rules, 1, events, [], False))
    pair.flush()


@pytest.mark.parametrize("count", [2**63, 2**64 - 2, 2**64 - 1])
def test_sequences_and_versions_beyond_63_bits_count_on_as_in_python(count: int) -> None:
    """Found: a window whose next sequence, event sequence or incident version is beyond a
    signed 64-bit integer (a changelog entry state_from_dict restores: orjson reads up to
    2**64 - 1) was refused by `put` (OverflowError), so the compiled stage dead-lettered the
    entry and started the group afresh where Python restores it. Now they count on as Python's
    do, to the point orjson cannot write them: JSONEncodeError for the change and the entry."""
    rules = rule_set(suppress=3600)
    e0 = ev("e0", BASE)
    entry = {
        "events": [[BASE, count, e0.doc]],
        "incident": {
            "id": "inc-1",
            "title": "Burst",
            "severity": 1,
            "first_seen": BASE,
            "last_seen": BASE,
            "version": count,
            "event_keys": [["s1", "e0"]],
        },
        "max_time": BASE,
        "next_seq": count,
    }
    pair = Pair(rules, CorrelationSettings(), 1)
    for correlate in (pair.py, pair.nat):
        _restored(correlate.stores[0], 'r0|["red"]', rules.rules["r0"], orjson.dumps(entry), {})
    pair.same_stores(0)
    pair.handle(messages_of(rules, 1, [ev("e1", BASE + 1)], [], False))  # attached: version + 1
    pair.handle(messages_of(rules, 1, [ev("e2", BASE + 2)], [], False))
    pair.flush()


# -- events as ingest takes them ---------------------------------------------------------------


@st.composite
def raw_events(draw: st.DrawFn, n: int) -> bytes:
    """A valid event as a producer writes it (RFC 3339 time with microseconds)."""
    micros = draw(st.integers(0, 120_000_000))
    moment = datetime.fromtimestamp(BASE, UTC) + timedelta(microseconds=micros)
    attributes: dict[str, Any] = {}
    group = draw(st.sampled_from([*GROUP_VALUES, MISSING]))
    if group is not MISSING:
        attributes["g"] = group
        attributes["deep"] = {"er": group}
    value = draw(st.sampled_from([*VALUES, MISSING]))
    if value is not MISSING:
        attributes["v"] = value
        attributes["nest"] = {"v": value}
    doc = {
        "id": f"e{n}" if not chance(draw, 6) else f"e{draw(st.integers(0, max(0, n - 1)))}",
        "source": draw(st.sampled_from(["s1", "s2"])),
        "type": draw(st.sampled_from(TYPES)),
        "time": moment.isoformat().replace("+00:00", "Z"),
        "severity": draw(st.sampled_from(SEVERITIES)),
        "title": f"event {n}",
        "resource": {"kind": "endpoint", "id": draw(st.sampled_from(["res-1", "res-2"]))},
        "attributes": attributes,
        "labels": {"team": draw(st.sampled_from(["red", "blue"]))},
    }
    return orjson.dumps(doc)


@settings(max_examples=budget(100))
@given(st.data(), rule_sets(), correlation_settings(), st.integers(1, 3))
def test_ingested_batches_correlate_alike(
    data: st.DataObject, rules: RuleSet, config: CorrelationSettings, partitions: int
) -> None:
    """Events through ingest (`IngestBatch`, the compiled router) and both correlation stages."""
    ingest = IngestBatch(rules, partitions)
    pair = Pair(rules, config, partitions)
    n = 0
    for _ in range(data.draw(st.integers(1, 4))):
        values = []
        for _ in range(data.draw(st.integers(0, 8))):
            values.append(data.draw(raw_events(n)))
            n += 1
        inputs = data.draw(st.lists(st.integers(0, 2), min_size=len(values), max_size=len(values)))
        outcome_ = ingest.handle(values, inputs, held=[0, 1], announce=data.draw(st.booleans()))
        pair.handle(outcome_.messages)
        if data.draw(st.booleans()):
            pair.flush()
    pair.flush()
    pair.restore()
    _statistics(pair)


# -- explicit cases ----------------------------------------------------------------------------


def test_a_change_too_large_for_the_topic_is_refused_alike() -> None:
    """An incident change over MAX_CHANGE_BYTES: ChangeTooLarge for the record on both sides,
    the window kept (its next, small, change goes out)."""
    rules = rule_set(correlation={"type": "event_count", "condition": {"gte": 6}})
    big = [ev(f"e{i}", BASE + i, title="x" * 1_000_000) for i in range(6)]
    pair = Pair(rules, CorrelationSettings(), 1)
    pair.handle(messages_of(rules, 1, big, [], False))
    pair.handle(messages_of(rules, 1, [ev("e6", BASE + 6)], [], False))
    assert pair.changes == {"updated"}
    pair.flush()


def test_evictions_go_oldest_first_ties_by_key_alike() -> None:
    """Over the cap, the groups whose newest event is oldest go first, ties by key (code point
    order, as Python sorts), until 90% of the cap is left."""
    rules = rule_set(correlation={"type": "event_count", "condition": {"gte": 9}})
    groups = ["b", "a", "\u00e9", "\U0001f600", "A", "a\x00", "~", "", "z"]
    pair = Pair(rules, CorrelationSettings(max_groups_per_rule=3), 1)
    for n, group in enumerate(groups):
        pair.handle(messages_of(rules, 1, [ev(f"e{n}", BASE + n % 2, group=group)], [], False))
    assert pair.py.evictions == {("r0", 0): 6}
    pair.sweep(BASE + 1)


def test_a_rule_title_that_is_no_template_fails_only_the_incidents_it_titles() -> None:
    """Found (outside the compiled engine: streams/native_windows.py, window_rule_spec): the
    compiled store parsed the title of every rule when it was made, so a rule whose `title`
    is not a template made new_store() raise TemplateSyntaxError and the partition could not
    be assigned, where Python fails only the records that open its incidents
    (TemplateSyntaxError, dead-lettered). The loader now refuses such a rule (the rule's title
    is the incidents' title without incident.title); one built past it fails alike still."""
    with pytest.raises(ValidationError, match=r"no incident\.title"):
        rule_set(title="Too many {{ requests")
    rule = next(iter(rule_set().rules.values()))
    rules = RuleSet([rule.model_copy(update={"title": "Too many {{ requests"})])
    pair = Pair(rules, CorrelationSettings(), 1)
    pair.handle(messages_of(rules, 1, [ev("e0", BASE)], [], False))  # compared: dead alike


@pytest.mark.parametrize(
    "fraction", [1 / 128, 3 / 128, 127 / 128, 0.0000005, 0.9999995, 0.9999999, -1 / 128]
)
def test_change_times_round_half_to_even_alike(fraction: float) -> None:
    """first_seen and last_seen in RFC 3339 with microseconds rounded half to even, as
    `datetime.fromtimestamp` rounds them (7812.5 us is 7812, 23437.5 us 23438)."""
    rules = rule_set()
    pair = Pair(rules, CorrelationSettings(), 1)
    pair.handle(messages_of(rules, 1, [ev("e0", BASE + fraction)], [], False))
    fed = [record('r0|["red"]', ev("e0", -62135596800.0 + abs(fraction)))]
    assert feed_one_by_one(rules, CorrelationSettings(), fed, hostile=False) == "compared"


def test_the_store_interface_agrees() -> None:
    """`drop`, `in`, `len`, iteration, `counts` and `put` (its cap, a key put twice) alike."""
    rules = rule_set(correlation={"type": "event_count", "condition": {"gte": 5}})
    pair = Pair(rules, CorrelationSettings(max_groups_per_rule=3), 1)
    events = [ev(f"e{n}", BASE + n, group=g) for n, g in enumerate(["a", "b", "c", "a"])]
    pair.handle(messages_of(rules, 1, events, [], False))
    mine: GroupStore = pair.py.stores[0]
    theirs: NativeWindows = pair.nat.stores[0]
    state = mine['r0|["a"]']
    for store in (mine, theirs):
        store.drop('r0|["b"]')
        store.drop('r0|["nope"]')
        store.put('r0|["d"]', state)
        store.put('r0|["a"]', state, "r0")
        store.put('r0|["e"]', state)  # over the cap: the oldest go
    assert mine.take_evicted() == theirs.take_evicted() == ['r0|["c"]', 'r0|["a"]']
    pair.same_stores(0)
    assert ('r0|["a"]' in mine, 'r0|["b"]' in mine) == ('r0|["a"]' in theirs, 'r0|["b"]' in theirs)


def test_a_change_with_a_bad_time_and_a_version_beyond_64_bits_fails_on_its_time() -> None:
    """Found: where an incident change had both a time datetime cannot hold and a version
    orjson cannot write, the compiled engine failed on the version (a TypeError) and Python,
    which makes the times before orjson writes, on the time (here OSError)."""
    rules = rule_set(suppress=3600)
    entry = {
        "events": [[BASE, 0, ev("e0", BASE).doc]],
        "incident": {
            "id": "inc-1",
            "title": "Burst",
            "severity": 1,
            "first_seen": BASE,
            "last_seen": 1e17,  # (an attached event leaves it)
            "version": 2**64 - 1,
            "event_keys": [["s1", "e0"]],
        },
        "max_time": BASE,
        "next_seq": 1,
    }
    pair = Pair(rules, CorrelationSettings(), 1)
    for correlate in (pair.py, pair.nat):
        _restored(correlate.stores[0], 'r0|["red"]', rules.rules["r0"], orjson.dumps(entry), {})
    pair.handle(messages_of(rules, 1, [ev("e1", BASE + 1)], [], False))  # compared: OSError
