"""The correlation engine: routing events to (rule, group) keys and feeding each key's window.

Pure and deterministic: no clock, no I/O. The worker calls `route` in its ingest stage and `feed`
in its correlation stage (per key, on the partition that owns the key); `replay` drives both
through `Correlator.process`. Incident ids are derived from (rule, group key, triggering event),
so replaying the same input after a crash yields the same ids and versions.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from typing import Any, NamedTuple

import orjson

from responder.correlation.capacity import GroupStore
from responder.correlation.change import Change
from responder.correlation.match import MISSING, get_path
from responder.correlation.rules import LINEAGE, Rule, RuleSet
from responder.correlation.titles import Titles
from responder.correlation.window import (
    GroupState,
    OpenIncident,
    Test,
    WindowEvent,
    condition,
    first_firing_end,
    window_event,
)
from responder.events.schema import Severity, severity_name
from responder.incidents.model import ChangeKind, IncidentChange

INCIDENT_NAMESPACE = uuid.UUID("6f1d2c3e-8a4b-4f5e-9c7d-1b2a3c4d5e6f")
DEFAULT_LATENESS = timedelta(minutes=10)


class Routed(NamedTuple):
    """One matching (rule, group) for an event: the unit the correlation stage keys on."""

    rule_id: str
    key: str
    group: dict[str, Any]


_ROUTED_MAX = 200_000  # cached (rule, group values) → Routed, per rule set


def route(rules: RuleSet, doc: dict[str, Any]) -> list[Routed]:
    """Every rule the event matches, with its group key; no group_by value, no match."""
    out = []
    cache: dict[tuple[str, tuple[Any, ...]], Routed] = rules.routed
    for rule_id, checks, parts, names, fans_out in rules.plan(str(doc.get("type"))):
        matched = True
        for check in checks:
            if not check(doc):
                matched = False
                break
        if not matched:
            continue
        if fans_out:
            out.extend(_fanned(rule_id, parts, names, doc))
            continue
        found = []
        # Only all-string groups are cached: 1, 1.0 and true are equal as dict keys but are
        # different group values.
        cacheable = True
        for part in parts:
            value = get_path(doc, part)
            if value is MISSING or value is None:
                matched = False
                break
            if type(value) is not str:
                cacheable = False
            found.append(value)
        if not matched:
            continue
        values = tuple(found)
        routed = cache.get((rule_id, values)) if cacheable else None
        if routed is None:
            key = rule_id + "|" + orjson.dumps(values).decode()
            routed = Routed(rule_id, key, dict(zip(names, values, strict=True)))
            if cacheable:
                if len(cache) > _ROUTED_MAX:
                    cache.clear()
                cache[(rule_id, values)] = routed
        out.append(routed)
    return out


def routed_by_key(rules: RuleSet, key: str) -> Routed | None:
    """The (rule, group) a group key names (`rule|[values]`, as `route` spells it), rebuilt from
    the key alone with the rule's `group_by` names: the correlation stage's side of `route`
    (cached per rule set). None when the rule is not in the set (removed since the record was
    routed); ValueError for anything `route` could not have written."""
    cache: dict[str, Routed] = rules.keyed
    if type(key) is not str:
        raise ValueError(f"a group key is a string, not {type(key).__name__}")
    routed = cache.get(key)
    if routed is not None:
        return routed
    rule_id, _, spelled = key.partition("|")
    rule = rules.rules.get(rule_id)
    if rule is None:
        return None
    values = orjson.loads(spelled)
    if type(values) is not list or len(values) != len(rule.group_by):
        raise ValueError(f"group key {key[:200]!r} does not fit rule {rule_id}'s group_by")
    routed = Routed(rule_id, key, dict(zip(rule.group_by, values, strict=True)))
    if len(cache) > _ROUTED_MAX:
        cache.clear()
    cache[key] = routed
    return routed


MAX_FAN_OUT = 64  # groups one event joins under one rule grouped on its lineage


def _fanned(
    rule_id: str, parts: tuple[tuple[str, ...], ...], names: tuple[str, ...], doc: dict[str, Any]
) -> list[Routed]:
    """A rule grouped on lineage paths: one group per combination of their values.

    An event belongs to every model (dataset, endpoint, ...) it is connected to, so a
    `data.poisoning_suspected` on a dataset joins the group of each model trained on it, as a
    route would send it to several places; at most `MAX_FAN_OUT` groups, in lineage order.
    A lineage path whose value is missing or empty means no group, like any group_by path."""
    choices: list[list[Any]] = []
    for part in parts:
        value = get_path(doc, part)
        if part[0] == LINEAGE and type(value) is list:
            choices.append([v for v in value if type(v) is str])
        elif value is MISSING or value is None:
            return []
        else:
            choices.append([value])
    out = []
    for values in itertools.islice(itertools.product(*choices), MAX_FAN_OUT):
        key = rule_id + "|" + orjson.dumps(values).decode()
        out.append(Routed(rule_id, key, dict(zip(names, values, strict=True))))
    return out


def _late_firing_window(rule: Rule, state: GroupState, time: float) -> list[WindowEvent] | None:
    """The earliest window (in event time) that holds a late event and meets the rule.

    Windows end at the group's events. A late event also falls into the windows of events up to
    `window` after it that arrived before it; those are checked too, so the result within the
    allowed lateness does not depend on arrival order. (An event in order has one window: its
    own, which `Correlator.feed` checks.)
    """
    end = first_firing_end(rule, state.events, time)
    return None if end is None else state.in_window(end, rule.window_s)


class Correlator:
    """Feeds events into group states and says which incident changes result."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        allowed_lateness: timedelta = DEFAULT_LATENESS,
        max_groups: int | None = None,
    ) -> None:
        self.rules = rules
        self.lateness = allowed_lateness.total_seconds()
        # used by `process`; the worker keeps its own, one per partition
        self.states = GroupStore(max_groups)
        self._tests: dict[str, Test] = {}  # each rule's compiled condition
        self.titles = Titles()

    def feed(
        self,
        state: GroupState,
        routed: Routed,
        event: WindowEvent,
        watermark: float | None = None,
    ) -> Change | None:
        """Add one event to its group's state (mutated in place); return the change, if any.

        Lateness is judged against `watermark`, the progress of every input partition
        (`correlation/watermark.py`): state older than it by the window (or suppress) plus the
        allowed lateness is forgotten. Without one (offline replay: one ordered input) the
        group's own newest event time stands in for it.
        """
        rule = self.rules.rules[routed.rule_id]
        key = (event.source, event.id)
        if state.seen(key):
            return None  # a redelivery: counts once
        newest = event.time >= state.max_time
        state.add(event, key)
        change = None if state.incident is None else self._attach(rule, state, routed, event)
        if change is None:
            window: list[WindowEvent] | None
            if newest:  # in order: the only window ending at or after it is its own
                own = state.in_window(event.time, rule.window_s)
                test = self._tests.get(rule.id)
                if test is None:
                    test = self._tests[rule.id] = condition(rule)
                window = own if test(own) else None
            else:
                window = _late_firing_window(rule, state, event.time)
            if window is not None:
                change = self._open(rule, state, routed, window, event)
        horizon = state.max_time if watermark is None else watermark
        state.prune(
            keep_after=horizon - rule.window_s - self.lateness,
            incident_after=horizon - rule.suppress_s - self.lateness,
        )
        return change

    def process(
        self, doc: dict[str, Any], time: float, lineage: dict[str, list[str]] | None = None
    ) -> list[IncidentChange]:
        """Route and feed one event against `self.states` (the offline path); `lineage`, when
        given, is routed on as the worker's ingest does (`doc` itself is kept as it came)."""
        changes = []
        routed_doc = doc if lineage is None else {**doc, LINEAGE: lineage}
        for routed in route(self.rules, routed_doc):
            state = self.states.group(routed.rule_id, routed.key)
            rule = self.rules.rules[routed.rule_id]
            change = self.feed(state, routed, window_event(rule, doc, time))
            if change is not None:
                changes.append(change.model())
            if state.empty:
                self.states.drop(routed.key)
        return changes

    def _attach(
        self, rule: Rule, state: GroupState, routed: Routed, event: WindowEvent
    ) -> Change | None:
        inc = state.incident
        if inc is None or event.time > inc.last_seen + rule.suppress_s:
            return None
        inc.event_keys.add((event.source, event.id))
        inc.first_seen = min(inc.first_seen, event.time)
        inc.last_seen = max(inc.last_seen, event.time)
        inc.version += 1
        kind: ChangeKind = "updated"
        if rule.incident.severity is None and event.severity > inc.severity:
            inc.severity = event.severity
            kind = "escalated"
        return self._change(kind, rule, routed, inc, [event])

    def _open(
        self,
        rule: Rule,
        state: GroupState,
        routed: Routed,
        window: list[WindowEvent],
        trigger: WindowEvent,
    ) -> Change:
        if rule.incident.severity is not None:
            severity = int(Severity[rule.incident.severity])
        else:
            severity = max(e.severity for e in window)
        times = [e.time for e in window]
        inc = OpenIncident(
            id=str(uuid.uuid5(INCIDENT_NAMESPACE, f"{routed.key}|{trigger.source}|{trigger.id}")),
            title=self.titles.render(rule, routed.key, routed.group, trigger, len(window)),
            severity=severity,
            first_seen=min(times),
            last_seen=max(times),
            version=1,
            event_keys={e.key for e in window},
        )
        state.incident = inc
        return self._change("opened", rule, routed, inc, window)

    def _change(
        self,
        change: ChangeKind,
        rule: Rule,
        routed: Routed,
        inc: OpenIncident,
        events: list[WindowEvent],
    ) -> Change:
        return Change(
            change=change,
            version=inc.version,
            incident_id=inc.id,
            rule=rule.id,
            kind=rule.incident.kind,
            title=inc.title,
            severity=severity_name(inc.severity),
            group=routed.group,
            first_seen=inc.first_seen,
            last_seen=inc.last_seen,
            event_count=len(inc.event_keys),
            events=events,
            reportable=rule.incident.reportable,
        )
