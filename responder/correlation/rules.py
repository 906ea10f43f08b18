"""Correlation rules: the YAML model, its loader and the index by event type.

A rule file is validated completely at load; a bad file is rejected with file, line and field
(see `responder.yamlfiles`). The loaded `RuleSet` answers "which rules can this event match"
through an index on `type`, so matching costs scale with the rules that could apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from jinja2 import TemplateSyntaxError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from responder.correlation.match import Condition, all_hold
from responder.events.schema import SeverityName
from responder.incidents.reporting import AUTOMATIC_BY_KIND, CategoryName
from responder.text import sandbox
from responder.text.duration import parse_duration
from responder.yamlfiles import (
    Located,
    YamlFileError,
    load_directory,
    load_located,
    located_errors,
)

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

LINEAGE = "lineage"
"""The routed event's key for its lineage (`assets.lineage`): rules match and group on it."""

TEMPLATES = sandbox.environment()
"""Incident titles (`incident.title`) compile here: the sandbox playbook templates use too."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CountCondition(_Model):
    """Exactly one of gte / gt / eq."""

    gte: int | None = Field(default=None, ge=0)
    gt: int | None = Field(default=None, ge=0)
    eq: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_op(self) -> CountCondition:
        given = [op for op in ("gte", "gt", "eq") if getattr(self, op) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of gte, gt, eq")
        return self


class ValueCountCondition(CountCondition):
    field: str = Field(min_length=1)


class EventCount(_Model):
    type: Literal["event_count"]
    condition: CountCondition


class ValueCount(_Model):
    type: Literal["value_count"]
    condition: ValueCountCondition


class Temporal(_Model):
    type: Literal["temporal", "temporal_ordered"]
    events: list[str] = Field(min_length=1)


Correlation = Annotated[EventCount | ValueCount | Temporal, Field(discriminator="type")]


class IncidentSpec(_Model):
    kind: str = Field(min_length=1, pattern=r"^[a-z0-9_.-]+$")
    severity: SeverityName | None = None
    title: str | None = None
    reportable: CategoryName | None = None  # unset: by kind (`reporting.AUTOMATIC_BY_KIND`)

    @model_validator(mode="after")
    def _reportable_by_kind(self) -> IncidentSpec:
        if self.reportable is None and self.kind in AUTOMATIC_BY_KIND:
            object.__setattr__(self, "reportable", AUTOMATIC_BY_KIND[self.kind])
        return self

    @field_validator("title")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            _compiles(value)
        return value


def _compiles(template: str, why: str = "") -> None:
    """Raise ValueError (for the field's message, after `why`) if `template` is not a sandbox
    template."""
    try:
        TEMPLATES.from_string(template)
    except TemplateSyntaxError as exc:
        raise ValueError(f"{why}invalid template: {exc.message}") from None


class Rule(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)
    title: str = Field(min_length=1)
    description: str | None = None
    match: dict[str, Any] = Field(min_length=1)
    group_by: list[str] = Field(min_length=1)
    window: Duration
    correlation: Correlation | None = None
    incident: IncidentSpec
    suppress: Duration | None = None
    enabled: bool = True

    @field_validator("incident")
    @classmethod
    def _title_compiles(cls, value: IncidentSpec, info: ValidationInfo) -> IncidentSpec:
        """Without `incident.title` the rule's title is the incidents' title template: it must
        compile too, or every incident the rule opens would fail to render."""
        title = info.data.get("title")
        if value.title is None and isinstance(title, str):
            _compiles(title, "no incident.title, so the rule's title is used: ")
        return value

    @field_validator("match")
    @classmethod
    def _conditions_parse(cls, value: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for key, expected in value.items():
            try:
                Condition.parse(str(key), expected)
            except ValueError as exc:
                errors.append(f"{key}: {exc}")
        if errors:
            raise ValueError("; ".join(errors))
        return value

    @model_validator(mode="after")
    def _temporal_types_reachable(self) -> Rule:
        allowed = self.indexed_types
        if isinstance(self.correlation, Temporal) and allowed is not None:
            missing = [t for t in self.correlation.events if t not in allowed]
            if missing:
                raise PydanticCustomError(
                    "unreachable_events",
                    "correlation.events {missing} can never match: match.type allows {allowed}",
                    {
                        "missing": missing,
                        "allowed": allowed,
                        "index": self.correlation.events.index(missing[0]),
                    },
                )
        return self

    @cached_property
    def conditions(self) -> tuple[Condition, ...]:
        return tuple(Condition.parse(k, v) for k, v in self.match.items())

    @cached_property
    def group_parts(self) -> list[tuple[str, ...]]:
        return [tuple(p.split(".")) for p in self.group_by]

    @cached_property
    def reads_lineage(self) -> bool:
        """Matches or groups on the event's lineage: ingest must add it first."""
        return self.fans_out or any(c.path.split(".")[0] == LINEAGE for c in self.conditions)

    @cached_property
    def fans_out(self) -> bool:
        """Grouped on an event's lineage (lists of asset ids): one group per value."""
        return any(p[0] == LINEAGE for p in self.group_parts)

    @cached_property
    def residual(self) -> tuple[Condition, ...]:
        """Conditions left to check once the type index selected this rule."""
        if self.indexed_types is None:
            return self.conditions
        return tuple(c for c in self.conditions if not (c.path == "type" and c.modifier == "eq"))

    @cached_property
    def indexed_types(self) -> list[str] | None:
        """Event types this rule is limited to by a plain `type:` entry, else None."""
        value = self.match.get("type")
        if value is None:
            return None
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]

    @property
    def suppress_for(self) -> timedelta:
        return self.suppress if self.suppress is not None else self.window

    @cached_property
    def window_s(self) -> float:
        return self.window.total_seconds()

    @cached_property
    def suppress_s(self) -> float:
        return self.suppress_for.total_seconds()

    @cached_property
    def value_field(self) -> str | None:
        """The path whose distinct values a value_count rule counts (None for other types)."""
        corr = self.correlation
        return corr.condition.field if isinstance(corr, ValueCount) else None


class RoutePlan(NamedTuple):
    rule_id: str
    checks: tuple[Callable[[Mapping[str, Any]], bool], ...]  # what the type index left open
    group_parts: tuple[tuple[str, ...], ...]
    group_by: tuple[str, ...]
    fans_out: bool  # some group path is under `lineage`: one group per value (engine.route)


class RuleSet:
    """Loaded rules with an index on event type (rules without a plain type go everywhere)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: dict[str, Rule] = {}
        self._by_type: dict[str, list[Rule]] = {}
        self._any_type: list[Rule] = []
        self._plans: dict[str, tuple[RoutePlan, ...]] = {}
        self._lineage: dict[str, bool] = {}
        self.routed: dict[tuple[str, tuple[Any, ...]], Any] = {}  # the router's cache
        self.keyed: dict[str, Any] = {}  # group key → its Routed (`engine.routed_by_key`)
        for rule in rules:
            if not rule.enabled:
                continue
            if rule.id in self.rules:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            self.rules[rule.id] = rule
            types = rule.indexed_types
            if types is None:
                self._any_type.append(rule)
            else:
                for t in types:
                    self._by_type.setdefault(t, []).append(rule)

    def __len__(self) -> int:
        return len(self.rules)

    def candidates(self, event_type: str) -> list[Rule]:
        specific = self._by_type.get(event_type)
        if specific is None:
            return self._any_type
        return specific + self._any_type if self._any_type else specific

    def matching(self, doc: Mapping[str, Any]) -> list[Rule]:
        return [r for r in self.candidates(str(doc.get("type"))) if all_hold(r.residual, doc)]

    def needs_lineage(self, event_type: str) -> bool:
        """Whether a rule that could match this type reads `lineage` (cached per type), so
        ingest looks an event's lineage up only when some rule reads it."""
        known = self._lineage.get(event_type)
        if known is None:
            known = self._lineage[event_type] = any(
                r.reads_lineage for r in self.candidates(event_type)
            )
        return known

    def plan(self, event_type: str) -> tuple[RoutePlan, ...]:
        """What routing an event of this type checks, rule by rule (cached per type)."""
        plan = self._plans.get(event_type)
        if plan is None:
            plan = self._plans[event_type] = tuple(
                RoutePlan(
                    r.id,
                    tuple(c.check for c in r.residual),
                    tuple(r.group_parts),
                    tuple(r.group_by),
                    r.fans_out,
                )
                for r in self.candidates(event_type)
            )
        return plan


def load_rule_file(path: Path) -> Rule:
    doc = load_located(path)
    if not isinstance(doc.data, dict):
        raise YamlFileError([f"{path}:1: a rule file holds one mapping (id, title, match, ...)"])
    try:
        return Rule.model_validate(doc.data)
    except ValidationError as exc:
        raise YamlFileError(_rule_errors(doc, exc)) from None


_CORRELATION_TYPES = ("event_count", "value_count", "temporal", "temporal_ordered")


def _rule_errors(doc: Located, error: ValidationError) -> list[str]:
    """`located_errors`, each at the line of the key it is about.

    pydantic puts the correlation type (the union tag) into the error location, reports a bad
    `match` entry on `match` as a whole and a model check at the root; map them back to keys.
    """
    messages = []
    for err, message in zip(
        error.errors(include_url=False), located_errors(doc, error), strict=True
    ):
        loc = tuple(err["loc"])
        if loc[:1] == ("correlation",) and len(loc) > 1 and loc[1] in _CORRELATION_TYPES:
            messages.append(doc.error(("correlation", *loc[2:]), err["msg"]))
        elif loc == ("correlation",) and err["type"].startswith("union_tag"):
            messages.append(doc.error(("correlation", "type"), err["msg"]))
        elif loc == ("match",) and err["type"] == "value_error":
            for key, value in doc.data["match"].items():
                try:
                    Condition.parse(str(key), value)
                except ValueError as exc:
                    messages.append(doc.error(("match", key), str(exc)))
        elif err["type"] == "unreachable_events":
            messages.append(doc.error(("correlation", "events", err["ctx"]["index"]), err["msg"]))
        else:
            messages.append(message)
    return messages


def load_rules(directory: Path) -> RuleSet:
    """Load every rule in a directory; all problems are reported together."""
    loaded = load_directory(directory, "rule", load_rule_file, lambda rule: rule.id)
    return RuleSet(rule for rule, _ in loaded.values())
