"""What a playbook run would do, computed without doing it (dry runs, `replay --dry-run`).

Pure. Outputs of earlier steps do not exist while planning, so `steps.<id>.output.<x>` renders
as a readable `<output of id.x>` placeholder; an `if` that reads outputs is reported as
`<depends on outputs>` (and the step kept), an `if` that is false on known data skips the step.
`step_context` is the one place the template context is built, for the runner as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from responder.incidents.model import IncidentChange
from responder.playbooks import templating
from responder.playbooks.schema import Mode, Playbook, Step
from responder.playbooks.templating import OutputPlaceholder, TemplateError
from responder.playbooks.trigger import change_kind, incident_view

if TYPE_CHECKING:
    from responder.playbooks.loader import PlaybookSet

DEPENDS_ON_OUTPUTS = "<depends on outputs>"
_NO_ITEM: Any = object()


def step_context(
    incident: Mapping[str, Any],
    events: list[dict[str, Any]],
    outputs: Mapping[str, Any],
    item: Any = _NO_ITEM,
    *,
    playbook: Playbook | None = None,
    mode: Mode | None = None,
    variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables a step's templates see.

    `outputs` maps the id of every step that finished to its output (None for a skipped step;
    the list of item outputs for a `for_each` step). `item` is passed only inside `for_each`,
    so a template that reads it elsewhere fails clearly. `mode` is the effective mode (dry_run
    under the kill switch); it defaults to the playbook's own.
    """
    context: dict[str, Any] = {
        "incident": incident,
        "events": events,
        "steps": {step_id: {"output": out} for step_id, out in outputs.items()},
        "vars": dict(variables or {}),  # deployment settings (playbooks.vars), e.g. ticket URLs
    }
    if item is not _NO_ITEM:
        context["item"] = item
    if playbook is not None:
        context["playbook"] = {
            "id": playbook.id,
            "title": playbook.title,
            "mode": mode or playbook.mode,
        }
    return context


@dataclass(frozen=True)
class PlannedStep:
    id: str
    action: str
    with_: Any = None
    skipped: str | None = None
    condition: str | None = None  # DEPENDS_ON_OUTPUTS when the `if` reads step outputs
    item: int | None = None  # index in `for_each`
    undo: dict[str, Any] | None = None
    error: str | None = None  # a template that cannot render even on known data

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "action": self.action}
        if self.item is not None:
            out["item"] = self.item
        out["with"] = _plain(self.with_)
        optional = {"if": self.condition, "skipped": self.skipped, "error": self.error}
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.undo is not None:
            out["undo"] = _plain(self.undo)
        return out


@dataclass(frozen=True)
class PlannedRun:
    playbook: str
    mode: Mode
    steps: list[PlannedStep] = field(default_factory=list)
    change: str | None = None  # the change kind that triggered it, when known

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.playbook, "mode": self.mode}
        if self.change is not None:
            out["change"] = self.change
        out["steps"] = [s.to_json() for s in self.steps]
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, OutputPlaceholder):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _reads_outputs(source: str) -> bool:
    refs = templating.references(source)
    return bool(refs.steps) or refs.dynamic_steps


def plan_run(
    playbook: Playbook,
    *,
    incident: Mapping[str, Any],
    events: list[dict[str, Any]],
    kill_switch: bool = False,
    variables: Mapping[str, Any] | None = None,
) -> PlannedRun:
    """Render every step against known data; nothing is executed."""
    mode: Mode = "dry_run" if kill_switch else playbook.mode
    outputs: dict[str, Any] = {}
    planned: list[PlannedStep] = []
    for step in playbook.steps:
        context = step_context(
            incident, events, outputs, playbook=playbook, mode=mode, variables=variables
        )
        planned.extend(_plan_step(step, context))
        outputs[step.id] = OutputPlaceholder(step.id)
    return PlannedRun(playbook=playbook.id, mode=mode, steps=planned)


def _plan_step(step: Step, context: dict[str, Any]) -> list[PlannedStep]:
    base = PlannedStep(id=step.id, action=step.action)
    where = f"step {step.id}"
    try:
        if step.if_ is not None:
            if _reads_outputs(step.if_):
                base = replace(base, condition=DEPENDS_ON_OUTPUTS)
            elif not templating.truthy(step.if_, context, f"{where}: if"):
                return [replace(base, skipped="if was false")]
        items = _items(step, context, where)
    except TemplateError as exc:
        return [replace(base, error=str(exc))]
    if items is None:
        return [_render_item(base, step, context, where)]
    if not items:
        return [replace(base, with_=_plain(step.with_), skipped="for_each is empty")]
    return [
        _render_item(replace(base, item=i), step, {**context, "item": item}, f"{where}[{i}]")
        for i, item in enumerate(items)
    ]


def _items(step: Step, context: Mapping[str, Any], where: str) -> list[Any] | None:
    if step.for_each is None:
        return None
    if _reads_outputs(step.for_each):
        return [OutputPlaceholder(f"each item of {step.for_each.strip('{} ')}")]
    items = templating.render_string(step.for_each, context, f"{where}: for_each")
    if not isinstance(items, list):
        raise TemplateError(f"{where}: for_each", f"must render to a list, not {items!r}")
    return items


def _render_item(base: PlannedStep, step: Step, context: dict[str, Any], where: str) -> PlannedStep:
    try:
        rendered = templating.render(step.with_, context, f"{where}: with")
        undo = None
        if step.undo is not None:
            own = OutputPlaceholder(step.id if base.item is None else f"{step.id}[{base.item}]")
            undo_context = {**context, "steps": {**context["steps"], step.id: {"output": own}}}
            undo_with = templating.render(step.undo.with_, undo_context, f"{where}: undo.with")
            undo = {"action": step.undo.action, "with": undo_with}
    except TemplateError as exc:
        return replace(base, with_=_plain(step.with_), error=str(exc))
    return replace(base, with_=rendered, undo=undo)


def plan_changes(
    changes: Iterable[IncidentChange],
    playbooks: PlaybookSet,
    *,
    kill_switch: bool = False,
    variables: Mapping[str, Any] | None = None,
) -> list[PlannedRun]:
    """The runs one incident's changes would start, in order (replay's dry run).

    Each change sees the events of the incident up to and including it; the change kind is
    `reopened` when the previous change left the incident closed.
    """
    runs: list[PlannedRun] = []
    events: list[dict[str, Any]] = []
    previous: str | None = None
    for change in changes:
        events.extend(change.events)
        kind = change_kind(change, previous)
        view = incident_view(change, previous_status=previous)
        for playbook in playbooks.matching(view, kind):
            run = plan_run(
                playbook,
                incident=view,
                events=list(events),
                kill_switch=kill_switch,
                variables=variables,
            )
            runs.append(replace(run, change=kind))
        previous = change.status
    return runs
