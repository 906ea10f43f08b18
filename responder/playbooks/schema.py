"""The playbook model (`playbooks/*.yaml`) and the load-time checks that need the registry.

Two layers, both run by `responder.playbooks.loader`:

* pydantic models check the shape (`Playbook.model_validate(data)`);
* `check_playbook(playbook, registry)` checks what needs more than one field: unique step ids,
  actions that exist, parameters against each action's model, template syntax, and that
  templates only read `steps.<id>` of *earlier* steps (an `undo` may also read its own step).
  It returns `(location, message)` pairs so the loader can name file, line and field.

Run-time contract for the runner (documented here because the schema defines it):
`if` is rendered once per step, before `for_each`; a `for_each` step runs its action once per
item (`item` is set in `with` and `undo.with`) and its output is the list of item outputs; the
`undo` of such a step runs once per item with `steps.<own id>.output` set to that item's output.
A skipped step's output is None.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import timedelta
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal

from jinja2 import TemplateSyntaxError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from responder.actions.approval import (
    APPROVAL_ACTION,
    MAX_QUORUM,
    ApprovalRequest,
    Approvers,
    unreachable,
)
from responder.actions.registry import REGISTRY, ActionError, Registry
from responder.playbooks import templating
from responder.playbooks.trigger import TriggerChange, TriggerCondition, compile_condition
from responder.text.duration import parse_duration

Loc = tuple[str | int, ...]
Issue = tuple[Loc, str]
Mode = Literal["automatic", "approval", "dry_run"]
# `30s`, `1h` in YAML; seconds in JSON, so a stored playbook snapshot validates again
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: d.total_seconds(), return_type=float, when_used="json"),
]

PlaybookId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=128)]
StepId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
# `steps.items` would reach the dict method, not a step: such ids are refused
_RESERVED_STEP_IDS = frozenset(n for n in dir(dict) if not n.startswith("_"))


def on_key(key: Any) -> Any:
    """YAML 1.1 (PyYAML) reads a bare `on:` key as the boolean true; playbooks mean the word."""
    return "on" if key is True else key


def on_keys(value: Any) -> Any:
    """`value` with `on_key` applied to every mapping key, at any depth (the loader's view)."""
    if isinstance(value, dict):
        return {on_key(k): on_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [on_keys(v) for v in value]
    return value


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and True in data and "on" in cls.model_fields:
            data = {on_key(k): v for k, v in data.items()}
        return data


_OPENED: list[TriggerChange] = ["opened"]


class Trigger(_Model):
    """`on:`: every key must hold. `change` lists the change kinds (default: opened)."""

    change: list[TriggerChange] = Field(default_factory=lambda: _OPENED[:], min_length=1)
    conditions: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        """The YAML form is flat: `{kind: x, severity|gte: high, change: [...]}`."""
        if not isinstance(data, Mapping) or set(data) <= {"change", "conditions"}:
            return data
        rest = {k: v for k, v in data.items() if k != "change"}
        flat = {"conditions": rest}
        return {"change": data["change"], **flat} if "change" in data else flat

    @field_validator("change", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("conditions")
    @classmethod
    def _conditions_compile(cls, value: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for key, expected in value.items():
            try:
                compile_condition(str(key), expected)
            except ValueError as exc:
                errors.append(f"{key}: {exc}")
        if errors:
            raise ValueError("; ".join(errors))
        return value

    @model_serializer
    def _dump(self) -> dict[str, Any]:
        return {**self.conditions, "change": list(self.change)}

    @cached_property
    def compiled(self) -> tuple[TriggerCondition, ...]:
        return tuple(compile_condition(k, v) for k, v in self.conditions.items())

    def matches(self, incident: Mapping[str, Any], change: TriggerChange | str) -> bool:
        """Does a playbook with this `on:` respond to this change of this incident?

        `change` is the change kind as the caller decided it (see `trigger.change_kind`).
        """
        return change in self.change and all(c.holds(incident) for c in self.compiled)


class Retry(_Model):
    """Attempts per step; the delay doubles from `backoff` up to `max_backoff`."""

    attempts: int = Field(default=1, ge=1, le=100)
    backoff: Duration = timedelta(seconds=1)
    max_backoff: Duration | None = None
    on: Literal["retryable", "any"] | list[str] = "retryable"

    def delay(self, failures: int) -> timedelta:
        """How long to wait after the `failures`-th failed attempt (1-based)."""
        delay: timedelta = self.backoff * (2 ** max(failures - 1, 0))
        return min(delay, self.max_backoff) if self.max_backoff is not None else delay

    def retries(self, error: BaseException) -> bool:
        """Whether this error is worth another attempt (attempts left is the caller's check)."""
        if self.on == "any":
            return True
        if isinstance(error, TimeoutError):  # the step's own `timeout` ran out: worth a retry
            return self.on == "retryable" or "timeout" in self.on
        if not isinstance(error, ActionError):
            return False
        return error.retryable if self.on == "retryable" else error.code in self.on


class Undo(_Model):
    """The compensating action, run when an analyst marks the incident a false positive."""

    action: str = Field(min_length=1)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class Step(_Model):
    id: StepId
    action: str = Field(min_length=1)
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    if_: str | None = Field(default=None, alias="if")
    for_each: str | None = None
    retry: Retry = Field(default_factory=Retry)
    timeout: Duration | None = None
    on_error: Literal["fail", "continue"] = "fail"
    undo: Undo | None = None

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in _RESERVED_STEP_IDS:
            raise ValueError(f"{value!r} is reserved (steps.{value} is a dict method)")
        return value

    @field_validator("if_", "for_each")
    @classmethod
    def _is_template(cls, value: str | None) -> str | None:
        if value is not None and not templating.is_template(value):
            raise ValueError("must be a template, e.g. '{{ steps.approve.output.approved }}'")
        return value


class ActionLimit(_Model):
    per_hour: int = Field(ge=1)


EVIDENCE_FIRST_ACTIONS = ("mlflow.rollback_model", "mlflow.set_model_alias")
EVIDENCE_FIRST_PREFIXES = ("aws.iam.",)


def evidence_first(action: str) -> bool:
    """Whether a playbook using `action` requires an evidence snapshot unless it says otherwise:
    moving a model alias and changing IAM keys change what an investigator would look at."""
    return action in EVIDENCE_FIRST_ACTIONS or action.startswith(EVIDENCE_FIRST_PREFIXES)


class ApprovalPolicy(_Model):
    """Who may release what a guard (or `mode: approval`) holds back, and how many must."""

    approvers: Approvers = Field(default_factory=list)
    quorum: int = Field(default=1, ge=1, le=MAX_QUORUM)

    @model_validator(mode="after")
    def _reachable(self) -> ApprovalPolicy:
        problem = unreachable(self.approvers, self.quorum)
        if problem:
            raise ValueError(problem)
        return self


class Guards(_Model):
    """Limits enforced before a step acts: a run or step over its limit is blocked until a
    human approves it (`step_rules.decide`, `start_sql`); `approval` says who may, and how
    many distinct approvals it takes.

    `require_evidence`: no side-effecting step runs until an evidence snapshot of the incident
    exists (`evidence.snapshot`); unset, it holds for playbooks with an `evidence_first` step.
    `max_blast_radius`, `critical_requires_approval`, `blast_radius_action`: `blast_guard`.
    """

    max_runs_per_hour: int | None = Field(default=None, ge=1)
    actions: dict[str, ActionLimit] = Field(default_factory=dict)
    require_evidence: bool | None = None
    for_each_over: int | None = Field(
        default=None, ge=1, description="a for_each step over more items is blocked first"
    )
    max_blast_radius: int | None = Field(
        default=None, ge=0, description="a run whose incident's blast radius is larger waits"
    )
    critical_requires_approval: bool = Field(
        default=False, description="a run whose blast radius touches a tier: critical asset waits"
    )
    blast_radius_action: Literal["approval", "dry_run"] = Field(
        default="approval",
        description="what the blast-radius guards do: ask the approvers, or plan only",
    )
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)


class Playbook(_Model):
    id: PlaybookId
    title: str = Field(min_length=1)
    description: str | None = None
    on: Trigger
    mode: Mode = "automatic"
    guards: Guards = Field(default_factory=Guards)
    steps: list[Step] = Field(min_length=1)

    @property
    def requires_evidence(self) -> bool:
        """`guards.require_evidence`, or by default: a step uses an `evidence_first` action."""
        if self.guards.require_evidence is not None:
            return self.guards.require_evidence
        return any(evidence_first(step.action) for step in self.steps)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def side_effecting_steps(self, registry: Registry = REGISTRY) -> list[Step]:
        """Steps whose action changes something outside responder (what approval gates)."""
        return [s for s in self.steps if action_side_effect(registry, s.action)]

    @property
    def approval_steps(self) -> list[Step]:
        return [s for s in self.steps if s.action == APPROVAL_ACTION]


# --- checks that need the registry --------------------------------------------------------------


def action_params(registry: Registry, name: str) -> type[BaseModel] | None:
    """The parameter model of an action; `approval.request` is the runner's own step."""
    if name in registry:
        return registry.get(name).params
    return ApprovalRequest if name == APPROVAL_ACTION else None


def action_side_effect(registry: Registry, name: str) -> bool:
    if name in registry:
        return registry.get(name).side_effect
    return name != APPROVAL_ACTION


def check_playbook(playbook: Playbook, registry: Registry = REGISTRY) -> list[Issue]:
    """Everything wrong with a shape-valid playbook, as (location, message) pairs."""
    issues: list[Issue] = []
    first: dict[str, int] = {}
    for i, step in enumerate(playbook.steps):
        if step.id in first:
            issues.append((("steps", i, "id"), f"duplicate step id {step.id!r}"))
        first.setdefault(step.id, i)
    for i, step in enumerate(playbook.steps):
        earlier = [s.id for s in playbook.steps[:i]]
        issues.extend(_check_step(step, ("steps", i), earlier, registry))
    for name in playbook.guards.actions:
        if action_params(registry, name) is None:
            issues.append((("guards", "actions", name), _unknown_action(registry, name)))
    return issues


def _unknown_action(registry: Registry, name: str) -> str:
    return f"unknown action {name!r} (known: {', '.join([*registry.names(), APPROVAL_ACTION])})"


def _check_step(step: Step, at: Loc, earlier: list[str], registry: Registry) -> list[Issue]:
    looped = step.for_each is not None
    issues = [
        *_check_action(step.action, step.with_, at, registry),
        *_check_templates(step.with_, (*at, "with"), earlier, item=looped),
    ]
    for field, value in (("if", step.if_), ("for_each", step.for_each)):
        if value is not None:
            issues += _check_templates(value, (*at, field), earlier, item=False)
    if step.action == APPROVAL_ACTION:
        issues += _check_quorum(step.with_, (*at, "with"))
    if step.undo is not None:
        undo_at = (*at, "undo")
        issues += _check_action(step.undo.action, step.undo.with_, undo_at, registry)
        own = [*earlier, step.id]
        issues += _check_templates(step.undo.with_, (*undo_at, "with"), own, item=looped)
    return issues


def _check_quorum(values: dict[str, Any], at: Loc) -> list[Issue]:
    """A plain approver list too short for a plain quorum (templates are checked at run time)."""
    approvers, quorum = values.get("approvers", []), values.get("quorum", 1)
    if templating.has_template(approvers) or not isinstance(approvers, list):
        return []
    if not isinstance(quorum, int) or not all(isinstance(a, str) for a in approvers):
        return []
    problem = unreachable(approvers, quorum)
    return [((*at, "quorum"), problem)] if problem else []


def _check_action(name: str, values: dict[str, Any], at: Loc, registry: Registry) -> list[Issue]:
    params = action_params(registry, name)
    if params is None:
        return [((*at, "action"), _unknown_action(registry, name))]
    return param_issues(params, values, (*at, "with"), name)


def param_issues(
    params: type[BaseModel], values: dict[str, Any], at: Loc, name: str
) -> list[Issue]:
    """Unknown and missing parameters; plain values type-checked, templates left to run time."""
    fields = {(f.alias or n): n for n, f in params.model_fields.items()}
    issues: list[Issue] = []
    for key, value in values.items():
        if key not in fields:
            known = ", ".join(fields) or "none"
            issues.append(((*at, key), f"unknown parameter for {name} (known: {known})"))
        elif not templating.has_template(value):
            try:
                _field_adapter(params, fields[key]).validate_python(value)
            except ValidationError as exc:
                for err in exc.errors(include_url=False):
                    issues.append(((*at, key, *err["loc"]), err["msg"]))
    for key, attr in fields.items():
        if params.model_fields[attr].is_required() and key not in values:
            issues.append((at, f"missing required parameter {key!r} for {name}"))
    return issues


@lru_cache(maxsize=512)
def _field_adapter(params: type[BaseModel], attr: str) -> TypeAdapter[Any]:
    field = params.model_fields[attr]
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated.__class_getitem__((annotation, *field.metadata))  # type: ignore[attr-defined]
    return TypeAdapter(annotation)


def _strings(value: Any, at: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield at, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*at, i))


def _check_templates(value: Any, at: Loc, visible: list[str], item: bool) -> list[Issue]:
    """Syntax, free variables and `steps.<id>` references of every template in `value`."""
    issues: list[Issue] = []
    allowed = set(templating.CONTEXT_NAMES) | set(templating.ENV.globals)
    if not item:
        allowed.discard("item")
    for loc, source in _strings(value, at):
        if not templating.is_template(source):
            continue
        try:
            refs = templating.references(source)
        except TemplateSyntaxError as exc:
            issues.append((loc, f"invalid template: {exc.message} (line {exc.lineno})"))
            continue
        for name in sorted(refs.names - allowed):
            hint = "; item is only set in steps with for_each" if name == "item" else ""
            issues.append((loc, f"unknown variable {name!r}{hint}"))
        if refs.dynamic_steps:
            issues.append((loc, "refer to step outputs as steps.<id>.output"))
        for ref in sorted(refs.steps - set(visible)):
            issues.append((loc, f"references step {ref!r}, which is not an earlier step"))
    return issues
