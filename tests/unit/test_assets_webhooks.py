"""MLflow webhooks: signature, time and replay checks, and what a delivery turns into."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from responder.assets.model import EdgeKind
from responder.assets.webhooks import (
    DELIVERY_HEADER,
    EVENT_TYPES,
    MAX_BODY,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    ReplayGuard,
    WebhookRejected,
    convert,
    receive,
    signature,
    verify,
)
from responder.events.schema import parse_event

SECRET = SecretStr("whsec-test-0123456789")
NOW = 1_796_032_000.0
DELIVERY = "6f1c2a57-8d0e-4a4b-9b39-1f5e2f3c4d5e"


def delivery(
    entity: str = "model_version_alias",
    action: str = "created",
    data: dict[str, Any] | None = None,
    *,
    at: float = NOW,
    delivery_id: str = DELIVERY,
    secret: SecretStr = SECRET,
) -> tuple[bytes, dict[str, str]]:
    """A body and headers exactly as MLflow 3 sends them (see mlflow/webhooks/delivery.py)."""
    payload = {
        "entity": entity,
        "action": action,
        "timestamp": "2026-11-30T10:00:00+00:00",
        "data": data
        if data is not None
        else {"name": "fraud", "alias": "champion", "version": "3"},
    }
    body = json.dumps(payload).encode()
    stamp = str(int(at))
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": signature(secret, delivery_id, stamp, body),
    }
    return body, headers


def rejected(body: bytes, headers: dict[str, str], **kwargs: Any) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as caught:
        verify(body, headers, kwargs.pop("secret", SECRET), now=kwargs.pop("now", NOW), **kwargs)
    return caught.value


def test_a_genuine_delivery_is_accepted() -> None:
    """Signed with the shared secret, on time: the delivery's fields come back."""
    body, headers = delivery()
    got = verify(body, headers, SECRET, now=NOW + 3)
    assert (got.id, got.entity, got.action, got.timestamp) == (
        DELIVERY,
        "model_version_alias",
        "created",
        int(NOW),
    )
    assert got.data == {"name": "fraud", "alias": "champion", "version": "3"}


def test_header_names_are_case_insensitive() -> None:
    """HTTP servers hand headers over in any case."""
    body, headers = delivery()
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify(body, lower, SECRET, now=NOW).id == DELIVERY
    names = tuple(k for k in lower if k.startswith("x-"))
    assert names == (DELIVERY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)


def test_a_tampered_body_is_refused() -> None:
    """One changed byte (the alias moved to another version) breaks the signature."""
    body, headers = delivery()
    forged = body.replace(b'"version": "3"', b'"version": "1"')
    assert forged != body
    problem = rejected(forged, headers)
    assert (problem.reason, problem.status) == ("bad_signature", 401)


def test_a_wrong_secret_is_refused() -> None:
    """A delivery signed with another secret is not ours."""
    body, headers = delivery(secret=SecretStr("someone-else"))
    assert rejected(body, headers).reason == "bad_signature"


def test_a_rewritten_timestamp_header_breaks_the_signature() -> None:
    """The timestamp is signed: making an old delivery look fresh does not work."""
    body, headers = delivery(at=NOW - 3600)
    headers["X-MLflow-Timestamp"] = str(int(NOW))
    assert rejected(body, headers).reason == "bad_signature"


def test_old_and_future_timestamps_are_refused() -> None:
    """Outside the tolerance either way: a late delivery or a clock far ahead."""
    body, headers = delivery(at=NOW - 301)
    late = rejected(body, headers)
    assert (late.reason, late.status) == ("late", 400)
    assert "301s old" in str(late)
    body, headers = delivery(at=NOW + 301)
    assert rejected(body, headers).reason == "future"
    body, headers = delivery(at=NOW - 3000)
    assert verify(body, headers, SECRET, now=NOW, tolerance_s=3600).id == DELIVERY


def test_a_replayed_delivery_id_is_refused() -> None:
    """The same delivery twice within the window: the second is a replay (409)."""
    guard = ReplayGuard()
    body, headers = delivery()
    verify(body, headers, SECRET, now=NOW, guard=guard)
    again = rejected(body, headers, guard=guard)
    assert (again.reason, again.status) == ("replayed", 409)
    other, other_headers = delivery(delivery_id="another-delivery")
    assert verify(other, other_headers, SECRET, now=NOW, guard=guard).id == "another-delivery"


def test_the_replay_guard_is_bounded_and_forgets_expired_ids() -> None:
    """It never holds more than its limit, and drops ids whose timestamps are refused anyway."""
    guard = ReplayGuard(tolerance_s=10, max_ids=100)
    for i in range(1000):
        assert guard.check_and_remember(f"d{i}", now=NOW)
    assert len(guard) <= 100
    assert guard.check_and_remember("late", now=NOW + 21)
    assert len(guard) == 1


def test_unauthenticated_requests_do_not_fill_the_replay_guard() -> None:
    """A forged delivery is refused before its id is remembered."""
    guard = ReplayGuard()
    body, headers = delivery(secret=SecretStr("forger"))
    rejected(body, headers, guard=guard)
    assert len(guard) == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"X-MLflow-Signature": None}, "missing_header"),
        ({"X-MLflow-Delivery-Id": None}, "missing_header"),
        ({"X-MLflow-Timestamp": "12:00"}, "bad_header"),
        ({"X-MLflow-Delivery-Id": "id with spaces"}, "bad_header"),
        ({"X-MLflow-Signature": "v0,abc"}, "bad_signature"),
        ({"X-MLflow-Signature": "v1,not base64!"}, "bad_signature"),
        ({"X-MLflow-Signature": "v1," + "A" * 2000}, "bad_header"),
    ],
)
def test_missing_and_malformed_headers_are_refused(
    change: dict[str, str | None], reason: str
) -> None:
    """Each refusal names what is wrong; none of them reaches the body."""
    body, headers = delivery()
    for key, value in change.items():
        if value is None:
            del headers[key]
        else:
            headers[key] = value
    problem = rejected(body, headers)
    assert (problem.reason, problem.status) == (reason, 401)


def test_a_second_signature_for_a_rotated_secret_is_accepted() -> None:
    """`v1,<old> v1,<new>`: a sender moving to a new secret signs with both."""
    body, headers = delivery()
    old = signature(SecretStr("old"), DELIVERY, headers["X-MLflow-Timestamp"], body)
    headers["X-MLflow-Signature"] = f"{old} {headers['X-MLflow-Signature']}"
    assert verify(body, headers, SECRET, now=NOW).id == DELIVERY


def test_no_secret_configured_refuses_everything() -> None:
    """Without RESPONDER_ASSETS__WEBHOOK_SECRET nothing is accepted (503: not configured)."""
    body, headers = delivery()
    for secret in (None, SecretStr("")):
        problem = rejected(body, headers, secret=secret)
        assert (problem.reason, problem.status) == ("not_configured", 503)


def test_oversized_and_malformed_bodies_are_refused() -> None:
    """Too large (before any hashing), not JSON, or not a delivery's shape."""
    _, headers = delivery()
    assert rejected(b"x" * (MAX_BODY + 1), headers).reason == "too_large"
    for bad in (b"not json", b'{"entity": "model_version"}', b"\xff\xfe", b"[]", b"[" * 100_000):
        stamp = headers["X-MLflow-Timestamp"]
        signed = {**headers, "X-MLflow-Signature": signature(SECRET, DELIVERY, stamp, bad)}
        assert rejected(bad, signed).reason == "malformed"


def test_the_secret_never_shows_in_a_refusal() -> None:
    """Messages name the problem, never the secret."""
    body, headers = delivery(secret=SecretStr("forger"))
    problem = rejected(body, headers)
    assert SECRET.get_secret_value() not in str(problem) + repr(problem)


# -- conversion ---------------------------------------------------------------------------


def test_an_alias_move_becomes_an_event_and_replaces_the_alias_edge() -> None:
    """`fraud@champion -> 3`: a model.alias_changed event and a points_to that supersedes the
    alias's previous one."""
    body, headers = delivery()
    got = receive(body, headers, SECRET, now=NOW)
    assert got.event is not None
    event = parse_event(json.dumps(got.event))
    assert not hasattr(event, "reason"), event
    assert got.event["id"] == DELIVERY and got.event["source"] == "mlflow"
    assert got.event["type"] == "model.alias_changed"
    assert got.event["resource"] == {
        "kind": "model",
        "id": "fraud",
        "name": "fraud",
        "version": "3",
    }
    assert got.event["attributes"]["alias"] == "champion"
    assert got.event["attributes"]["alias_asset"] == "alias:fraud@champion"
    assert got.event["time"] == "2026-11-30T09:46:40Z"
    update = got.update
    assert update.replaces == (("alias:fraud@champion", EdgeKind.points_to),)
    assert [e.key for e in update.edges] == [
        ("alias:fraud@champion", EdgeKind.points_to, "model_version:fraud/3")
    ]
    assert all(e.source == "webhook" for e in update.edges)


def test_an_alias_deletion_removes_the_edge_and_adds_nothing() -> None:
    """model_version_alias.deleted: the alias points nowhere until the next sync says more."""
    body, headers = delivery(action="deleted", data={"name": "fraud", "alias": "champion"})
    got = receive(body, headers, SECRET, now=NOW)
    assert got.event is not None and got.event["type"] == "model.alias_deleted"
    assert "version" not in got.event["resource"]
    assert got.update.replaces == (("alias:fraud@champion", EdgeKind.points_to),)
    assert got.update.edges == () and got.update.nodes == ()


def test_a_new_version_becomes_a_node_an_edge_and_an_event() -> None:
    """model_version.created: the version, its model, its run, as graph and as evidence."""
    data = {
        "name": "fraud",
        "version": "4",
        "source": "models:/m-123",
        "run_id": "abcd1234",
        "tags": {"scan": "pending"},
        "description": None,
    }
    got = receive(*delivery("model_version", "created", data), SECRET, now=NOW)
    assert got.event is not None and got.event["type"] == "model.version_created"
    assert got.event["attributes"]["run_id"] == "abcd1234"
    [version] = got.update.nodes
    assert version.id == "model_version:fraud/4" and dict(version.tags) == {"scan": "pending"}
    assert version.attributes["run_id"] == "abcd1234"
    assert [e.key for e in got.update.edges] == [
        ("model_version:fraud/4", EdgeKind.version_of, "model:fraud")
    ]


def test_tags_set_and_deleted() -> None:
    """A tag set adds it to the version; a deletion is evidence, the graph catches up at sync."""
    data = {"name": "fraud", "version": "2", "key": "scan", "value": "failed"}
    got = receive(*delivery("model_version_tag", "set", data), SECRET, now=NOW)
    assert got.event is not None and got.event["type"] == "model.tag_set"
    assert got.event["attributes"]["tag"] == {"key": "scan", "value": "failed"}
    assert dict(got.update.nodes[0].tags) == {"scan": "failed"}
    gone = {"name": "fraud", "version": "2", "key": "scan"}
    deleted = receive(*delivery("model_version_tag", "deleted", gone), SECRET, now=NOW)
    assert deleted.event is not None and deleted.event["type"] == "model.tag_deleted"
    assert not deleted.update


def test_deliveries_about_prompts_and_budgets_are_accepted_but_not_assets() -> None:
    """Verified, but neither evidence nor graph: no event, an empty update."""
    data: dict[str, Any] = {
        "name": "p",
        "version": "1",
        "template": "Hi",
        "tags": {},
        "description": None,
    }
    got = receive(*delivery("prompt_version", "created", data), SECRET, now=NOW)
    assert got.event is None and not got.update


def test_payloads_that_do_not_match_their_event_are_malformed() -> None:
    """A signed delivery is still data: a bad version, a control character, a huge tag map."""
    bad_payloads: list[tuple[str, str, dict[str, Any]]] = [
        ("model_version_alias", "created", {"name": "fraud", "alias": "champion", "version": "x"}),
        ("model_version_alias", "created", {"name": "fraud", "alias": "a b", "version": "1"}),
        ("model_version", "created", {"name": "a\x1b[2J", "version": "1"}),
        ("registered_model", "created", {"name": "m", "tags": {f"k{i}": "v" for i in range(101)}}),
        ("model_version_tag", "set", {"name": "m", "version": "1"}),
    ]
    for entity, action, data in bad_payloads:
        problem = None
        try:
            receive(*delivery(entity, action, data), SECRET, now=NOW)
        except WebhookRejected as exc:
            problem = exc
        assert problem is not None and problem.reason == "malformed", (entity, data)


def test_every_supported_event_yields_a_valid_security_event() -> None:
    """Each mapped MLflow event, with MLflow's own example payload shape, passes the schema."""
    examples: dict[str, dict[str, Any]] = {
        "registered_model.created": {"name": "m", "tags": {"k": "v"}, "description": "d"},
        "model_version.created": {
            "name": "m",
            "version": "1",
            "source": "models:/123",
            "run_id": "abcd1234abcd5678",
            "tags": {"k": "v"},
            "description": "d",
        },
        "model_version_tag.set": {"name": "m", "version": "1", "key": "k", "value": "v"},
        "model_version_tag.deleted": {"name": "m", "version": "1", "key": "k"},
        "model_version_alias.created": {"name": "m", "alias": "a", "version": "1"},
        "model_version_alias.deleted": {"name": "m", "alias": "a"},
    }
    assert set(examples) == set(EVENT_TYPES)
    for name, data in examples.items():
        entity, action = name.split(".")
        got = convert(verify(*delivery(entity, action, data), SECRET, now=NOW))
        assert got.event is not None and got.event["type"] == EVENT_TYPES[name]
        assert not hasattr(parse_event(json.dumps(got.event)), "reason"), name
