"""What every converter shares: the draft a converter yields, the caller's context, and
`finish`, which turns a draft into a valid SecurityEvent v1 dict (or a `Rejected`).

The rules every converter follows live here, once:

- **ids are stable**: `stable_id(source, *parts)` hashes the tool, the target and what the
  finding is (rule or vulnerability id, package, location), never scan times, so the next scan
  of the same target gives the same finding the same id and the pipeline's `(source, id)` dedup
  keeps one event per finding; records that carry their own unique id (a CloudTrail `eventID`,
  a Kubernetes `auditID`) keep it;
- **time comes from the report**; when the report has none, the caller's time (`--time`, the
  wrapper's `time`, the Kafka message timestamp) is used and the event says so in
  `attributes.time_source = "caller"`; without either the finding is rejected: the wall clock
  is never used silently;
- **attributes are bounded**: at most `MAX_KEYS` keys per object, `MAX_ITEMS` items per list,
  strings cut at `MAX_TEXT` characters, nesting cut at `MAX_DEPTH`;
- **secret values never leave**: a draft names the values it must not carry (`secrets`), and
  every string of the finished event is scrubbed of them (`secret.py`);
- the caller's labels win over labels a converter derives, and the caller's asset id is kept
  in `attributes.asset`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from responder.events.normalize.secret import scrub
from responder.events.schema import SecurityEvent, SeverityName, event_to_dict, rfc3339

MAX_KEYS = 64
MAX_ITEMS = 50
MAX_TEXT = 2048
MAX_DEPTH = 5
MAX_TITLE = 300


class Invalid(ValueError):
    """A record (or the whole report) does not have the shape its format documents."""


@dataclass(frozen=True)
class Context:
    """What the caller knows that the report may not say."""

    labels: Mapping[str, str] = field(default_factory=dict)
    asset: str | None = None  # the scanned asset as the caller names it (image, repo, model)
    time: datetime | None = None  # used only when the report carries no time


@dataclass
class Draft:
    """A finding as a converter read it, before the shared rules are applied."""

    key: tuple[str, ...]  # what identifies the finding (without the source): hashed into the id
    type: str
    severity: SeverityName
    title: str
    resource: dict[str, str]
    time: datetime | None
    attributes: dict[str, Any] = field(default_factory=dict)
    actor: dict[str, Any] | None = None
    source: str | None = None  # default: the format's name
    id: str | None = None  # a record's own unique id, when it has one
    labels: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # values that must not appear anywhere in the event


@dataclass(frozen=True)
class Rejected:
    """A part of a report (or all of it) that did not become an event, and why."""

    reason: str
    detail: tuple[str, ...] = ()
    where: str = ""  # e.g. "Results[0].Vulnerabilities[3]", "line 7"


@dataclass(frozen=True)
class Skipped:
    """A record that is not a finding by design (a read-only API call without an access key, a
    scanner's summary line): counted in the summary, neither an event nor a rejection."""

    reason: str


Item = Draft | Rejected | Skipped


def stable_id(source: str, *parts: str) -> str:
    """The same tool, target and finding give the same id, scan after scan."""
    digest = hashlib.sha256("\x1f".join((source, *parts)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


# --- reading untrusted JSON -----------------------------------------------------------------


def obj(value: Any, what: str = "record") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{what}: expected an object, got {type(value).__name__}")
    return value


def sub(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    """An optional nested object ({} when missing or null)."""
    value = record.get(key)
    if value is None:
        return {}
    return obj(value, key)


def array(record: Mapping[str, Any], key: str) -> list[Any]:
    """An optional list ([] when missing or null)."""
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f"{key}: expected a list, got {type(value).__name__}")
    return value


def text(record: Mapping[str, Any], key: str) -> str | None:
    """An optional scalar as text (None when missing, null or empty)."""
    value = record.get(key)
    if value is None or isinstance(value, dict | list):
        if value is not None:
            raise Invalid(f"{key}: expected text, got {type(value).__name__}")
        return None
    out = (
        value
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )
    out = out.strip()
    return out or None


def need(record: Mapping[str, Any], key: str) -> str:
    value = text(record, key)
    if value is None:
        raise Invalid(f"{key}: missing")
    return value


def number(record: Mapping[str, Any], key: str) -> float | None:
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def first(*values: str | None) -> str | None:
    return next((v for v in values if v), None)


def slug(name: str, default: str) -> str:
    """A tool's own name as an event source: lower case, dashes, [a-z0-9._-], at most 64."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.strip().lower()).strip("-.")[:64]
    return cleaned or default


def shorten(value: str, limit: int = MAX_TITLE) -> str:
    """One printable line (tool titles may hold newlines and escapes), at most `limit` long."""
    value = " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


# --- times ------------------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any, *, naive_is_utc: bool = False) -> datetime | None:
    """An RFC 3339 / ISO 8601 text (nanoseconds allowed), or None when absent or unreadable.

    A time without an offset is None unless the format documents it as UTC (`naive_is_utc`)."""
    if not isinstance(value, str) or not value.strip():
        return None
    cleaned = _FRACTION.sub(r"\1", value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC) if naive_is_utc else None
    return parsed


def epoch_time(value: Any, *, unit: float = 1.0) -> datetime | None:
    """Seconds (unit=1), milliseconds (unit=1e3) or nanoseconds (unit=1e9) since the epoch."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / unit
    if not -62_135_596_800 < seconds < 253_402_300_799:  # years 1..9999
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


# --- bounding -------------------------------------------------------------------------------


def bounded(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of `value` small enough for an event (see the module docstring)."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            return value[:MAX_TEXT] + f"…[+{len(value) - MAX_TEXT} chars]"
        return value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if depth >= MAX_DEPTH:
        return "…[nested too deep]"
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i == MAX_KEYS:
                out["…"] = f"{len(value) - MAX_KEYS} more keys"
                break
            out[bounded(str(k))] = bounded(v, depth + 1)
        return out
    if isinstance(value, list | tuple):
        items = [bounded(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"…[+{len(value) - MAX_ITEMS} items]")
        return items
    return bounded(str(value), depth)


def compact(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None, empty strings, lists and objects."""
    return {k: v for k, v in values.items() if v is not None and v != "" and v != [] and v != {}}


# --- finishing ------------------------------------------------------------------------------


def finish(draft: Draft, context: Context, source: str) -> dict[str, Any] | Rejected:
    """The draft as a valid SecurityEvent v1 dict (JSON-ready), or why it cannot be one."""
    source = draft.source or source
    attributes = dict(draft.attributes)
    when = draft.time
    if when is None:
        if context.time is None:
            return Rejected(
                "no time: the report gives none and the caller gave none",
                ("give the scan time with --time (or `time` in the report wrapper)",),
            )
        when = context.time
        attributes["time_source"] = "caller"
    if context.asset:
        attributes["asset"] = context.asset
    doc: dict[str, Any] = {
        "id": draft.id or stable_id(source, *draft.key),
        "source": source,
        "type": draft.type,
        "time": rfc3339(when) if isinstance(when, datetime) else when,
        "severity": draft.severity,
        "title": shorten(draft.title, 1000) or draft.type,
        "resource": {k: v for k, v in draft.resource.items() if v},
        "attributes": bounded(compact(attributes)),
        "labels": {**draft.labels, **context.labels},
    }
    if draft.actor:
        doc["actor"] = bounded(compact(draft.actor))
    if draft.secrets:
        doc = scrub(doc, draft.secrets)
    try:
        event = SecurityEvent.model_validate(doc)
    except ValidationError as exc:
        problems = tuple(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        return Rejected("not a valid SecurityEvent: " + "; ".join(problems[:3]), problems)
    if event.time.utcoffset():
        event = event.model_copy(update={"time": event.time.astimezone(UTC)})
    return event_to_dict(event)


def each(records: Iterable[tuple[str, Any]], read: Any) -> Iterator[Item]:
    """`read(record)` for each `(where, record)`, a record that does not fit becoming a
    `Rejected` that names where it was (the rest of the report is still converted)."""
    for where, record in records:
        try:
            yield from read(record)
        except Invalid as exc:
            yield Rejected(str(exc) or "record does not fit the format", where=where)
