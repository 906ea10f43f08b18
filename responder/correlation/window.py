"""Per-group window state and the correlation checks over it (pure, no I/O).

One `GroupState` exists per (rule, group key). It keeps the group's matching events that can
still fall into some window (event time within `window + allowed lateness` of the newest seen)
and the incident currently open for attachment. Times are epoch seconds (floats) on the hot path.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from responder.correlation.match import MISSING, get_path
from responder.correlation.rules import CountCondition, EventCount, Rule, Temporal, ValueCount
from responder.events.schema import Severity


@dataclass(slots=True)
class WindowEvent:
    """A matching event as the window keeps it: what correlation reads, plus its JSON body.

    The body is either parsed (`body`, offline replay) or serialized (`raw`: the bytes as ingest
    shipped them, or as restored from the changelog): the worker's hot path never parses an
    event again, it embeds the bytes in incident changes and the changelog as they are.
    """

    time: float
    seq: int
    source: str
    id: str
    type: str
    severity: int
    value: Any  # the value_count field's value, or MISSING
    body: dict[str, Any] | None = None
    raw: bytes | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.id)

    def doc(self) -> dict[str, Any]:
        """The event as a dict (parsed on demand from `raw`)."""
        if self.body is None:
            self.body = orjson.loads(self.raw or b"{}")
        return self.body

    def json(self) -> Any:
        """What orjson embeds for this event: the shipped bytes as they are, or the dict."""
        return orjson.Fragment(self.raw) if self.raw is not None else self.body


@dataclass(slots=True)
class OpenIncident:
    """The incident that later matches of the group attach to, while within `suppress`."""

    id: str
    title: str
    severity: int
    first_seen: float
    last_seen: float
    version: int
    event_keys: set[tuple[str, str]] = field(default_factory=set)


@dataclass(slots=True)
class GroupState:
    events: list[WindowEvent] = field(default_factory=list)  # arrival order
    incident: OpenIncident | None = None
    max_time: float = float("-inf")
    next_seq: int = 0
    keys: set[tuple[str, str]] = field(default_factory=set)  # of `events`, for O(1) dedup
    oldest: float = float("inf")  # the earliest event time in `events`

    def __post_init__(self) -> None:
        if self.events and not self.keys:
            self.keys = {e.key for e in self.events}
            self.oldest = min(e.time for e in self.events)

    def seen(self, key: tuple[str, str]) -> bool:
        if self.incident is not None and key in self.incident.event_keys:
            return True
        return key in self.keys

    def add(self, event: WindowEvent, key: tuple[str, str] | None = None) -> None:
        """Append an event in arrival order (its `seq` is assigned here); `key`: its
        (source, id), where the caller has it already."""
        event.seq = self.next_seq
        self.next_seq += 1
        self.events.append(event)
        self.keys.add((event.source, event.id) if key is None else key)
        if event.time > self.max_time:
            self.max_time = event.time
        if event.time < self.oldest:
            self.oldest = event.time

    def in_window(self, end: float, length: float) -> list[WindowEvent]:
        start = end - length
        return [e for e in self.events if start <= e.time <= end]

    def prune(self, keep_after: float, incident_after: float) -> None:
        """Forget events older than `keep_after` and an incident that can no longer attach."""
        if self.oldest < keep_after:
            kept = [e for e in self.events if e.time >= keep_after]
            self.events = kept
            self.keys = {(e.source, e.id) for e in kept}
            self.oldest = min((e.time for e in kept), default=float("inf"))
        if self.incident is not None and self.incident.last_seen < incident_after:
            self.incident = None

    @property
    def empty(self) -> bool:
        return not self.events and self.incident is None


def window_event(rule: Rule, body: dict[str, Any], time: float, seq: int = -1) -> WindowEvent:
    """A parsed event as the window keeps it (`seq` is set when a state adds it)."""
    field = rule.value_field
    return WindowEvent(
        time=time,
        seq=seq,
        source=body["source"],
        id=body["id"],
        type=body["type"],
        severity=Severity[body["severity"]],
        value=MISSING if field is None else get_path(body, field),
        body=body,
    )


Test = Callable[[list[WindowEvent]], bool]


def condition(rule: Rule) -> Test:
    """The rule's correlation condition as one function of a window (compiled once per rule)."""
    test = _TESTS.get(rule.id)
    if test is None or test[0] is not rule:
        test = _TESTS[rule.id] = (rule, _compile(rule))
    return test[1]


_TESTS: dict[str, tuple[Rule, Test]] = {}  # per rule id, checked against the rule object


def _compile(rule: Rule) -> Test:
    """The rule's correlation condition as one function (decided once, called per event)."""
    corr = rule.correlation
    if corr is None:
        return bool
    if isinstance(corr, EventCount):
        met = _threshold(corr.condition)
        return lambda window: met(len(window))
    if isinstance(corr, ValueCount):
        met = _threshold(corr.condition)
        return lambda window: met(
            len({_hashable(e.value) for e in window if e.value is not MISSING})
        )
    assert isinstance(corr, Temporal)
    wanted = list(corr.events)
    if corr.type == "temporal":

        def every_type(window: list[WindowEvent]) -> bool:
            present = {e.type for e in window}
            return all(t in present for t in wanted)

        return every_type
    return lambda window: _ordered(wanted, window)


def first_firing_end(rule: Rule, events: list[WindowEvent], time: float) -> float | None:
    """The earliest window end, among the group's event times in [time, time + window], whose
    window [end - window, end] meets the rule; None if none does.

    A late event joins every window ending at a later event up to `window` after it. Checking
    each window by a scan costs O(k) per window and O(k^2) per late event (cubic for a group
    that arrives in reverse order); here the windows are swept once, in end order, with counts
    kept up to date as events enter and leave: O(k log k) per late event, for k events in state.
    """
    length = rule.window_s
    ordered = sorted(events, key=lambda e: (e.time, e.seq))
    times = [e.time for e in ordered]
    ends = sorted({t for t in times if time <= t <= time + length})
    if not ends:
        return None
    corr = rule.correlation
    if corr is None:
        return ends[0]
    if isinstance(corr, EventCount):
        met = _threshold(corr.condition)
        for end in ends:
            if met(bisect_right(times, end) - bisect_left(times, end - length)):
                return end
        return None
    if isinstance(corr, Temporal) and corr.type == "temporal_ordered":
        return _first_ordered_end(list(corr.events), ordered, times, ends, length)
    return _first_distinct_end(corr, ordered, times, ends, length)


def _first_distinct_end(
    corr: ValueCount | Temporal,
    ordered: list[WindowEvent],
    times: list[float],
    ends: list[float],
    length: float,
) -> float | None:
    """value_count (distinct values) and temporal (every type present), swept with counters."""
    if isinstance(corr, ValueCount):
        met = _threshold(corr.condition)

        def item(e: WindowEvent) -> Any:
            return MISSING if e.value is MISSING else _hashable(e.value)

        def holds(counts: Counter[Any]) -> bool:
            return met(len(counts) - (MISSING in counts))
    else:
        wanted = set(corr.events)

        def item(e: WindowEvent) -> Any:
            return e.type

        def holds(counts: Counter[Any]) -> bool:
            return all(t in counts for t in wanted)

    counts: Counter[Any] = Counter()
    lo = hi = 0
    for end in ends:
        while hi < len(ordered) and times[hi] <= end:
            counts[item(ordered[hi])] += 1
            hi += 1
        while times[lo] < end - length:
            key = item(ordered[lo])
            counts[key] -= 1
            if not counts[key]:
                del counts[key]
            lo += 1
        if holds(counts):
            return end
    return None


def _first_ordered_end(
    wanted: list[str],
    ordered: list[WindowEvent],
    times: list[float],
    ends: list[float],
    length: float,
) -> float | None:
    """temporal_ordered: the greedy match from a window's first event completes at an index
    found with one bisect per wanted type. That completion only moves later as windows start
    later, so a window that does not reach it lets the sweep jump to the first end that does."""
    positions: dict[str, list[int]] = {t: [] for t in wanted}
    for index, event in enumerate(ordered):
        found = positions.get(event.type)
        if found is not None:
            found.append(index)
    candidate = 0
    while candidate < len(ends):
        end = ends[candidate]
        j = bisect_left(times, end - length)
        for wanted_type in wanted:
            at = positions[wanted_type]
            p = bisect_left(at, j)
            if p == len(at):
                return None  # no window starting here or later completes the sequence
            j = at[p] + 1
        completes = times[j - 1]
        if completes <= end:
            return end
        candidate = bisect_left(ends, completes, lo=candidate + 1)
    return None


def _threshold(condition: CountCondition) -> Callable[[int], bool]:
    if condition.gte is not None:
        n = condition.gte
        return lambda count: count >= n
    if condition.gt is not None:
        n = condition.gt
        return lambda count: count > n
    n = condition.eq if condition.eq is not None else 0
    return lambda count: count == n


def _ordered(wanted: list[str], window: list[WindowEvent]) -> bool:
    """Greedy subsequence match of `wanted` over the window sorted by (event time, arrival)."""
    i = 0
    for e in sorted(window, key=lambda w: (w.time, w.seq)):
        if e.type == wanted[i]:
            i += 1
            if i == len(wanted):
                return True
    return False


def _hashable(value: Any) -> Any:
    if isinstance(value, bool):  # true is a value of its own, not the number 1
        return (bool, value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


# --- changelog form -------------------------------------------------------------------------


def state_to_dict(state: GroupState) -> dict[str, Any]:
    inc = state.incident
    return {
        "events": [[e.time, e.seq, e.json()] for e in state.events],
        "incident": None
        if inc is None
        else {
            "id": inc.id,
            "title": inc.title,
            "severity": inc.severity,
            "first_seen": inc.first_seen,
            "last_seen": inc.last_seen,
            "version": inc.version,
            "event_keys": sorted(inc.event_keys),
        },
        "max_time": state.max_time,
        "next_seq": state.next_seq,
    }


_SEVERITY_BY_NAME: dict[str, Severity] = dict(Severity.__members__)  # as `Severity[name]`


def state_from_dict(
    rule: Rule, data: dict[str, Any], strings: dict[str, str] | None = None
) -> GroupState:
    """The state `state_to_dict` wrote. Its events keep their bodies serialized (`raw`), as the
    events of live correlation do, not parsed: a parsed body is most of a restored window's
    memory (~1.4 KB of ~2.4 KB a one-event group) and a million of them make the restore spend
    its time on fresh memory. Raises (KeyError, TypeError, ValueError) on an entry it cannot
    restore; the fields are read in the order the parsed form read them, so an entry fails with
    the same exception as it did. One more entry fails here: a body nested deeper than orjson
    writes (JSONEncodeError), which the parsed form let through to fail the next flush.

    `strings`, shared by the states of one restore, holds one copy of each event source and type
    for all of them (a million windows of a few sources and types need not hold a million)."""
    inc = data.get("incident")
    field = rule.value_field
    severity = _SEVERITY_BY_NAME
    dumps = orjson.dumps
    shared = {} if strings is None else strings
    events = []
    for t, seq, body in data["events"]:
        source, event_id, event_type = body["source"], body["id"], body["type"]
        # the types a flush writes (else the group's later events would fail), checked inline
        # (a million windows): t - t is 0.0 for a finite number, nan for inf and nan
        if type(t) not in _NUMBERS or t - t != 0 or type(seq) is not int:
            raise ValueError("a restored event's time or sequence is not a number")
        if type(source) is not str or type(event_id) is not str or type(event_type) is not str:
            raise ValueError("a restored event's source, id or type is not text")
        source = shared.setdefault(source, source)
        event_type = shared.setdefault(event_type, event_type)
        events.append(
            WindowEvent(
                t,
                seq,
                source,
                event_id,
                event_type,
                severity[body["severity"]],
                MISSING if field is None else get_path(body, field),
                None,
                # the body's bytes, what `json()` embeds as it did the dict; copied: orjson's
                # own result keeps the 4 KiB buffer it was written into
                bytes(memoryview(dumps(body))),
            )
        )
    incident = (
        None
        if inc is None
        else OpenIncident(
            id=inc["id"],
            title=inc["title"],
            severity=inc["severity"],
            first_seen=inc["first_seen"],
            last_seen=inc["last_seen"],
            version=inc["version"],
            event_keys={(s, i) for s, i in inc["event_keys"]},
        )
    )
    max_time, next_seq = data["max_time"], data["next_seq"]
    if max_time is None and not events:  # a window that never had an event: orjson wrote -inf
        max_time = NEVER
    _check_window(bool(events), incident, max_time, next_seq)
    if not events:
        return GroupState(events, incident, max_time, next_seq)
    keys = {(e.source, e.id) for e in events}
    oldest = events[0].time if len(events) == 1 else min(e.time for e in events)
    return GroupState(events, incident, max_time, next_seq, keys, oldest)


_NUMBERS = (int, float)
NEVER = float("-inf")  # the newest time of a window without events


def _check_window(
    has_events: bool, incident: OpenIncident | None, max_time: Any, next_seq: Any
) -> None:
    """The window's own fields and its incident's (once a window: kept to plain type tests)."""
    if (
        type(next_seq) is not int
        or type(max_time) not in _NUMBERS
        or (max_time - max_time != 0 and (has_events or max_time != NEVER))
    ):
        raise ValueError("a restored window's newest time or next sequence is not a number")
    if incident is None:
        return
    first, last = incident.first_seen, incident.last_seen
    if (
        type(incident.id) is not str
        or type(incident.title) is not str
        or type(incident.version) is not int
        or type(incident.severity) is not int
        or incident.severity not in _SEVERITIES
        or type(first) not in _NUMBERS
        or type(last) not in _NUMBERS
        or first - first != 0
        or last - last != 0
    ):
        raise ValueError(
            "a restored incident's id, title, severity, version or times are not valid"
        )
    for source, event_id in incident.event_keys:
        if type(source) is not str or type(event_id) is not str:
            raise ValueError("a restored incident's event keys are not text")


_SEVERITIES = frozenset(int(s) for s in Severity)
