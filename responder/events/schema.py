"""SecurityEvent v1: the contract integrations post on `responder.events`.

Strict at the edge: frozen models, unknown fields rejected, timestamps must carry an offset, and
anything over `MAX_EVENT_BYTES` is refused before parsing. `parse_event` is the one function that
turns raw bytes into an event or a `Rejection` with a human-readable reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

MAX_EVENT_BYTES = 1024 * 1024
SCHEMA_VERSION = "1"

NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=512)]
EventType = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", max_length=128),
]


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

    kind: NonEmpty
    id: NonEmpty
    name: str | None = None
    version: str | None = None
    uri: str | None = None


class Actor(BaseModel):
    """Who did it, when known. Extra keys (user agent, account, ...) are kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str | None = None
    ip: str | None = None


class SecurityEvent(_Strict):
    """One finding or observation from a scanner, monitor or log source (schema version 1)."""

    id: NonEmpty = Field(description="Unique per source; (source, id) is the dedup key.")
    source: NonEmpty = Field(description="The producer, e.g. gitleaks, drift-monitor.")
    type: EventType = Field(description="Dotted category, e.g. secret.leaked, model.drift.")
    time: AwareDatetime = Field(
        description="Event time, RFC 3339 with offset (parse_event normalizes it to UTC)."
    )
    severity: SeverityName
    title: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    resource: Resource
    actor: Actor | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
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
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_EVENT_BYTES:
        return Rejection(reason=f"event too large: {size} bytes > {MAX_EVENT_BYTES}")
    try:
        event: SecurityEvent = _VALIDATE_JSON(raw)  # the core validator: once per event
    except ValidationError as exc:
        details = _describe(exc)
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return Rejection(reason="invalid JSON", detail=details)
        return Rejection(reason="schema violation: " + "; ".join(details[:5]), detail=details)
    if event.time.utcoffset():  # outside the validator: a Python validator costs 20% per event
        return event.model_copy(update={"time": event.time.astimezone(UTC)})
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
