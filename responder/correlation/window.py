"""Per-group window state and the correlation checks over it (pure, no I/O).

One `GroupState` exists per (rule, group key). It keeps the group's matching events that can
still fall into some window (event time within `window + allowed lateness` of the newest seen)
and the incident currently open for attachment. Times are epoch seconds (floats) on the hot path.
"""

from __future__ import annotations

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

    The body is either parsed (`body`, offline replay and restored state) or the serialized
    bytes as ingest shipped them (`raw`): the worker's hot path never parses an event again,
    it embeds the bytes in incident changes and the changelog as they are.
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

    def add(self, event: WindowEvent) -> None:
        """Append an event in arrival order (its `seq` is assigned here)."""
        event.seq = self.next_seq
        self.next_seq += 1
        self.events.append(event)
        self.keys.add((event.source, event.id))
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


def fires(rule: Rule, window: list[WindowEvent]) -> bool:
    """Whether the rule's correlation condition holds over the window's events."""
    test = _TESTS.get(rule.id)
    if test is None or test[0] is not rule:
        test = _TESTS[rule.id] = (rule, _compile(rule))
    return test[1](window)


Test = Callable[[list[WindowEvent]], bool]
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


def state_from_dict(rule: Rule, data: dict[str, Any]) -> GroupState:
    inc = data.get("incident")
    return GroupState(
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
