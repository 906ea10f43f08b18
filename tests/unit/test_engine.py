"""The pure correlation engine: correlation types, windows, suppression, dedup and severity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from responder.correlation.engine import Correlator, route
from responder.correlation.rules import RuleSet
from responder.incidents.model import IncidentChange
from tests.support.builders import BASE, correlator, epoch, event, feed, refs, rule

ORDERED = {"type": "temporal_ordered", "events": ["secret.leaked", "key.used"]}
LEAK_OR_USE = {"type": ["secret.leaked", "key.used"]}


def count_rule(**condition: int) -> dict[str, Any]:
    return {"type": "event_count", "condition": condition}


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(BASE.timestamp() + seconds, tz=UTC)


def leak(event_id: str, t: float, **kw: Any) -> dict[str, Any]:
    return event(event_id, at=t, type="secret.leaked", **kw)


def use(event_id: str, t: float, **kw: Any) -> dict[str, Any]:
    return event(event_id, at=t, type="key.used", **kw)


# --- no correlation -----------------------------------------------------------------------------


def test_no_correlation_opens_then_attaches() -> None:
    c = correlator(rule(window="10s"))
    (opened,) = feed(c, event("e1", at=0, severity="medium"))
    assert opened.change == "opened"
    assert opened.version == 1
    assert opened.event_count == 1
    assert refs(opened) == ["e1"]
    assert opened.rule == "r"
    assert opened.kind == "test"
    assert opened.group == {"resource.id": "res-1"}
    assert opened.severity == "medium"
    assert opened.first_seen == opened.last_seen == at(0)

    (updated,) = feed(c, event("e2", at=4))
    assert updated.change == "updated"
    assert updated.incident_id == opened.incident_id
    assert updated.version == 2
    assert updated.event_count == 2
    assert refs(updated) == ["e2"]  # a change carries the events it adds
    assert (updated.first_seen, updated.last_seen) == (at(0), at(4))


def test_each_group_gets_its_own_incident() -> None:
    c = correlator(rule())
    a, b = feed(c, event("e1", resource_id="a"), event("e2", resource_id="b"))
    assert a.change == b.change == "opened"
    assert a.incident_id != b.incident_id
    assert (a.group, b.group) == ({"resource.id": "a"}, {"resource.id": "b"})
    (again,) = feed(c, event("e3", at=1, resource_id="a"))
    assert again.incident_id == a.incident_id


def test_events_the_rule_does_not_match_change_nothing() -> None:
    c = correlator(rule(match={"type": "test.seen", "severity": ["high", "critical"]}))
    assert feed(c, event("e1", type="other.type", severity="high")) == []
    assert feed(c, event("e2", severity="low")) == []
    assert c.states == {}
    assert [x.change for x in feed(c, event("e3", severity="high"))] == ["opened"]


def test_changes_are_valid_incident_changes() -> None:
    c = correlator(rule(correlation=count_rule(gte=2)))
    changes = feed(c, event("e1"), event("e2", at=1), event("e3", at=2, severity="critical"))
    assert [x.change for x in changes] == ["opened", "escalated"]
    for change in changes:
        assert IncidentChange.model_validate(change.model_dump()) == change


# --- event_count --------------------------------------------------------------------------------


def test_event_count_gte_fires_at_the_threshold_with_the_whole_window() -> None:
    c = correlator(rule(correlation=count_rule(gte=3)))
    assert feed(c, event("e1", at=0), event("e2", at=1)) == []
    (opened,) = feed(c, event("e3", at=2))
    assert opened.change == "opened"
    assert refs(opened) == ["e1", "e2", "e3"]
    assert opened.event_count == 3
    assert (opened.first_seen, opened.last_seen) == (at(0), at(2))


def test_event_count_gt_needs_more_than_n() -> None:
    c = correlator(rule(correlation=count_rule(gt=2)))
    assert feed(c, event("e1", at=0), event("e2", at=1)) == []
    assert [x.change for x in feed(c, event("e3", at=2))] == ["opened"]


def test_event_count_eq() -> None:
    c = correlator(rule(correlation=count_rule(eq=2)))
    assert feed(c, event("e1", at=0)) == []
    (opened,) = feed(c, event("e2", at=1))
    assert refs(opened) == ["e1", "e2"]

    c = correlator(rule(correlation=count_rule(eq=2), window="10s"))
    # never two in one window
    assert feed(c, event("e1", at=0), event("e2", at=11), event("e3", at=22)) == []


def test_event_count_only_counts_the_window() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="10s"))
    assert feed(c, event("e1", at=0), event("e2", at=11)) == []
    (opened,) = feed(c, event("e3", at=15))
    assert refs(opened) == ["e2", "e3"]  # e1 is out of e3's window


def test_event_count_counts_per_group() -> None:
    c = correlator(rule(correlation=count_rule(gte=2)))
    assert feed(c, event("e1", resource_id="a"), event("e2", at=1, resource_id="b")) == []
    (opened,) = feed(c, event("e3", at=2, resource_id="a"))
    assert refs(opened) == ["e1", "e3"]


# --- value_count --------------------------------------------------------------------------------


def ip_event(event_id: str, t: float, ip: str | None) -> dict[str, Any]:
    if ip is None:
        return event(event_id, at=t)
    return event(event_id, at=t, actor={"ip": ip})


def test_value_count_counts_distinct_values() -> None:
    c = correlator(
        rule(correlation={"type": "value_count", "condition": {"field": "actor.ip", "gte": 3}})
    )
    assert feed(c, ip_event("e1", 0, "10.0.0.1"), ip_event("e2", 1, "10.0.0.1")) == []
    assert feed(c, ip_event("e3", 2, "10.0.0.2")) == []
    (opened,) = feed(c, ip_event("e4", 3, "10.0.0.3"))
    assert refs(opened) == ["e1", "e2", "e3", "e4"]  # every event of the window, repeats too


def test_value_count_ignores_events_without_the_field() -> None:
    c = correlator(
        rule(correlation={"type": "value_count", "condition": {"field": "actor.ip", "gt": 1}})
    )
    assert feed(c, ip_event("e1", 0, "a"), ip_event("e2", 1, None), ip_event("e3", 2, None)) == []
    (opened,) = feed(c, ip_event("e4", 3, "b"))
    assert refs(opened) == ["e1", "e2", "e3", "e4"]


def test_value_count_eq_and_window() -> None:
    spec = {"type": "value_count", "condition": {"field": "actor.ip", "eq": 2}}
    c = correlator(rule(correlation=spec, window="10s"))
    assert feed(c, ip_event("e1", 0, "a"), ip_event("e2", 11, "b")) == []
    (opened,) = feed(c, ip_event("e3", 12, "c"))
    assert refs(opened) == ["e2", "e3"]


def test_value_count_true_is_not_the_number_one() -> None:
    spec = {"type": "value_count", "condition": {"field": "attributes.v", "gte": 2}}
    c = correlator(rule(correlation=spec))
    assert feed(c, event("e1", attributes={"v": 1}), event("e2", at=1, attributes={"v": 1.0})) == []
    (opened,) = feed(c, event("e3", at=2, attributes={"v": True}))
    assert refs(opened) == ["e1", "e2", "e3"]


def test_value_count_of_structured_values() -> None:
    spec = {"type": "value_count", "condition": {"field": "attributes.v", "gte": 2}}
    c = correlator(rule(correlation=spec))
    first = event("e1", attributes={"v": {"a": [1, 2], "b": "x"}})
    same = event("e2", at=1, attributes={"v": {"b": "x", "a": [1, 2]}})
    assert feed(c, first, same) == []
    (opened,) = feed(c, event("e3", at=2, attributes={"v": {"a": [2, 1], "b": "x"}}))
    assert refs(opened) == ["e1", "e2", "e3"]


# --- temporal -----------------------------------------------------------------------------------


def test_temporal_fires_in_any_order() -> None:
    spec = {"type": "temporal", "events": ["secret.leaked", "key.used"]}
    c = correlator(rule(match=LEAK_OR_USE, correlation=spec, window="10m"))
    assert feed(c, use("u1", 0)) == []
    assert feed(c, use("u2", 10)) == []
    (opened,) = feed(c, leak("l1", 20))
    assert refs(opened) == ["u1", "u2", "l1"]


def test_temporal_needs_every_type_in_the_window() -> None:
    spec = {"type": "temporal", "events": ["secret.leaked", "key.used"]}
    c = correlator(rule(match=LEAK_OR_USE, correlation=spec, window="10s"))
    assert feed(c, leak("l1", 0), leak("l2", 5)) == []
    assert feed(c, use("u1", 16)) == []  # both leaks are more than 10 s earlier
    assert [x.change for x in feed(c, leak("l3", 20))] == ["opened"]


def test_temporal_three_types() -> None:
    spec = {"type": "temporal", "events": ["a.x", "a.y", "a.z"]}
    c = correlator(rule(match={"type": ["a.x", "a.y", "a.z"]}, correlation=spec))
    assert feed(c, event("1", type="a.z"), event("2", at=1, type="a.x")) == []
    assert feed(c, event("3", at=2, type="a.x")) == []
    (opened,) = feed(c, event("4", at=3, type="a.y"))
    assert refs(opened) == ["1", "2", "3", "4"]


# --- temporal_ordered ---------------------------------------------------------------------------


def test_temporal_ordered_fires_in_order() -> None:
    c = correlator(rule(match=LEAK_OR_USE, correlation=ORDERED, window="30m"))
    assert feed(c, leak("l1", 0)) == []
    (opened,) = feed(c, use("u1", 600))
    assert refs(opened) == ["l1", "u1"]


def test_temporal_ordered_does_not_fire_for_use_before_leak() -> None:
    c = correlator(rule(match=LEAK_OR_USE, correlation=ORDERED, window="30m"))
    assert feed(c, use("u1", 0), leak("l1", 600)) == []


def test_temporal_ordered_uses_event_time_not_arrival() -> None:
    # arriving leak-then-use, but the use happened first: not a compromise
    c = correlator(rule(match=LEAK_OR_USE, correlation=ORDERED, window="30m"))
    assert feed(c, leak("l1", 600), use("u1", 300)) == []

    # arriving use-then-leak (the scanner reported late), but the leak happened first
    c = correlator(rule(match=LEAK_OR_USE, correlation=ORDERED, window="30m"))
    assert feed(c, use("u1", 600)) == []
    (opened,) = feed(c, leak("l1", 300))
    assert refs(opened) == ["u1", "l1"]  # arrival order
    assert (opened.first_seen, opened.last_seen) == (at(300), at(600))


def test_temporal_ordered_skips_noise_and_needs_the_full_sequence() -> None:
    spec = {"type": "temporal_ordered", "events": ["a.x", "a.y", "a.z"]}
    c = correlator(rule(match={"type": ["a.x", "a.y", "a.z"]}, correlation=spec))
    assert feed(c, event("1", at=0, type="a.y"), event("2", at=1, type="a.x")) == []
    assert feed(c, event("3", at=2, type="a.z")) == []  # x, z without a y between
    assert feed(c, event("4", at=3, type="a.y")) == []
    (opened,) = feed(c, event("5", at=4, type="a.z"))
    assert refs(opened) == ["1", "2", "3", "4", "5"]


def test_temporal_ordered_repeated_type_needs_two_events() -> None:
    spec = {"type": "temporal_ordered", "events": ["a.x", "a.x"]}
    c = correlator(rule(match={"type": "a.x"}, correlation=spec))
    assert feed(c, event("1", type="a.x")) == []
    assert [x.change for x in feed(c, event("2", at=1, type="a.x"))] == ["opened"]


def test_temporal_ordered_same_time_follows_arrival() -> None:
    c = correlator(rule(match=LEAK_OR_USE, correlation=ORDERED))
    assert [x.change for x in feed(c, leak("l1", 5), use("u1", 5))] == ["opened"]
    c = correlator(rule(match=LEAK_OR_USE, correlation=ORDERED))
    assert feed(c, use("u1", 5), leak("l1", 5)) == []


def test_temporal_ordered_outside_window() -> None:
    c = correlator(rule(match=LEAK_OR_USE, correlation=ORDERED, window="30m"))
    assert feed(c, leak("l1", 0), use("u1", 1800.001)) == []


# --- window edges -------------------------------------------------------------------------------


def test_event_exactly_window_before_counts() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="10s"))
    assert feed(c, event("e1", at=0)) == []
    (opened,) = feed(c, event("e2", at=10))
    assert refs(opened) == ["e1", "e2"]


def test_event_one_millisecond_outside_does_not_count() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="10s"))
    assert feed(c, event("e1", at=0), event("e2", at=10.001)) == []


def test_window_edges_with_fractional_times() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="250ms"))
    assert [x.change for x in feed(c, event("e1", at=0.123), event("e2", at=0.373))] == ["opened"]
    c = correlator(rule(correlation=count_rule(gte=2), window="250ms"))
    assert feed(c, event("e1", at=0.123), event("e2", at=0.374)) == []


def test_late_event_exactly_window_before_a_later_one_counts() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="10s"))
    assert feed(c, event("e2", at=10)) == []
    (opened,) = feed(c, event("e1", at=0))
    assert refs(opened) == ["e2", "e1"]
    c = correlator(rule(correlation=count_rule(gte=2), window="10s"))
    assert feed(c, event("e2", at=10), event("e1", at=-0.001)) == []


def test_late_event_completes_a_later_window() -> None:
    c = correlator(rule(correlation=count_rule(gte=3), window="10s"))
    assert feed(c, event("e1", at=0), event("e3", at=9)) == []
    (opened,) = feed(c, event("e2", at=4))
    assert refs(opened) == ["e1", "e3", "e2"]


# --- suppression --------------------------------------------------------------------------------


def test_attach_while_within_suppress_then_a_new_incident() -> None:
    c = correlator(rule(window="10s"))  # suppress defaults to the window
    (first,) = feed(c, event("e1", at=0))
    (attached,) = feed(c, event("e2", at=10))  # exactly suppress after the last event
    assert (attached.change, attached.incident_id) == ("updated", first.incident_id)
    (attached,) = feed(c, event("e3", at=20))  # measured from the newest event, not the first
    assert (attached.change, attached.incident_id) == ("updated", first.incident_id)
    (second,) = feed(c, event("e4", at=30.001))
    assert second.change == "opened"
    assert second.incident_id != first.incident_id
    assert second.version == 1
    assert refs(second) == ["e4"]


def test_custom_suppress_shorter_than_window() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="60s", suppress="5s"))
    (first,) = feed(c, event("e1", at=0), event("e2", at=1))
    assert refs(first) == ["e1", "e2"]
    (attached,) = feed(c, event("e3", at=6))
    assert (attached.change, attached.incident_id) == ("updated", first.incident_id)
    # 12 > 6 + 5: no longer attaches; the window still meets the count, so a new incident opens
    # with every matching event of its window
    (second,) = feed(c, event("e4", at=12))
    assert second.change == "opened"
    assert second.incident_id != first.incident_id
    assert refs(second) == ["e1", "e2", "e3", "e4"]
    assert second.event_count == 4


def test_custom_suppress_longer_than_window() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="10s", suppress="1m"))
    (first,) = feed(c, event("e1", at=0), event("e2", at=1))
    (attached,) = feed(c, event("e3", at=61))  # alone in its window, but within suppress
    assert (attached.change, attached.incident_id) == ("updated", first.incident_id)


def test_after_suppress_a_new_incident_needs_a_new_firing() -> None:
    c = correlator(rule(correlation=count_rule(gte=3), window="10s"))
    (first,) = feed(c, event("e1", at=0), event("e2", at=1), event("e3", at=2))
    assert feed(c, event("e4", at=30), event("e5", at=31)) == []
    (second,) = feed(c, event("e6", at=32))
    assert second.change == "opened"
    assert second.incident_id != first.incident_id
    assert refs(second) == ["e4", "e5", "e6"]


# --- dedup --------------------------------------------------------------------------------------


def test_redelivered_event_counts_once() -> None:
    c = correlator(rule(correlation=count_rule(gte=2)))
    e1 = event("e1", at=0)
    assert feed(c, e1, dict(e1)) == []
    (opened,) = feed(c, event("e2", at=1))
    assert refs(opened) == ["e1", "e2"]
    assert opened.event_count == 2


def test_redelivery_inside_an_incident_changes_nothing() -> None:
    c = correlator(rule(correlation=count_rule(gte=2)))
    e1, e2 = event("e1", at=0), event("e2", at=1)
    (opened,) = feed(c, e1, e2)
    assert feed(c, e1, e2) == []
    (updated,) = feed(c, event("e3", at=2))
    assert updated.incident_id == opened.incident_id
    assert updated.version == 2
    assert updated.event_count == 3
    assert feed(c, event("e3", at=2)) == []


def test_redelivery_of_an_attached_event_changes_nothing() -> None:
    c = correlator(rule())
    feed(c, event("e1"))
    (updated,) = feed(c, event("e2", at=1))
    assert feed(c, event("e2", at=1)) == []
    (later,) = feed(c, event("e3", at=2))
    assert (later.version, later.event_count) == (updated.version + 1, 3)


def test_same_id_from_another_source_is_another_event() -> None:
    c = correlator(rule(correlation=count_rule(gte=2)))
    assert feed(c, event("e1", source="a")) == []
    (opened,) = feed(c, event("e1", at=1, source="b"))
    assert [(e["source"], e["id"]) for e in opened.events] == [("a", "e1"), ("b", "e1")]


# --- severity -----------------------------------------------------------------------------------


def test_rule_severity_wins() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), incident={"kind": "k", "severity": "low"}))
    (opened,) = feed(c, event("e1", severity="critical"), event("e2", at=1, severity="high"))
    assert opened.severity == "low"
    (updated,) = feed(c, event("e3", at=2, severity="critical"))
    assert (updated.change, updated.severity) == ("updated", "low")


def test_without_rule_severity_the_highest_event_severity() -> None:
    c = correlator(rule(correlation=count_rule(gte=3)))
    changes = feed(
        c,
        event("e1", at=0, severity="info"),
        event("e2", at=1, severity="high"),
        event("e3", at=2, severity="low"),
    )
    assert [(x.change, x.severity) for x in changes] == [("opened", "high")]


def test_escalated_when_an_attached_event_raises_severity() -> None:
    c = correlator(rule())
    changes = feed(
        c,
        event("e1", at=0, severity="medium"),
        event("e2", at=1, severity="low"),
        event("e3", at=2, severity="medium"),
        event("e4", at=3, severity="critical"),
        event("e5", at=4, severity="high"),
    )
    assert [(x.change, x.severity, x.version) for x in changes] == [
        ("opened", "medium", 1),
        ("updated", "medium", 2),
        ("updated", "medium", 3),
        ("escalated", "critical", 4),
        ("updated", "critical", 5),
    ]


# --- grouping -----------------------------------------------------------------------------------


def test_missing_group_by_path_does_not_match() -> None:
    c = correlator(rule(group_by=["labels.team"]))
    assert feed(c, event("e1")) == []
    assert feed(c, event("e2", labels={"other": "x"})) == []
    assert c.states == {}
    (opened,) = feed(c, event("e3", labels={"team": "red"}))
    assert opened.group == {"labels.team": "red"}


def test_null_group_by_value_does_not_match() -> None:
    c = correlator(rule(group_by=["attributes.owner"]))
    assert feed(c, event("e1", attributes={"owner": None})) == []
    assert route(c.rules, event("e2", attributes={"owner": "x"}))[0].group == {
        "attributes.owner": "x"
    }


def test_group_by_several_paths() -> None:
    c = correlator(rule(group_by=["resource.id", "labels.env"], correlation=count_rule(gte=2)))
    assert feed(c, event("e1", labels={"env": "prod"}), event("e2", labels={"env": "dev"})) == []
    assert feed(c, event("e3", labels={})) == []  # one path missing: no match
    (opened,) = feed(c, event("e4", labels={"env": "prod"}))
    assert opened.group == {"resource.id": "res-1", "labels.env": "prod"}
    assert refs(opened) == ["e1", "e4"]


def test_group_values_of_different_types_are_different_groups() -> None:
    c = correlator(rule(group_by=["attributes.k"], correlation=count_rule(gte=2)))
    assert feed(c, event("e1", attributes={"k": 1}), event("e2", attributes={"k": "1"})) == []


def test_one_event_feeds_every_matching_rule() -> None:
    one = rule(id="one")
    two = rule(id="two", correlation=count_rule(gte=1), incident={"kind": "other"})
    c = Correlator(RuleSet([one, two]))
    changes = feed(c, event("e1"))
    assert sorted((x.rule, x.kind) for x in changes) == [("one", "test"), ("two", "other")]
    assert changes[0].incident_id != changes[1].incident_id


# --- ids, versions and titles -------------------------------------------------------------------


def _stream() -> list[dict[str, Any]]:
    return [
        event("e1", at=0, resource_id="a"),
        event("e2", at=1, resource_id="b"),
        event("e3", at=2, resource_id="a", severity="high"),
        event("e4", at=30, resource_id="a"),
        event("e5", at=31, resource_id="b"),
    ]


def test_incident_ids_are_deterministic() -> None:
    spec = {"correlation": count_rule(gte=1), "window": "10s"}
    first = feed(correlator(rule(**spec)), *_stream())
    second = feed(correlator(rule(**spec)), *_stream())
    assert [x.model_dump() for x in first] == [x.model_dump() for x in second]
    ids = [x.incident_id for x in first]
    assert len(set(ids)) == 4  # a: two incidents (30 s gap), b: two incidents
    assert ids[0] == ids[2]


def test_incident_id_depends_on_rule_group_and_trigger() -> None:
    (a,) = feed(correlator(rule()), event("e1"))
    (b,) = feed(correlator(rule(id="other")), event("e1"))
    (c,) = feed(correlator(rule()), event("e1", resource_id="x"))
    (d,) = feed(correlator(rule()), event("e9"))
    assert len({a.incident_id, b.incident_id, c.incident_id, d.incident_id}) == 4


def test_versions_increase_by_one_per_change() -> None:
    c = correlator(rule(window="1m"))
    changes = feed(c, *(event(f"e{i}", at=i) for i in range(6)))
    assert [x.version for x in changes] == [1, 2, 3, 4, 5, 6]
    assert [x.event_count for x in changes] == [1, 2, 3, 4, 5, 6]
    assert len({x.incident_id for x in changes}) == 1


def test_title_template_sees_group_event_and_count() -> None:
    title = "{{ count }} in {{ group['resource.id'] }} after {{ event.id }} ({{ rule.id }})"
    c = correlator(rule(correlation=count_rule(gte=2), incident={"kind": "k", "title": title}))
    (opened,) = feed(c, event("e1"), event("e2", at=1))
    assert opened.title == "2 in res-1 after e2 (r)"


def test_title_that_fails_to_render_falls_back_to_the_rule_title() -> None:
    c = correlator(rule(incident={"kind": "k", "title": "{{ group['nope'].x }}"}))
    (opened,) = feed(c, event("e1"))
    assert opened.title == "Test rule"


# --- lateness and pruning -----------------------------------------------------------------------


def test_late_event_at_the_lateness_limit_is_exact() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="10s"), lateness=5)
    assert feed(c, event("e0", at=0), event("e15", at=15)) == []
    # 10 is exactly `lateness` behind the newest (15); e0 is exactly `window` before it
    (opened,) = feed(c, event("e10", at=10))
    assert refs(opened) == ["e0", "e10"]


def test_open_incident_at_the_lateness_limit_still_takes_events() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="10s"), lateness=5)
    (opened,) = feed(c, event("a", at=0), event("b", at=0))
    assert feed(c, event("c", at=15)) == []  # past suppress, alone in its window
    (updated,) = feed(c, event("d", at=10))  # exactly suppress after the incident's last event
    assert (updated.change, updated.incident_id) == ("updated", opened.incident_id)


def test_state_older_than_window_plus_lateness_is_pruned() -> None:
    c = correlator(rule(correlation=count_rule(gte=5), window="10s"), lateness=5)
    feed(c, event("e0", at=0), event("e1", at=1), event("e2", at=2), event("e17", at=17))
    (state,) = c.states.values()
    # kept: time >= 17 - 10 - 5 = 2
    assert [e.id for e in state.events] == ["e2", "e17"]
    feed(c, event("e100", at=100))
    assert [e.id for e in state.events] == ["e100"]


def test_open_incident_is_forgotten_once_nothing_can_attach() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="10s"), lateness=5)
    feed(c, event("a", at=0), event("b", at=0))
    (state,) = c.states.values()
    assert state.incident is not None
    # newest 15.001: an event within lateness (>= 10.001) is past suppress (0 + 10)
    assert feed(c, event("c", at=15.001)) == []
    assert state.incident is None
    assert [e.id for e in state.events] == ["c"]  # kept: >= 15.001 - 10 - 5


def test_process_routes_each_event_by_its_time() -> None:
    c = correlator(rule(correlation=count_rule(gte=2), window="10s"))
    doc = event("e1", at=0)
    assert c.process(doc, epoch(doc)) == []
    doc2 = event("e2", at=5)
    (opened,) = c.process(doc2, epoch(doc2))
    assert opened.first_seen == at(0)
    assert opened.last_seen == at(5)


def test_group_values_of_different_json_types_are_different_groups() -> None:
    """1, 1.0 and true compare equal in Python; as group values they are distinct groups."""
    r = rule(group_by=["attributes.n"])
    rs = RuleSet([r])
    keys = [route(rs, event("e", attributes={"n": v}))[0].key for v in (1, True, "1", 1)]
    assert keys == ["r|[1]", "r|[true]", 'r|["1"]', "r|[1]"]


def test_rule_sets_with_the_same_rule_id_route_by_their_own_group_by() -> None:
    """The routing cache belongs to one rule set: a reload with a changed group_by is honoured."""
    doc = event("e", resource_id="res-1", attributes={"n": "res-1"})
    before = route(RuleSet([rule(group_by=["resource.id"])]), doc)
    after = route(RuleSet([rule(group_by=["attributes.n"])]), doc)
    assert before[0].group == {"resource.id": "res-1"}
    assert after[0].group == {"attributes.n": "res-1"}
