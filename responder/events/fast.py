"""The worker's fast path for SecurityEvent: validate bytes straight into the event's dict form.

`parse_event` builds a frozen model and `event_to_dict` dumps it again: two passes, 6 µs per
event, a quarter of the ingest stage's CPU. Here the same constraints are declared as TypedDicts,
so pydantic-core validates into plain dicts in one pass (2.5 µs); the few normalizations the
model's dump applies (UTC time, defaults, no None fields) follow in Python.

`SecurityEvent` stays the contract (JSON Schema, replay, tests). A property test feeds both
paths the same random valid and broken documents and requires the same verdict and the same
dict, so the two declarations cannot drift apart silently. Whenever this path refuses a
document, the model path decides and writes the rejection, so the DLQ reasons are the model's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AwareDatetime, ConfigDict, StringConstraints, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from responder.events.schema import (
    MAX_EVENT_BYTES,
    EventType,
    NonEmpty,
    Rejection,
    SeverityName,
    event_to_dict,
    parse_event,
)

_STRICT = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Resource(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    kind: NonEmpty
    id: NonEmpty
    name: NotRequired[str | None]
    version: NotRequired[str | None]
    uri: NotRequired[str | None]


class _Actor(TypedDict):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    id: NotRequired[str | None]
    ip: NotRequired[str | None]


class _Event(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    id: NonEmpty
    source: NonEmpty
    type: EventType
    time: AwareDatetime
    severity: SeverityName
    title: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    resource: _Resource
    actor: NotRequired[_Actor | None]
    attributes: NotRequired[dict[str, Any]]
    labels: NotRequired[dict[str, str]]
    schema_version: NotRequired[Literal["1"]]


_VALIDATE = TypeAdapter(_Event).validator.validate_json
_TIME_JSON = TypeAdapter(AwareDatetime).serializer.to_python  # the model's own RFC 3339 form


class _Slow(Exception):
    pass


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def parse_event_doc(raw: bytes) -> tuple[dict[str, Any], float] | Rejection:
    """(the event as `event_to_dict(parse_event(raw))` gives it, its epoch time) or why not."""
    if len(raw) > MAX_EVENT_BYTES:
        rejected = parse_event(raw)
        assert isinstance(rejected, Rejection)
        return rejected
    try:
        if b"Infinity" in raw or b"NaN" in raw:
            # Non-standard JSON numbers: the model's dump turns them into null; let it.
            raise _Slow
        doc: dict[str, Any] = _VALIDATE(raw)
    except (ValidationError, _Slow):
        slow = parse_event(raw)  # the model decides, and words the reason
        if isinstance(slow, Rejection):
            return slow
        return event_to_dict(slow), slow.time.timestamp()
    moment: datetime = doc["time"]
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    doc["time"] = _TIME_JSON(moment, mode="json")
    resource = doc["resource"]
    if len(resource) > 2:
        doc["resource"] = _without_none(resource)
    actor = doc.get("actor")
    if actor is None:
        doc.pop("actor", None)
    else:
        doc["actor"] = _without_none(actor)
    doc.setdefault("attributes", {})
    doc.setdefault("labels", {})
    doc["schema_version"] = "1"
    return doc, moment.timestamp()
