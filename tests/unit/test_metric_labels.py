"""Metric labels stay in bounded sets: rejection reasons are bucketed, other values capped."""

from __future__ import annotations

from responder.events.fast import parse_event_doc
from responder.events.schema import Rejection
from responder.metrics.labels import OTHER, REASONS, Bounded, Routes, reason


def test_rejections_of_real_inputs_fall_into_named_buckets() -> None:
    """The validator's reasons map to fixed names, whatever sizes or fields they mention."""
    seen = set()
    for raw in (b"{not json", b'{"id": 1}', b"x" * (1024 * 1024 + 1)):
        parsed = parse_event_doc(raw)
        assert isinstance(parsed, Rejection)
        seen.add(reason(parsed.reason))
    assert seen == {"invalid_json", "schema", "too_large"}
    assert reason("something new") == OTHER
    assert {name for _, name in REASONS} >= seen


def test_bounded_lets_the_first_values_through_then_says_other() -> None:
    """A flood of distinct values costs at most `limit` series, and long values are cut."""
    bounded = Bounded(limit=3)
    assert [bounded(v) for v in ("a", "b", "a", "c", "d", "b")] == ["a", "b", "a", "c", OTHER, "b"]
    assert len(Bounded()("x" * 500)) == 64


def test_paths_are_labelled_by_their_route_template_only() -> None:
    """A path becomes the template it matches (literal segments first), or nothing."""
    routes = Routes(["/v1/incidents/{incident_id}", "/v1/incidents/{incident_id}/ack", "/v1/x"])
    assert routes.template("/v1/incidents/4f2c") == "/v1/incidents/{incident_id}"
    assert routes.template("/v1/incidents/4f2c/ack") == "/v1/incidents/{incident_id}/ack"
    assert routes.template("/v1/incidents/a/b/c") is None
    assert routes.template("/v1/x") == "/v1/x"
    assert routes.template("/v1/x/../y") is None
