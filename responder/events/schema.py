"""SecurityEvent v1: the contract integrations post on `responder.events`.

Strict at the edge: frozen models, unknown fields rejected, times must be RFC 3339 strings with
an offset, titles one line, anything over `MAX_EVENT_BYTES` is refused before parsing, and what
later stages could not carry (`responder.events.limits`: huge integers, non-finite numbers, NUL,
out-of-range times, duplicate keys) is refused too. `parse_event` is the one function that turns
raw bytes into an event or a `Rejection` with a human-readable reason; it never raises.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import IntEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import core_schema

from responder.events.limits import check_carriable, duplicate_key, in_range_utc

MAX_EVENT_BYTES = 1024 * 1024
SCHEMA_VERSION = "1"

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=512)]
EventType = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", max_length=128),
]

# RFC 3339 date-time (section 5.6): full date, `T`, full time with seconds, an offset. Checked as
# a string first, so epoch numbers and numeric strings (which pydantic would take) are refused.
RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
# One line: no C0/C1 control characters (newline, escape, ...), no Unicode line separators.
ONE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"


def _error(schema: core_schema.CoreSchema, kind: str, message: str) -> core_schema.CoreSchema:
    return core_schema.custom_error_schema(
        schema, custom_error_type=kind, custom_error_message=message
    )


EventTime = Annotated[
    AwareDatetime,
    GetPydanticSchema(
        lambda tp, handler: core_schema.chain_schema(
            [
                _error(
                    core_schema.str_schema(pattern=RFC3339),
                    "rfc3339",
                    "Input should be an RFC 3339 date-time string with a timezone offset, "
                    "e.g. 2026-11-25T09:00:00Z",
                ),
                handler(tp),
            ]
        ),
        lambda _, handler: {"type": "string", "format": "date-time", "pattern": RFC3339},
    ),
]
Title = Annotated[
    str,
    GetPydanticSchema(
        lambda _, handler: core_schema.chain_schema(
            [
                core_schema.str_schema(min_length=1, max_length=1024),
                _error(
                    core_schema.str_schema(pattern=ONE_LINE),
                    "one_line",
                    "Input should be one line without control characters",
                ),
            ]
        ),
        lambda _, handler: {
            "type": "string",
            "minLength": 1,
            "maxLength": 1024,
            "pattern": ONE_LINE,
        },
    ),
]
# Model-only checks (the fast path screens the raw bytes for the same things instead).
Carried = AfterValidator(check_carriable)
Text = Annotated[NonEmpty, Carried]
OptionalText = Annotated[str, Carried] | None


class Severity(IntEnum):
    """Ordered severities; serialized by name."""

    info = 0
    low = 1
    medium = 2
    high = 3
    critical = 4

    @classmethod
    def parse(cls, value: str) -> Severity:
        try:
            return cls[value]
        except KeyError:
            raise ValueError(f"unknown severity {value!r}: use one of {cls.names()}") from None

    @classmethod
    def names(cls) -> list[str]:
        return [s.name for s in cls]


SeverityName = Literal["info", "low", "medium", "high", "critical"]


_SEVERITY_NAMES: tuple[SeverityName, ...] = ("info", "low", "medium", "high", "critical")


def severity_name(rank: int) -> SeverityName:
    return _SEVERITY_NAMES[Severity(rank)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Resource(_Strict):
    """What the event is about: a model, dataset, api key, package, image, repo, endpoint, user."""

    kind: Text
    id: Text
    name: OptionalText = None
    version: OptionalText = None
    uri: OptionalText = None


class Actor(BaseModel):
    """Who did it, when known. Extra keys (user agent, account, ...) are kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: OptionalText = None
    ip: OptionalText = None

    @model_validator(mode="after")
    def _extras_carriable(self) -> Actor:
        check_carriable(self.__pydantic_extra__)
        return self


class SecurityEvent(_Strict):
    """One finding or observation from a scanner, monitor or log source (schema version 1)."""

    id: Text = Field(description="Unique per source; (source, id) is the dedup key.")
    source: Text = Field(description="The producer, e.g. gitleaks, drift-monitor.")
    type: EventType = Field(description="Dotted category, e.g. secret.leaked, model.drift.")
    time: Annotated[EventTime, AfterValidator(in_range_utc)] = Field(
        description="Event time, an RFC 3339 string with offset (normalized to UTC)."
    )
    severity: SeverityName
    title: Title = Field(description="One line, no control characters.")
    resource: Resource
    actor: Actor | None = None
    attributes: Annotated[dict[str, Any], Carried] = Field(default_factory=dict)
    labels: Annotated[dict[str, str], Carried] = Field(default_factory=dict)
    schema_version: Literal["1"] = "1"

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.id)

    @property
    def severity_rank(self) -> Severity:
        return Severity[self.severity]


class Rejection(BaseModel):
    """Why bytes did not become an event; travels to the DLQ with the original bytes."""

    model_config = ConfigDict(frozen=True)

    reason: str
    detail: list[str] = Field(default_factory=list)


_ADAPTER: TypeAdapter[SecurityEvent] = TypeAdapter(SecurityEvent)
_VALIDATE_JSON = _ADAPTER.validator.validate_json
_TO_PYTHON = _ADAPTER.serializer.to_python


def _describe(error: ValidationError) -> list[str]:
    out = []
    for err in error.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        out.append(f"{loc}: {err['msg']}")
    return out


def parse_event(raw: bytes | str) -> SecurityEvent | Rejection:
    """Validate one JSON document; never raises for bad input."""
    size = len(raw.encode(errors="replace") if isinstance(raw, str) else raw)
    if size > MAX_EVENT_BYTES:
        return Rejection(reason=f"event too large: {size} bytes > {MAX_EVENT_BYTES}")
    try:
        return _parse(raw)
    except Exception as exc:  # a contract: hostile input becomes a rejection, never a crash
        return Rejection(
            reason=f"unprocessable event: {type(exc).__name__}", detail=[str(exc)[:500]]
        )


def _parse(raw: bytes | str) -> SecurityEvent | Rejection:
    try:
        event: SecurityEvent = _VALIDATE_JSON(raw)  # the core validator: once per event
    except ValidationError as exc:
        details = _describe(exc)
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return Rejection(reason="invalid JSON", detail=details)
        return Rejection(reason="schema violation: " + "; ".join(details[:5]), detail=details)
    duplicate = duplicate_key(raw)
    if duplicate is not None:
        return Rejection(reason=f"invalid JSON: {duplicate}", detail=[duplicate])
    carried = len(orjson.dumps(event_to_dict(event)))
    if carried > MAX_EVENT_BYTES:
        return Rejection(
            reason=f"event too large once normalized: {carried} bytes > {MAX_EVENT_BYTES}"
        )
    return event


def rfc3339(value: datetime) -> str:
    """A datetime as the event JSON writes times (UTC as `Z`).

    A naive value is taken as UTC: SQLite hands back naive datetimes for timezone-aware columns.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")


def event_to_dict(event: SecurityEvent) -> dict[str, Any]:
    """JSON-ready dict (times as RFC 3339), the form events take inside incidents."""
    data: dict[str, Any] = _TO_PYTHON(event, mode="json", exclude_none=True)
    return data


def event_json_schema() -> dict[str, Any]:
    schema = _ADAPTER.json_schema()
    schema["$id"] = "https://responder.dev/schemas/security-event/v1.json"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def dumps_schema() -> str:
    return json.dumps(event_json_schema(), indent=2, sort_keys=True)
