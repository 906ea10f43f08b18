"""The worker's fast event parser against the SecurityEvent model: same verdicts, same dicts.

The fast path declares the event's constraints a second time (as TypedDicts) for speed; these
properties make any drift between the two declarations fail the build.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from responder.events.fast import _VALIDATE, parse_event_doc
from responder.events.schema import Rejection, event_to_dict, parse_event

# Valid documents with every optional shape; half of them then get one corruption.
good = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12).filter(
    lambda t: t.strip() != ""
)
padded = st.builds(lambda t: f"  {t} ", good)  # stripped by the model
names = st.one_of(good, padded)
optional_text = st.one_of(st.none(), names)
times = st.sampled_from(
    [
        "2026-11-25T09:00:00Z",
        "2026-11-25T09:00:00.250Z",
        "2026-11-25T09:00:00.000001+00:00",
        "2026-11-25T10:30:00+01:30",
        "2026-11-25T01:00:00-08:00",
    ]
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), good)  # NaN, inf too
CORRUPTIONS: list[tuple[str, Any]] = [
    ("id", ""),
    ("id", "   "),
    ("source", "x" * 513),
    ("type", "Bad.Type"),
    ("type", "nodot"),
    ("time", "2026-11-25T09:00:00"),  # naive
    ("time", "yesterday"),
    ("time", 1764061200),  # a number: refused, times are RFC 3339 strings
    ("time", "1764061200"),  # a numeric string too
    ("title", "two\nlines"),
    ("severity", "urgent"),
    ("title", ""),
    ("resource", {"kind": "model"}),
    ("resource", {"kind": "model", "id": "m", "extra": 1}),
    ("actor", {"id": 5}),
    ("labels", {"env": 1}),
    ("attributes", []),
    ("schema_version", "2"),
    ("unexpected", True),
]


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": draw(names),
        "source": draw(names),
        "type": draw(st.sampled_from(["key.used", "a.b.c", "model.unsafe_file"])),
        "time": draw(times),
        "severity": draw(st.sampled_from(["info", "low", "medium", "high", "critical"])),
        "title": draw(names),
        "resource": {
            "kind": draw(names),
            "id": draw(names),
            **draw(st.dictionaries(st.sampled_from(["name", "version", "uri"]), optional_text)),
        },
    }
    if draw(st.booleans()):
        doc["actor"] = draw(
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {}, optional={"id": optional_text, "ip": optional_text, "ua": scalars}
                ),
            )
        )
    if draw(st.booleans()):
        doc["attributes"] = draw(st.dictionaries(st.text(max_size=5), scalars, max_size=3))
    if draw(st.booleans()):
        doc["labels"] = draw(st.dictionaries(st.text(max_size=5), names, max_size=3))
    if draw(st.booleans()):
        doc["schema_version"] = "1"
    if draw(st.booleans()):
        key, value = draw(st.sampled_from(CORRUPTIONS))
        doc[key] = value
    if draw(st.integers(0, 19)) == 0:
        doc.pop(draw(st.sampled_from(sorted(doc))))
    return doc


LIMIT_REASONS = ("64-bit range", "finite number", "duplicate key", "out of range", "NUL")


@settings(max_examples=600, deadline=None)
@given(documents())
def test_fast_path_agrees_with_the_model(doc: dict[str, Any]) -> None:
    """Same verdict, reason, dict, epoch time and body (as JSON) from both paths."""
    raw = json.dumps(doc).encode()
    slow = parse_event(raw)
    fast = parse_event_doc(raw)
    if isinstance(slow, Rejection):
        assert fast == slow
        return
    assert not isinstance(fast, Rejection)
    expected = event_to_dict(slow)
    doc, time, body = fast
    assert (doc, time) == (expected, slow.time.timestamp())
    assert orjson.loads(body) == expected


@settings(max_examples=600, deadline=None)
@given(documents())
def test_fast_validator_accepts_exactly_what_the_model_accepts(doc: dict[str, Any]) -> None:
    """Not only the same results: the fallback to the model must stay the exception (only the
    limits the model checks per value, and the fast path screens for, may differ)."""
    raw = json.dumps(doc).encode()
    try:
        _VALIDATE(raw)
        fast_ok = True
    except ValidationError:
        fast_ok = False
    slow = parse_event(raw)
    if not isinstance(slow, Rejection):
        assert fast_ok
    elif fast_ok:
        assert any(limit in slow.reason for limit in LIMIT_REASONS), slow.reason


def test_oversized_and_malformed_input_get_the_models_reasons() -> None:
    """Too large and not JSON: the model's rejection, word for word."""
    big = b'{"id": "' + b"x" * (1024 * 1024) + b'"}'
    assert isinstance(parse_event_doc(big), Rejection)
    assert parse_event_doc(big) == parse_event(big)
    assert parse_event_doc(b"{not json") == parse_event(b"{not json")
