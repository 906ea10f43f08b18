"""The engine against a brute-force reference written from the spec, on random event streams.

The reference keeps every event forever, recomputes each window by a full scan, checks
`temporal_ordered` by trying every subsequence, and never prunes. The generated streams stay
within `allowed_lateness` (each event at most that far behind the newest event of its group), so
the engine's results must be exact, pruning or not.

Semantics the reference encodes (from the spec):
- a window ends at an event: event X is correlated with the group's events in
  [X.time - window, X.time]. A late event therefore also joins the windows of events up to
  `window` after it that arrived earlier; all windows it joins are checked, and the earliest
  (in event time) that meets the condition is the one that fires;
- a new event attaches to the group's open incident when its time <= the incident's last event
  time + suppress (default: the window); otherwise a firing opens a new incident holding all the
  events of the firing window (arrival order);
- temporal_ordered: events at the same time count in arrival order;
- value_count: values are JSON values, 1 == 1.0 but true is not 1; a missing field is no value.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responder.correlation.engine import Correlator
from responder.correlation.rules import Rule, RuleSet

SEVERITIES = ["info", "low", "medium", "high", "critical"]
TYPES = ["a.x", "a.y", "a.z", "b.w"]
GROUPS = ["red", "blue", "green"]
VALUES: list[Any] = ["p", 1, 1.0, True, False, 0, "1"]
START = datetime(2026, 11, 25, tzinfo=UTC).timestamp()

# --- the stream -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ev:
    source: str
    id: str
    type: str
    group: str | None  # labels.team, None when the label is absent
    time: int  # seconds after START
    severity: str
    value: Any  # attributes.v, MISSING_VALUE when absent

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.id)

    def __repr__(self) -> str:
        value = "-" if self.value is MISSING_VALUE else repr(self.value)
        where = f"{self.group} t={self.time}"
        return f"<{self.source}:{self.id} {self.type} {where} {self.severity} {value}>"

    def doc(self) -> dict[str, Any]:
        moment = datetime.fromtimestamp(START + self.time, tz=UTC)
        labels = {} if self.group is None else {"team": self.group}
        attributes = {} if self.value is MISSING_VALUE else {"v": self.value}
        return {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": moment.isoformat().replace("+00:00", "Z"),
            "severity": self.severity,
            "title": "t",
            "resource": {"kind": "thing", "id": "x"},
            "attributes": attributes,
            "labels": labels,
            "schema_version": "1",
        }


MISSING_VALUE: Any = object()


@st.composite
def streams(draw: st.DrawFn, lateness: int) -> list[Ev]:
    """Events in arrival order: bounded disorder per group, some redeliveries."""
    count = draw(st.integers(min_value=1, max_value=30))
    groups = draw(st.lists(st.sampled_from(GROUPS), min_size=1, max_size=3, unique=True))
    step = draw(st.integers(0, 6))  # how far ahead of its group's newest event a new one may be
    newest: dict[str | None, int] = {}
    out: list[Ev] = []
    for n in range(count):
        group = draw(st.sampled_from([*groups, None]) if n % 7 == 6 else st.sampled_from(groups))
        top = newest.get(group)
        if out and draw(st.integers(0, 5)) == 0:
            # a redelivery of an earlier event that is still within the lateness of its group
            fresh = [e for e in out if e.time >= newest[e.group] - lateness]
            if fresh:
                out.append(draw(st.sampled_from(fresh)))
                continue
        if top is None:
            time = draw(st.integers(0, 3))
        elif draw(st.integers(0, 4)) == 0:
            time = max(0, top - lateness)  # exactly as late as allowed
        else:
            time = draw(st.integers(max(0, top - lateness), top + step))
        newest[group] = time if top is None else max(time, top)
        out.append(
            Ev(
                source=draw(st.sampled_from(["s1", "s2"])),
                id=f"e{n}",
                type=draw(st.sampled_from(TYPES)),
                group=group,
                time=time,
                severity=draw(st.sampled_from(SEVERITIES)),
                value=draw(st.sampled_from([*VALUES, MISSING_VALUE])),
            )
        )
    return out


KINDS = ["none", "event_count", "value_count", "temporal", "temporal_ordered"]


@st.composite
def rules(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    match_types = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=4, unique=True))
    data: dict[str, Any] = {
        "id": "prop",
        "title": "Property rule",
        "match": {"type": match_types},
        "group_by": ["labels.team"],
        "window": draw(st.integers(1, 15)),
        "incident": {"kind": "prop"},
    }
    if draw(st.booleans()):
        data["incident"]["severity"] = draw(st.sampled_from(SEVERITIES))
    if draw(st.booleans()):
        data["suppress"] = draw(st.integers(1, 20))
    op = draw(st.sampled_from(["gte", "gt", "eq"]))
    if kind == "event_count":
        data["correlation"] = {"type": "event_count", "condition": {op: draw(st.integers(0, 5))}}
    elif kind == "value_count":
        condition = {"field": "attributes.v", op: draw(st.integers(0, 4))}
        data["correlation"] = {"type": "value_count", "condition": condition}
    elif kind in {"temporal", "temporal_ordered"}:
        wanted = draw(st.lists(st.sampled_from(match_types), min_size=1, max_size=3))
        data["correlation"] = {"type": kind, "events": wanted}
    return data


# --- the reference ----------------------------------------------------------------------------


def _count_met(condition: dict[str, Any], count: int) -> bool:
    if "gte" in condition:
        return count >= int(condition["gte"])
    if "gt" in condition:
        return count > int(condition["gt"])
    return count == int(condition["eq"])


def _distinct_key(value: Any) -> tuple[str, Any]:
    """JSON value identity: 1 and 1.0 are the same number, true is not a number."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    return ("string", value)


def _fires(spec: dict[str, Any], window: list[tuple[int, Ev]]) -> bool:
    corr = spec.get("correlation")
    if corr is None:
        return len(window) > 0
    if corr["type"] == "event_count":
        return _count_met(corr["condition"], len(window))
    if corr["type"] == "value_count":
        values = {_distinct_key(e.value) for _, e in window if e.value is not MISSING_VALUE}
        return _count_met(corr["condition"], len(values))
    wanted = corr["events"]
    if corr["type"] == "temporal":
        return all(any(e.type == t for _, e in window) for t in wanted)
    # ordered by event time; events at the same time count in arrival order
    chronological = sorted(window, key=lambda item: (item[1].time, item[0]))
    for chosen in itertools.combinations(chronological, len(wanted)):
        if [e.type for _, e in chosen] == wanted:
            return True
    return False


@dataclass
class RefIncident:
    label: int
    severity: int
    first: int
    last: int
    keys: list[tuple[str, str]] = field(default_factory=list)
    version: int = 1


Change = tuple[int, str, int, str, float, float, int, tuple[tuple[str, str], ...]]


def reference(spec: dict[str, Any], stream: list[Ev]) -> list[list[Change]]:
    """Per arrival, the incident changes the spec calls for."""
    window = spec["window"]
    suppress = spec.get("suppress", window)
    rule_severity = spec["incident"].get("severity")
    history: dict[str, list[tuple[int, Ev]]] = {}  # every counted event, with arrival number
    counted: dict[str, set[tuple[str, str]]] = {}
    current: dict[str, RefIncident] = {}
    labels = 0
    out: list[list[Change]] = []

    def change(kind: str, inc: RefIncident, keys: list[tuple[str, str]]) -> Change:
        return (
            inc.label,
            kind,
            inc.version,
            SEVERITIES[inc.severity],
            START + inc.first,
            START + inc.last,
            len(inc.keys),
            tuple(keys),
        )

    for arrival, ev in enumerate(stream):
        if ev.type not in spec["match"]["type"] or ev.group is None:
            out.append([])
            continue
        group = ev.group
        if ev.key in counted.setdefault(group, set()):
            out.append([])  # a redelivery counts once
            continue
        counted[group].add(ev.key)
        history.setdefault(group, []).append((arrival, ev))
        inc = current.get(group)
        if inc is not None and ev.time <= inc.last + suppress:
            inc.keys.append(ev.key)
            inc.first = min(inc.first, ev.time)
            inc.last = max(inc.last, ev.time)
            inc.version += 1
            kind = "updated"
            if rule_severity is None and SEVERITIES.index(ev.severity) > inc.severity:
                inc.severity = SEVERITIES.index(ev.severity)
                kind = "escalated"
            out.append([change(kind, inc, [ev.key])])
            continue
        # every window the new event falls into: those anchored at an event of the group
        # whose time lies in [t, t + window]; the earliest (in event time) that fires opens
        anchors = sorted({e.time for _, e in history[group] if 0 <= e.time - ev.time <= window})
        for end in anchors:
            in_window = [(n, e) for n, e in history[group] if end - window <= e.time <= end]
            if _fires(spec, in_window):
                break
        else:
            out.append([])
            continue
        if rule_severity is not None:
            severity = SEVERITIES.index(rule_severity)
        else:
            severity = max(SEVERITIES.index(e.severity) for _, e in in_window)
        inc = RefIncident(
            label=labels,
            severity=severity,
            first=min(e.time for _, e in in_window),
            last=max(e.time for _, e in in_window),
            keys=[e.key for _, e in in_window],
        )
        labels += 1
        current[group] = inc
        out.append([change("opened", inc, inc.keys)])
    return out


# --- the engine, in the same form --------------------------------------------------------------


def run_engine(
    spec: dict[str, Any], stream: list[Ev], lateness: int
) -> tuple[list[list[Change]], list[str]]:
    correlator = Correlator(
        RuleSet([Rule.model_validate(spec)]), allowed_lateness=timedelta(seconds=lateness)
    )
    labels: dict[str, int] = {}
    out: list[list[Change]] = []
    for ev in stream:
        changes: list[Change] = []
        for c in correlator.process(ev.doc(), START + ev.time):
            label = labels.setdefault(c.incident_id, len(labels))
            changes.append(
                (
                    label,
                    c.change,
                    c.version,
                    c.severity,
                    c.first_seen.timestamp(),
                    c.last_seen.timestamp(),
                    c.event_count,
                    tuple((e["source"], e["id"]) for e in c.events),
                )
            )
        out.append(changes)
    return out, list(labels)


@st.composite
def scenarios(draw: st.DrawFn, kind: str | None = None) -> tuple[dict[str, Any], int, list[Ev]]:
    lateness = draw(st.integers(0, 12))
    spec = draw(rules(kind if kind is not None else draw(st.sampled_from(KINDS))))
    return spec, lateness, draw(streams(lateness))


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_engine_matches_brute_force_reference(kind: str, data: st.DataObject) -> None:
    spec, lateness, stream = data.draw(scenarios(kind), label="scenario")
    expected = reference(spec, stream)
    actual, ids = run_engine(spec, stream, lateness)
    assert actual == expected
    # the same input gives the same incident ids
    assert run_engine(spec, stream, lateness)[1] == ids


@settings(max_examples=100, deadline=None)
@given(scenarios())
def test_pruning_does_not_change_results_within_lateness(
    scenario: tuple[dict[str, Any], int, list[Ev]],
) -> None:
    """A huge lateness keeps every event; the tight one must agree with it."""
    spec, lateness, stream = scenario
    assert run_engine(spec, stream, lateness) == run_engine(spec, stream, 10**9)


def test_reference_sanity() -> None:
    """The reference itself: an ordered pair fires only in event-time order."""
    spec = {
        "window": 10,
        "match": {"type": ["a.x", "a.y"]},
        "incident": {"kind": "k"},
        "correlation": {"type": "temporal_ordered", "events": ["a.x", "a.y"]},
    }
    first = Ev("s", "1", "a.y", "red", 5, "low", MISSING_VALUE)
    second = Ev("s", "2", "a.x", "red", 3, "high", MISSING_VALUE)
    assert reference(spec, [first, second])[1][0][1] == "opened"
    reversed_times = [first, Ev("s", "2", "a.x", "red", 7, "high", MISSING_VALUE)]
    assert reference(spec, reversed_times) == [[], []]
