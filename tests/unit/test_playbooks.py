"""Playbooks: schema errors with file, line and field; trigger matching; rendering; planning.

Actions come from a local `Registry` so these tests do not depend on the real integrations.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from responder.actions.registry import ActionContext, ActionError, Output, Registry
from responder.incidents.model import IncidentChange
from responder.playbooks import (
    Playbook,
    PlaybookSet,
    Retry,
    TemplateError,
    change_kind,
    incident_view,
    load_playbook_file,
    load_playbooks,
    plan_changes,
    plan_run,
    render,
    step_context,
    truthy,
)
from responder.yamlfiles import YamlFileError

registry = Registry()


class Notify(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    channel: str | None = None


class Disable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key_id: str
    count: int = Field(default=1, ge=0)
    tags: list[str] = Field(default_factory=list)


@registry.action("test.notify", params=Notify, side_effect=False)
async def _notify(params: Notify, ctx: ActionContext) -> Output:
    return {}


@registry.action("test.disable", params=Disable)
async def _disable(params: Disable, ctx: ActionContext) -> Output:
    return {"key_id": params.key_id}


@registry.action("test.enable", params=Disable)
async def _enable(params: Disable, ctx: ActionContext) -> Output:
    return {}


VALID = """\
id: contain
title: Contain a key
on:
  kind: credential_compromise
  severity|gte: high
mode: approval
steps:
  - id: approve
    action: approval.request
    with: {prompt: "Disable {{ incident.group['resource.id'] }}?", timeout: 1h}
  - id: disable
    action: test.disable
    if: "{{ steps.approve.output.approved }}"
    with: {key_id: "{{ incident.group['resource.id'] }}", count: 2}
    retry: {attempts: 3, backoff: 2s, max_backoff: 5s, on: [throttled]}
    timeout: 30s
    undo: {action: test.enable, with: {key_id: "{{ steps.disable.output.key_id }}"}}
  - id: tell
    action: test.notify
    for_each: "{{ events }}"
    with: {text: "evidence {{ item.id }} for {{ steps.disable.output.key_id }}"}
"""


def write(tmp_path: Path, text: str, name: str = "pb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(YamlFileError) as info:
        load_playbook_file(path, registry)
    return info.value.messages


def one_error(path: Path) -> str:
    messages = errors_of(path)
    assert len(messages) == 1, messages
    return messages[0]


def loaded(text: str = VALID) -> Playbook:
    return Playbook.model_validate(__import__("yaml").safe_load(textwrap.dedent(text)))


# --- loading ------------------------------------------------------------------------------------


def test_valid_playbook_loads(tmp_path: Path) -> None:
    playbook = load_playbook_file(write(tmp_path, VALID), registry)
    assert playbook.mode == "approval"
    assert playbook.on.change == ["opened"]
    assert [s.id for s in playbook.steps] == ["approve", "disable", "tell"]
    disable = playbook.step("disable")
    assert disable.timeout == timedelta(seconds=30)
    assert disable.retry.attempts == 3
    assert disable.undo is not None and disable.undo.action == "test.enable"
    assert [s.id for s in playbook.side_effecting_steps(registry)] == ["disable"]
    assert [s.id for s in playbook.approval_steps] == ["approve"]


def test_dump_round_trips() -> None:
    playbook = loaded()
    again = Playbook.model_validate(playbook.model_dump(by_alias=True, mode="json"))
    assert again == playbook
    assert playbook.model_dump(by_alias=True)["on"] == {
        "kind": "credential_compromise",
        "severity|gte": "high",
        "change": ["opened"],
    }


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("action: test.disable", "action: test.explode", "12: steps.1.action", "unknown action"),
        ("count: 2}", "count: two}", "14: steps.1.with.count", "valid integer"),
        ("count: 2}", "count: -1}", "14: steps.1.with.count", "greater than or equal to 0"),
        ("count: 2}", "count: 2, colour: red}", "14: steps.1.with.colour", "unknown parameter"),
        ("{key_id: \"{{ incident.group['resource.id'] }}\", ", "{", "14: steps.1.with", "key_id"),
        ("- id: tell", "- id: approve", "18: steps.2.id", "duplicate step id 'approve'"),
        ("steps.approve.output.approved", "steps.tell.output.ok", "13: steps.1.if", "'tell'"),
        ("steps.approve.output.approved", "steps.nope.output", "13: steps.1.if", "'nope'"),
        ("{{ item.id }}", "{{ item.id ", "21: steps.2.with.text", "invalid template"),
        ('if: "{{', 'if: "{%', "13: steps.1.if", "invalid template"),
        ("{{ events }}", "{{ evnts }}", "20: steps.2.for_each", "unknown variable 'evnts'"),
        ("timeout: 30s", "timeout: soon", "16: steps.1.timeout", "invalid duration"),
        ("test.enable", "test.gone", "17: steps.1.undo.action", "unknown action"),
        ('approved }}"', 'approved }}"\n    colour: red', "14: steps.1.colour", "Extra inputs"),
        ("severity|gte: high", "severity|gte: urgent", "5: on.severity|gte", "unknown severity"),
        ("severity|gte: high", "sevrity: high", "5: on.sevrity", "unknown incident field"),
        ("severity|gte: high", "change: [closed]", "5: on.change.0", "Input should be"),
        ("mode: approval", "mode: yolo", "6: mode", "Input should be"),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, where: str, message: str
) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    error = one_error(path)
    assert error.startswith(f"{path}:{where}: "), error
    assert message in error


def test_undo_may_read_its_own_step_but_not_later_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID.replace('steps.disable.output.key_id }}"}}', 'steps.tell.output }}"}}')
    )
    assert "17: steps.1.undo.with.key_id: references step 'tell'" in one_error(path)


def test_item_only_inside_for_each(tmp_path: Path) -> None:
    text = VALID.replace("count: 2}", 'count: 2, tags: ["{{ item }}"]}')
    error = one_error(write(tmp_path, text))
    assert ":14: steps.1.with.tags.0: unknown variable 'item'" in error
    assert "only set in steps with for_each" in error


def test_template_values_skip_type_checks_but_plain_ones_do_not(tmp_path: Path) -> None:
    text = VALID.replace("count: 2}", 'count: "{{ incident.event_count }}"}')
    assert load_playbook_file(write(tmp_path, text), registry).step("disable").with_["count"]


def test_if_must_be_a_template(tmp_path: Path) -> None:
    text = VALID.replace('"{{ steps.approve.output.approved }}"', "steps.approve.output.approved")
    assert ":13: steps.1.if: " in one_error(write(tmp_path, text))


def test_dynamic_steps_access_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("steps.approve.output.approved", "steps[incident.kind].output")
    assert "refer to step outputs as steps.<id>.output" in one_error(write(tmp_path, text))


def test_reserved_step_ids_and_guards(tmp_path: Path) -> None:
    text = VALID.replace("- id: tell", "- id: items").replace(
        "mode: approval", "mode: approval\nguards:\n  actions:\n    test.nothing: {per_hour: 1}"
    )
    messages = errors_of(write(tmp_path, text))
    assert any("steps.2.id" in m and "reserved" in m for m in messages), messages


def test_unknown_guard_action(tmp_path: Path) -> None:
    text = VALID.replace("mode: approval", "guards:\n  actions:\n    test.nothing: {per_hour: 1}")
    assert ":8: guards.actions.test.nothing: unknown action" in one_error(write(tmp_path, text))


def test_approvers_and_quorum_are_checked_when_the_playbook_loads(tmp_path: Path) -> None:
    """A plain quorum that the named approvers cannot reach is named with file, line and field."""
    old = "timeout: 1h}"
    text = VALID.replace(old, "timeout: 1h, approvers: [U1, U2], quorum: 3}")
    assert ":10: steps.0.with.quorum: quorum 3 cannot be reached" in one_error(
        write(tmp_path, text)
    )
    fine = VALID.replace(old, "timeout: 1h, approvers: [U1, 'group:secops'], quorum: 3}")
    assert load_playbook_file(write(tmp_path, fine), registry).step("approve")


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    text = VALID.replace("test.disable", "test.explode", 1).replace("{{ events }}", "{{ evnts }}")
    messages = errors_of(write(tmp_path, text))
    assert len(messages) == 2, messages


def test_load_directory_collects_errors_and_duplicates(tmp_path: Path) -> None:
    first = write(tmp_path, VALID, "a.yaml")
    second = write(tmp_path, VALID, "b.yml")
    broken = write(tmp_path, VALID.replace("test.notify", "test.gone"), "c.yaml")
    with pytest.raises(YamlFileError) as info:
        load_playbooks(tmp_path, registry)
    messages = info.value.messages
    assert any(m.startswith(f"{second}:1: id: duplicate playbook id 'contain'") for m in messages)
    assert any(str(first) in m for m in messages)
    assert any(m.startswith(f"{broken}:19: steps.2.action") for m in messages)
    with pytest.raises(YamlFileError, match="not found"):
        load_playbooks(tmp_path / "none", registry)


def test_load_directory_ok(tmp_path: Path) -> None:
    write(tmp_path, VALID, "a.yaml")
    write(tmp_path, VALID.replace("id: contain", "id: another"), "b.yaml")
    playbooks = load_playbooks(tmp_path, registry)
    assert [p.id for p in playbooks] == ["another", "contain"]
    assert playbooks.sources["contain"] == tmp_path / "a.yaml"


# --- retry --------------------------------------------------------------------------------------


def test_retry_delay_and_filter() -> None:
    retry = Retry(attempts=5, backoff="2s", max_backoff="5s", on=["throttled"])
    assert [retry.delay(n).total_seconds() for n in (1, 2, 3)] == [2, 4, 5]
    assert retry.retries(ActionError("x", code="throttled"))
    assert not retry.retries(ActionError("x", retryable=True))
    assert Retry().retries(ActionError("x", retryable=True))
    assert not Retry().retries(RuntimeError("x"))
    assert Retry(on="any").retries(RuntimeError("x"))


# --- trigger ------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def change(**fields: Any) -> IncidentChange:
    data: dict[str, Any] = {
        "change": "opened",
        "version": 1,
        "incident_id": "inc-1",
        "rule": "leaked-key-then-used",
        "kind": "credential_compromise",
        "title": "Leaked key AKIA1 used",
        "severity": "critical",
        "group": {"resource.id": "AKIA1"},
        "first_seen": T0,
        "last_seen": T0 + timedelta(minutes=5),
        "event_count": 2,
        "events": [{"id": "e1", "source": "s"}, {"id": "e2", "source": "s"}],
    }
    return IncidentChange.model_validate({**data, **fields})


def test_incident_view() -> None:
    view = incident_view(change(), previous_status="resolved")
    assert view == {
        "id": "inc-1",
        "rule": "leaked-key-then-used",
        "kind": "credential_compromise",
        "title": "Leaked key AKIA1 used",
        "severity": "critical",
        "status": "open",
        "group": {"resource.id": "AKIA1"},
        "first_seen": "2026-11-25T09:00:00Z",
        "last_seen": "2026-11-25T09:05:00Z",
        "event_count": 2,
        "version": 1,
        "previous_status": "resolved",
    }


def trigger(on: dict[str, Any]) -> Playbook:
    return Playbook.model_validate(
        {"id": "t", "title": "t", "on": on, "steps": [{"id": "s", "action": "test.notify"}]}
    )


@pytest.mark.parametrize(
    ("on", "severity", "expected"),
    [
        ({"severity|gte": "high"}, "high", True),
        ({"severity|gte": "high"}, "critical", True),
        ({"severity|gte": "high"}, "medium", False),
        ({"severity|gt": "high"}, "high", False),
        ({"severity|lt": "high"}, "low", True),
        ({"severity|lte": "low"}, "info", True),
        ({"severity": "high"}, "high", True),
        ({"severity": ["low", "critical"]}, "critical", True),
        ({"severity": ["low", "medium"]}, "critical", False),
    ],
)
def test_severity_compares_by_rank(on: dict[str, Any], severity: str, expected: bool) -> None:
    view = incident_view(change(severity=severity))
    assert trigger(on).on.matches(view, "opened") is expected


def test_trigger_fields_lists_paths_and_change_kinds() -> None:
    view = incident_view(change())
    on = {"kind": ["x", "credential_compromise"], "rule": "leaked-key-then-used"}
    assert trigger(on).on.matches(view, "opened")
    assert not trigger({**on, "kind": "other"}).on.matches(view, "opened")
    assert trigger({"group.resource.id|startswith": "AKIA"}).on.matches(view, "opened")
    assert not trigger({"group.resource.id|startswith": "ASIA"}).on.matches(view, "opened")
    assert trigger({"event_count|gte": 2}).on.matches(view, "opened")
    assert not trigger(on).on.matches(view, "updated")  # default: opened only
    both = trigger({**on, "change": ["escalated", "reopened"]}).on
    assert both.matches(view, "reopened")
    assert both.matches(view, "escalated")
    assert not both.matches(view, "opened")
    assert trigger({**on, "change": "updated"}).on.matches(view, "updated")


def test_change_kind_reopened() -> None:
    assert change_kind(change(change="updated"), "resolved") == "reopened"
    assert change_kind(change(change="opened"), "false_positive") == "reopened"
    assert change_kind(change(change="updated"), "open") == "updated"
    assert change_kind(change(change="resolved"), "resolved") == "resolved"
    assert change_kind(change(), None) == "opened"


def test_playbook_set_matching_in_id_order() -> None:
    a = trigger({"kind": "credential_compromise"}).model_copy(update={"id": "b-second"})
    b = trigger({"severity|gte": "high"}).model_copy(update={"id": "a-first"})
    c = trigger({"kind": "other"}).model_copy(update={"id": "c-never"})
    playbooks = PlaybookSet([a, c, b])
    view = incident_view(change())
    assert [p.id for p in playbooks.matching(view, "opened")] == ["a-first", "b-second"]
    assert playbooks.matching(view, "resolved") == []
    with pytest.raises(ValueError, match="duplicate"):
        PlaybookSet([a, a])


# --- rendering ----------------------------------------------------------------------------------

CONTEXT: Mapping[str, Any] = {
    "incident": incident_view(change()),
    "events": [{"id": "e1", "n": 1}, {"id": "e2", "n": 2}],
    "steps": {"approve": {"output": {"approved": False, "decided_by": "ana"}}},
}


def test_render_native_values_and_strings() -> None:
    value = {
        "ids": "{{ events | map(attribute='id') | list }}",
        "lazy": "{{ events | map(attribute='id') }}",
        "first": "{{ events[0] }}",
        "approved": "{{ steps.approve.output.approved }}",
        "count": " {{ incident.event_count }} ",
        "text": "by {{ steps.approve.output.decided_by }}",
        "nested": [{"key": "{{ incident.group['resource.id'] }}"}, 3, None],
        "plain": "no template",
    }
    assert render(value, CONTEXT) == {
        "ids": ["e1", "e2"],
        "lazy": ["e1", "e2"],
        "first": {"id": "e1", "n": 1},
        "approved": False,
        "count": 2,
        "text": "by ana",
        "nested": [{"key": "AKIA1"}, 3, None],
        "plain": "no template",
    }
    assert render("{{ a }} and {{ b }}", {"a": 1, "b": 2}) == "1 and 2"


def test_render_errors_name_the_location() -> None:
    with pytest.raises(TemplateError) as info:
        render({"a": ["{{ incident.nope }}"]}, CONTEXT, "step s: with")
    assert str(info.value).startswith("step s: with.a[0]: ")
    assert info.value.location == "step s: with.a[0]"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ steps.approve.output.approved }}", False),
        ("{{ not steps.approve.output.approved }}", True),
        ("{{ events }}", True),
        ("{{ [] }}", False),
        ("{{ incident.kind }} ", True),
        ("{% if false %}yes{% endif %}", False),
        ("{{ 'no' }} ", False),
        ("x{{ 0 }}", True),
    ],
)
def test_truthy(template: str, expected: bool) -> None:
    assert truthy(template, CONTEXT) is expected


def test_step_context() -> None:
    playbook = loaded()
    ctx = step_context(
        {"id": "i"},
        [],
        {"approve": {"approved": True}},
        playbook=playbook,
        variables={"ticket_url": "https://t.example"},
    )
    assert ctx == {
        "incident": {"id": "i"},
        "events": [],
        "steps": {"approve": {"output": {"approved": True}}},
        "vars": {"ticket_url": "https://t.example"},
        "playbook": {"id": "contain", "title": "Contain a key", "mode": "approval"},
    }
    assert step_context({}, [], {}, item=None)["item"] is None
    assert "item" not in step_context({}, [], {})


# --- planning -----------------------------------------------------------------------------------

EVENTS = [{"id": "e1"}, {"id": "e2"}]


def test_plan_placeholders_and_for_each() -> None:
    run = plan_run(loaded(), incident=incident_view(change()), events=EVENTS)
    assert run.mode == "approval"
    steps = [s.to_json() for s in run.steps]
    assert steps[0] == {
        "id": "approve",
        "action": "approval.request",
        "with": {"prompt": "Disable AKIA1?", "timeout": "1h"},
    }
    assert steps[1] == {
        "id": "disable",
        "action": "test.disable",
        "with": {"key_id": "AKIA1", "count": 2},
        "if": "<depends on outputs>",
        "undo": {"action": "test.enable", "with": {"key_id": "<output of disable.key_id>"}},
    }
    assert steps[2:] == [
        {
            "id": "tell",
            "action": "test.notify",
            "item": i,
            "with": {"text": f"evidence e{i + 1} for <output of disable.key_id>"},
        }
        for i in range(2)
    ]


def test_plan_kill_switch_if_false_and_empty_for_each() -> None:
    text = VALID.replace("steps.approve.output.approved", "incident.severity == 'low'")
    run = plan_run(loaded(text), incident=incident_view(change()), events=[], kill_switch=True)
    assert run.mode == "dry_run"
    by_id = {s.id: s.to_json() for s in run.steps}
    assert by_id["disable"]["skipped"] == "if was false"
    assert by_id["tell"]["skipped"] == "for_each is empty"


def test_plan_reports_render_errors_per_step() -> None:
    text = VALID.replace("{{ events }}", "{{ incident.title }}")
    run = plan_run(loaded(text), incident=incident_view(change()), events=EVENTS)
    tell = run.steps[-1].to_json()
    assert "for_each: must render to a list" in tell["error"]


def test_plan_changes_uses_change_kinds_and_accumulated_events() -> None:
    text = VALID.replace("severity|gte: high", "change: [opened, reopened]")
    playbooks = PlaybookSet([loaded(text)])
    changes = [
        change(),
        change(change="updated", version=2, events=[{"id": "e3", "source": "s"}]),
        change(change="resolved", version=3, status="resolved", events=[]),
        change(change="updated", version=4, events=[{"id": "e4", "source": "s"}]),
    ]
    runs = plan_changes(changes, playbooks)
    assert [r.change for r in runs] == ["opened", "reopened"]
    assert len([s for s in runs[1].steps if s.id == "tell"]) == 4
    assert runs[0].to_json()["id"] == "contain"
