"""SecurityEvent v1 at the edge: what `parse_event` accepts, what it refuses and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from responder.cli import app
from responder.events.schema import (
    MAX_EVENT_BYTES,
    Rejection,
    SecurityEvent,
    event_to_dict,
    parse_event,
)


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "gl-7f3a",
        "source": "gitleaks",
        "type": "secret.leaked",
        "time": "2026-11-25T10:30:00+01:30",
        "severity": "high",
        "title": "AWS access key committed",
        "resource": {"kind": "api_key", "id": "AKIAEXAMPLE", "name": "ci"},
        "actor": {"id": "user-1", "ip": "203.0.113.7", "user_agent": "curl/8"},
        "attributes": {"file": "values.yaml", "line": 42},
        "labels": {"env": "prod"},
    }
    base.update(overrides)
    return base


def raw(**overrides: Any) -> bytes:
    return json.dumps(doc(**overrides)).encode()


def rejected(data: bytes | str) -> Rejection:
    result = parse_event(data)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


def test_valid_event_is_parsed_and_time_normalized_to_utc() -> None:
    event = parse_event(raw())
    assert isinstance(event, SecurityEvent)
    assert event.time == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert event.time.utcoffset() == timedelta(0)
    assert event.key == ("gitleaks", "gl-7f3a")
    assert event.resource.kind == "api_key"
    assert event.actor is not None
    assert event.actor.ip == "203.0.113.7"
    assert event.schema_version == "1"
    assert event_to_dict(event)["time"] == "2026-11-25T09:00:00Z"


def test_str_input_and_z_suffix_are_accepted() -> None:
    event = parse_event(json.dumps(doc(time="2026-11-25T09:00:00.250Z")))
    assert isinstance(event, SecurityEvent)
    assert event.time == datetime(2026, 11, 25, 9, 0, 0, 250000, tzinfo=UTC)


def test_minimal_event_gets_defaults() -> None:
    minimal = doc()
    for optional in ("actor", "attributes", "labels"):
        del minimal[optional]
    event = parse_event(json.dumps(minimal))
    assert isinstance(event, SecurityEvent)
    assert event.actor is None
    assert event.attributes == {}
    assert event.labels == {}


def test_naive_timestamp_is_rejected() -> None:
    rejection = rejected(raw(time="2026-11-25T09:00:00"))
    assert rejection.reason.startswith("schema violation")
    assert "time" in rejection.reason
    assert any(d.startswith("time:") and "timezone" in d for d in rejection.detail)


def test_unknown_top_level_field_is_rejected() -> None:
    rejection = rejected(raw(priority="P1"))
    assert "priority" in rejection.reason
    assert any(d.startswith("priority:") for d in rejection.detail)


def test_unknown_resource_field_is_rejected_but_actor_keeps_extras() -> None:
    bad = doc()
    bad["resource"] = {**bad["resource"], "owner": "x"}
    assert "resource.owner" in rejected(json.dumps(bad)).reason
    event = parse_event(raw())
    assert isinstance(event, SecurityEvent)
    assert event.actor is not None
    assert event.actor.model_extra == {"user_agent": "curl/8"}


def test_oversized_event_is_rejected_with_size_in_reason() -> None:
    padding = "x" * (MAX_EVENT_BYTES + 1)
    data = raw(attributes={"blob": padding})
    rejection = rejected(data)
    assert "too large" in rejection.reason
    assert str(len(data)) in rejection.reason
    assert str(MAX_EVENT_BYTES) in rejection.reason


def test_size_limit_counts_bytes_not_characters() -> None:
    # 3 bytes per character in UTF-8: under the limit in characters, over it in bytes
    text = json.dumps(
        doc(attributes={"blob": "€" * (MAX_EVENT_BYTES // 3 + 10)}), ensure_ascii=False
    )
    assert len(text) < MAX_EVENT_BYTES < len(text.encode())
    assert "too large" in rejected(text).reason


def test_event_at_the_size_limit_is_accepted() -> None:
    base = raw(attributes={"blob": ""})
    data = raw(attributes={"blob": "x" * (MAX_EVENT_BYTES - len(base))})
    assert len(data) == MAX_EVENT_BYTES
    assert isinstance(parse_event(data), SecurityEvent)


@pytest.mark.parametrize("data", [b"{not json", b"", b'{"id": "a",}', b"\xff\xfe"])
def test_invalid_json_is_rejected(data: bytes) -> None:
    assert rejected(data).reason == "invalid JSON"


@pytest.mark.parametrize("severity", ["urgent", "HIGH", "", 3])
def test_bad_severity_is_rejected(severity: object) -> None:
    rejection = rejected(raw(severity=severity))
    assert "severity" in rejection.reason
    assert any(d.startswith("severity:") for d in rejection.detail)


@pytest.mark.parametrize(
    "event_type", ["secret", "Secret.Leaked", "secret..leaked", "secret.leaked.", "secret leaked"]
)
def test_bad_type_pattern_is_rejected(event_type: str) -> None:
    rejection = rejected(raw(type=event_type))
    assert any(d.startswith("type:") for d in rejection.detail)


@pytest.mark.parametrize("missing", ["id", "source", "type", "time", "severity", "title"])
def test_required_fields(missing: str) -> None:
    incomplete = doc()
    del incomplete[missing]
    assert any(d.startswith(f"{missing}:") for d in rejected(json.dumps(incomplete)).detail)


def test_event_is_frozen() -> None:
    event = parse_event(raw())
    assert isinstance(event, SecurityEvent)
    with pytest.raises(ValidationError):
        event.severity = "low"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        event.resource.id = "other"  # type: ignore[misc]
    assert event.severity == "high"


def test_schema_event_command_prints_the_json_schema() -> None:
    result = CliRunner().invoke(app, ["schema", "event"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    for name in ("id", "source", "type", "time", "severity", "resource"):
        assert name in props
    assert set(schema["required"]) >= {"id", "source", "type", "time", "severity", "resource"}
    assert props["time"]["format"] == "date-time"
    assert set(props["severity"]["enum"]) == {"info", "low", "medium", "high", "critical"}
    resource = schema["$defs"]["Resource"]
    assert resource["additionalProperties"] is False
