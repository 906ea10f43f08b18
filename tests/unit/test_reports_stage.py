"""What the reports stage makes of a message: headers, a JSON wrapper, a binary CloudEvent."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from responder.events.normalize import Context, Rejected
from responder.streams.reports import (
    BadRequest,
    Request,
    convert_request,
    report_headers,
    request_of,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reports"
SENT_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass
class Message:
    """The fields of an aiokafka ConsumerRecord the stage reads."""

    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int = int(SENT_AT.timestamp() * 1000)
    timestamp_type: int = 0
    topic: str = "responder.reports"
    partition: int = 0
    offset: int = 7
    key: bytes | None = None


def test_headers_carry_format_labels_asset_and_time() -> None:
    """`responder send --format` headers round-trip into the request."""
    context = Context(labels={"env": "prod"}, asset="img", time=datetime(2026, 1, 2, tzinfo=UTC))
    request = request_of(Message(b"{}", report_headers("trivy", context)))
    assert request == Request("trivy", context, b"{}")


def test_without_a_time_the_message_timestamp_is_the_callers_time() -> None:
    """The producer's CreateTime stands in for a report time; LogAppendTime does not."""
    request = request_of(Message(b"x", [("responder.format", b"auto")]))
    assert request.context.time == SENT_AT
    appended = request_of(Message(b"x", timestamp_type=1))
    assert appended.context.time is None


def test_json_wrapper_with_the_report_as_json_or_text() -> None:
    """A wrapper's report is re-serialised (JSON) or taken as text (JSONL, picklescan)."""
    report: dict[str, list[object]] = {"matches": []}
    wrapped = orjson.dumps(
        {"format": "grype", "labels": {"a": "b"}, "asset": "x", "report": report}
    )
    request = request_of(Message(wrapped))
    assert (request.format, request.body, request.context.asset) == (
        "grype",
        orjson.dumps(report),
        "x",
    )
    text = orjson.dumps({"report": "line one\n"})
    assert request_of(Message(text)).body == b"line one\n"


def test_a_report_that_only_looks_like_a_wrapper_is_a_report() -> None:
    """An object with other keys besides the wrapper's is converted as a report itself."""
    raw = orjson.dumps({"report": 1, "Results": []})
    request = request_of(Message(raw))
    assert (request.format, request.body) == ("auto", raw)


@pytest.mark.parametrize(
    "wrapper",
    [
        {"report": {}, "labels": {"env": 1}},
        {"report": {}, "time": "2026-11-25T09:00:00"},
        {"report": {}, "format": 3},
    ],
)
def test_a_malformed_wrapper_is_a_bad_request(wrapper: dict[str, object]) -> None:
    """Wrong label types, a naive time or a non-string format: refused with the reason."""
    with pytest.raises(BadRequest):
        request_of(Message(orjson.dumps(wrapper)))


def test_binary_cloudevent_is_recognised_by_its_headers() -> None:
    """ce_ headers make the message a binary-mode CloudEvent, converted as such."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"1"),
        ("ce_source", b"/ci"),
        ("ce_type", b"com.example.gitleaks"),
    ]
    value = (FIXTURES / "gitleaks" / "gitleaks.json").read_bytes()
    request = request_of(Message(value, headers))
    name, outputs = convert_request(request)
    assert name == "cloudevents"
    assert [o["source"] for o in outputs if isinstance(o, dict)] == ["gitleaks"] * 3


def test_convert_request_names_the_detected_format() -> None:
    """Auto-detection on the worker reports which format it used; unknown bytes reject."""
    raw = (FIXTURES / "cloudtrail" / "cloudtrail.json").read_bytes()
    name, outputs = convert_request(Request("auto", Context(), raw))
    assert name == "cloudtrail" and sum(isinstance(o, dict) for o in outputs) == 6
    name, outputs = convert_request(Request("auto", Context(), b"nothing"))
    assert [type(o) for o in outputs] == [Rejected]
