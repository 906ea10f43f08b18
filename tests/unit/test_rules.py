"""Rule files: every shipped rule loads; bad files are rejected with file, line and field."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from responder.correlation.rules import (
    EventCount,
    Rule,
    RuleSet,
    Temporal,
    ValueCount,
    load_rule_file,
    load_rules,
)
from responder.text.duration import parse_duration
from responder.yamlfiles import YamlFileError, yaml_files

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
SHIPPED = yaml_files(RULES_DIR)

VALID = """\
id: sample
title: Sample rule
match:
  type: [a.x, a.y]
group_by: [resource.id]
window: 5m
correlation:
  type: event_count
  condition: {gte: 3}
incident:
  kind: sample
  severity: high
"""


def write(tmp_path: Path, text: str, name: str = "rule.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rejection(path: Path) -> list[str]:
    with pytest.raises(YamlFileError) as info:
        load_rule_file(path)
    return info.value.messages


def only_message(path: Path) -> str:
    messages = rejection(path)
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"{path}:")
    return messages[0]


def rule_data(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "r",
        "title": "T",
        "match": {"type": "a.x"},
        "group_by": ["resource.id"],
        "window": "1m",
        "incident": {"kind": "k"},
    }
    data.update(fields)
    return data


# --- the shipped rules --------------------------------------------------------------------------


def test_rules_directory_ships_rules() -> None:
    assert {p.name for p in SHIPPED} >= {
        "adversarial-burst.yaml",
        "key-used-from-many-ips.yaml",
        "leaked-key-then-used.yaml",
        "model-integrity.yaml",
        "vulnerable-serving-image.yaml",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_rule_file_loads(path: Path) -> None:
    rule = load_rule_file(path)
    assert rule.id == path.stem  # the convention: one rule per file, named after its id
    assert rule.enabled
    assert rule.conditions  # every match entry compiles
    assert rule.window > timedelta(0)
    assert rule.suppress_for >= timedelta(0)


def test_shipped_rule_set_loads_as_a_whole() -> None:
    rules = load_rules(RULES_DIR)
    assert len(rules) == len(SHIPPED)
    assert set(rules.rules) == {p.stem for p in SHIPPED}


def test_shipped_rules_have_the_documented_shape() -> None:
    rules = load_rules(RULES_DIR).rules
    leaked = rules["leaked-key-then-used"]
    assert isinstance(leaked.correlation, Temporal)
    assert leaked.correlation.type == "temporal_ordered"
    assert leaked.correlation.events == ["secret.leaked", "key.used"]
    assert leaked.window == timedelta(minutes=30)
    assert leaked.suppress_for == timedelta(hours=6)
    assert leaked.incident.severity == "critical"

    burst = rules["adversarial-burst"]
    assert isinstance(burst.correlation, EventCount)
    assert burst.correlation.condition.gte == 10
    assert burst.window == timedelta(minutes=5)
    assert burst.suppress_for == timedelta(minutes=30)

    many_ips = rules["key-used-from-many-ips"]
    assert isinstance(many_ips.correlation, ValueCount)
    assert many_ips.correlation.condition.field == "actor.ip"
    assert many_ips.suppress_for == many_ips.window  # default: the window

    assert rules["model-integrity"].correlation is None
    assert rules["model-integrity"].incident.severity is None
    assert rules["vulnerable-serving-image"].group_by == ["resource.id"]


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30), ("10m", 600), ("6h", 21600), ("1d", 86400), ("2w", 1209600)],
)
def test_parse_duration_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_parse_duration_numbers_are_seconds() -> None:
    assert parse_duration(90) == timedelta(seconds=90)
    assert parse_duration(1.5) == timedelta(seconds=1.5)
    assert parse_duration(timedelta(minutes=2)) == timedelta(minutes=2)


@pytest.mark.parametrize("bad", ["5x", "m5", "1.5h", "", "-5m", True, None, 0, -1, "0s"])
def test_parse_duration_rejects(bad: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


# --- invalid files: file, line and field --------------------------------------------------------


def test_bad_window_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("window: 5m", "window: 5x"))
    message = only_message(path)
    assert f"{path}:6:" in message
    assert "window" in message
    assert "5x" in message


def test_zero_window_is_rejected(tmp_path: Path) -> None:
    message = only_message(write(tmp_path, VALID.replace("window: 5m", "window: 0s")))
    assert ":6: window:" in message
    assert "positive" in message


def test_bad_suppress_is_located(tmp_path: Path) -> None:
    message = only_message(write(tmp_path, VALID + "suppress: soon\n"))
    assert ":13: suppress:" in message


def test_bad_correlation_condition_points_at_its_own_line(tmp_path: Path) -> None:
    text = VALID.replace("  condition: {gte: 3}", "  condition:\n    gte: -1")
    message = only_message(write(tmp_path, text))
    assert ":10: correlation.condition.gte:" in message
    assert "greater than or equal to 0" in message


def test_two_count_operators_are_rejected_at_the_condition(tmp_path: Path) -> None:
    text = VALID.replace("  condition: {gte: 3}", "  condition:\n    gte: 3\n    eq: 3")
    message = only_message(write(tmp_path, text))
    assert ":9: correlation.condition:" in message
    assert "exactly one of gte, gt, eq" in message


def test_value_count_without_field_is_located(tmp_path: Path) -> None:
    text = VALID.replace("type: event_count", "type: value_count")
    message = only_message(write(tmp_path, text))
    assert ":9: correlation.condition.field:" in message
    assert "required" in message


def test_unknown_correlation_type_points_at_type(tmp_path: Path) -> None:
    message = only_message(write(tmp_path, VALID.replace("event_count", "event_counter")))
    assert ":8: correlation.type:" in message
    assert "event_counter" in message


def test_empty_temporal_events_is_located(tmp_path: Path) -> None:
    text = VALID.replace(
        "  type: event_count\n  condition: {gte: 3}", "  type: temporal\n  events: []"
    )
    message = only_message(write(tmp_path, text))
    assert ":9: correlation.events:" in message


def test_temporal_events_not_allowed_by_match_type(tmp_path: Path) -> None:
    text = VALID.replace(
        "  type: event_count\n  condition: {gte: 3}",
        "  type: temporal_ordered\n  events:\n    - a.x\n    - b.z",
    )
    message = only_message(write(tmp_path, text))
    assert ":11: correlation.events.1:" in message  # the line of `- b.z`
    assert "b.z" in message
    assert "can never match" in message


def test_temporal_events_are_unrestricted_without_a_plain_type() -> None:
    rule = Rule.model_validate(
        rule_data(
            match={"type|startswith": "a."},
            correlation={"type": "temporal", "events": ["a.x", "b.z"]},
        )
    )
    assert isinstance(rule.correlation, Temporal)
    with pytest.raises(ValidationError, match="can never match"):
        Rule.model_validate(
            rule_data(
                match={"type": ["a.x"]},
                correlation={"type": "temporal", "events": ["a.x", "b.z"]},
            )
        )


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("  attributes.v|re: '('", "invalid regular expression"),
        ("  attributes.v|near: 3", "unknown modifier 'near'"),
        ("  attributes.v|gte: high", "gte needs a number"),
        ("  attributes.v|exists: maybe", "exists takes true or false"),
    ],
)
def test_bad_match_entry_points_at_its_line(tmp_path: Path, entry: str, expected: str) -> None:
    text = VALID.replace("  type: [a.x, a.y]\n", f"  type: [a.x, a.y]\n{entry}\n")
    message = only_message(write(tmp_path, text))
    assert ":5: match.attributes.v|" in message
    assert expected in message


def test_every_bad_match_entry_is_reported(tmp_path: Path) -> None:
    text = VALID.replace(
        "  type: [a.x, a.y]\n", "  type: [a.x, a.y]\n  a|gt: x\n  b: ok\n  c|re: '['\n"
    )
    messages = rejection(write(tmp_path, text))
    assert len(messages) == 2
    assert ":5: match.a|gt:" in messages[0]
    assert ":7: match.c|re:" in messages[1]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = only_message(write(tmp_path, VALID + "colour: red\n"))
    assert ":13: colour:" in message
    assert "Extra inputs are not permitted" in message


def test_unknown_nested_key(tmp_path: Path) -> None:
    message = only_message(write(tmp_path, VALID + "  owner: me\n"))
    assert ":13: incident.owner:" in message


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "window: 10m\n")
    message = only_message(path)
    assert f"{path}:13:" in message
    assert "duplicate key 'window'" in message


def test_duplicate_nested_yaml_key(tmp_path: Path) -> None:
    message = only_message(
        write(tmp_path, VALID.replace("  type: [a.x, a.y]\n", "  type: a\n  type: b\n"))
    )
    assert ":5:" in message
    assert "duplicate key 'type'" in message


def test_invalid_incident_severity(tmp_path: Path) -> None:
    message = only_message(write(tmp_path, VALID.replace("severity: high", "severity: urgent")))
    assert ":12: incident.severity:" in message


def test_invalid_title_template(tmp_path: Path) -> None:
    message = only_message(write(tmp_path, VALID + "  title: \"{{ group['x' }}\"\n"))
    assert ":13: incident.title:" in message
    assert "invalid template" in message


def test_rule_title_is_checked_as_the_incident_title_template(tmp_path: Path) -> None:
    """Without incident.title the rule's title is rendered for every incident: a title that is
    not a template is refused at load, not at every incident the rule opens."""
    bad = VALID.replace("title: Sample rule", "title: \"Burst {{ group['x' }}\"")
    message = only_message(write(tmp_path, bad))
    assert ":10: incident:" in message
    assert "no incident.title, so the rule's title is used: invalid template" in message
    # with an incident title of its own, the rule's title is only text
    fine = write(tmp_path, bad + '  title: "{{ group }}"\n', name="fine.yaml")
    assert load_rule_file(fine).title == "Burst {{ group['x' }}"


def test_invalid_rule_id(tmp_path: Path) -> None:
    message = only_message(write(tmp_path, VALID.replace("id: sample", "id: -bad id")))
    assert ":1: id:" in message


def test_missing_required_field(tmp_path: Path) -> None:
    message = only_message(write(tmp_path, VALID.replace("group_by: [resource.id]\n", "")))
    assert "group_by: Field required" in message


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    text = VALID.replace("window: 5m", "window: 5x").replace("severity: high", "severity: no")
    messages = rejection(write(tmp_path, text))
    assert len(messages) == 2
    assert any(":6: window:" in m for m in messages)
    assert any(":12: incident.severity:" in m for m in messages)


def test_invalid_yaml_syntax(tmp_path: Path) -> None:
    message = only_message(write(tmp_path, VALID.replace("match:\n", "match: [\n")))
    assert "invalid YAML" in message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a list\n", "just text\n"])
def test_files_that_are_not_one_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "rule.yaml"
    path.write_text(text, encoding="utf-8")
    message = only_message(path)
    assert f"{path}:1:" in message


# --- directories and duplicates -----------------------------------------------------------------


def test_load_rules_reports_problems_of_every_file(tmp_path: Path) -> None:
    write(tmp_path, VALID, "a.yaml")
    write(tmp_path, VALID.replace("id: sample", "id: other").replace("5m", "5x"), "b.yaml")
    write(tmp_path, VALID.replace("id: sample", "id: third") + "extra: 1\n", "c.yml")
    with pytest.raises(YamlFileError) as info:
        load_rules(tmp_path)
    text = str(info.value)
    assert f"{tmp_path / 'b.yaml'}:6: window" in text
    assert f"{tmp_path / 'c.yml'}:13: extra" in text
    assert "a.yaml" not in text


def test_duplicate_rule_ids_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, VALID, "a.yaml")
    second = write(tmp_path, VALID, "b.yaml")
    with pytest.raises(YamlFileError) as info:
        load_rules(tmp_path)
    (message,) = info.value.messages
    assert str(second) in message
    assert str(first) in message
    assert "duplicate rule id 'sample'" in message


def test_rule_set_rejects_duplicate_ids() -> None:
    rule = Rule.model_validate(rule_data())
    with pytest.raises(ValueError, match="duplicate rule id 'r'"):
        RuleSet([rule, rule])


def test_missing_rules_directory(tmp_path: Path) -> None:
    with pytest.raises(YamlFileError, match="rules directory not found"):
        load_rules(tmp_path / "nope")


def test_yaml_files_takes_yaml_and_yml_sorted(tmp_path: Path) -> None:
    for name in ["b.yml", "a.yaml", "c.txt", "d.yaml"]:
        (tmp_path / name).write_text(VALID, encoding="utf-8")
    assert [p.name for p in yaml_files(tmp_path)] == ["a.yaml", "b.yml", "d.yaml"]


# --- the type index -----------------------------------------------------------------------------


def _rule(rule_id: str, match: dict[str, Any], **fields: Any) -> Rule:
    return Rule.model_validate(rule_data(id=rule_id, match=match, **fields))


def test_candidates_by_plain_type() -> None:
    leaked = _rule("leaked", {"type": ["secret.leaked", "key.used"]})
    used = _rule("used", {"type": "key.used"})
    anything = _rule("any", {"severity": "critical"})
    prefix = _rule("prefix", {"type|startswith": "model."})
    rules = RuleSet([leaked, used, anything, prefix])

    assert [r.id for r in rules.candidates("secret.leaked")] == ["leaked", "any", "prefix"]
    assert [r.id for r in rules.candidates("key.used")] == ["leaked", "used", "any", "prefix"]
    # a type no rule names goes only to the rules without a plain type
    assert [r.id for r in rules.candidates("model.drift")] == ["any", "prefix"]


def test_candidates_without_untyped_rules() -> None:
    rules = RuleSet([_rule("one", {"type": "a.x"})])
    assert [r.id for r in rules.candidates("a.x")] == ["one"]
    assert rules.candidates("a.y") == []


def test_indexed_types() -> None:
    assert _rule("a", {"type": "a.x"}).indexed_types == ["a.x"]
    assert _rule("b", {"type": ["a.x", "a.y"]}).indexed_types == ["a.x", "a.y"]
    assert _rule("c", {"type|contains": "x"}).indexed_types is None


def test_matching_applies_every_condition() -> None:
    rule = _rule("r", {"type": "a.x", "resource.kind": "model", "attributes.score|gt": 0.5})
    other = _rule("o", {"attributes.score|gt": 0.9})
    rules = RuleSet([rule, other])
    doc = {"type": "a.x", "resource": {"kind": "model"}, "attributes": {"score": 0.7}}
    assert [r.id for r in rules.matching(doc)] == ["r"]
    assert rules.matching({**doc, "type": "a.y"}) == []
    assert rules.matching({**doc, "resource": {"kind": "image"}}) == []
    assert [r.id for r in rules.matching({**doc, "attributes": {"score": 0.95}})] == ["r", "o"]
    assert [r.id for r in rules.matching({**doc, "type": "b.b", "attributes": {"score": 1}})] == [
        "o"
    ]


def test_disabled_rules_are_left_out() -> None:
    rules = RuleSet([_rule("on", {"type": "a.x"}), _rule("off", {"type": "a.x"}, enabled=False)])
    assert len(rules) == 1
    assert [r.id for r in rules.candidates("a.x")] == ["on"]


def test_suppress_defaults_to_window() -> None:
    assert _rule("a", {"type": "a.x"}, window="7m").suppress_for == timedelta(minutes=7)
    rule = _rule("b", {"type": "a.x"}, window="7m", suppress="1m")
    assert rule.suppress_for == timedelta(minutes=1)
