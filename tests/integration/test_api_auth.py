"""Every /v1 operation in the published OpenAPI document refuses a missing or bad token (401)
and every role below the one it needs (403), before looking at the path, query or body. The one
exception, Slack's request URL, is exempt from bearer tokens exactly and only at its path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import Engine

from responder.api.routes.slack import SLACK_ACTIONS_PATH
from responder.service.identity import Role, permits
from tests.support.api import Api, api_settings, running_api

pytestmark = pytest.mark.integration

EXPECTED_ROLES = {
    ("get", "/v1/incidents"): Role.viewer,
    ("get", "/v1/incidents/{incident_id}"): Role.viewer,
    ("post", "/v1/incidents/{incident_id}/ack"): Role.analyst,
    ("post", "/v1/incidents/{incident_id}/assign"): Role.analyst,
    ("post", "/v1/incidents/{incident_id}/comment"): Role.analyst,
    ("post", "/v1/incidents/{incident_id}/severity"): Role.analyst,
    ("post", "/v1/incidents/{incident_id}/resolve"): Role.analyst,
    ("post", "/v1/incidents/{incident_id}/false-positive"): Role.analyst,
    ("get", "/v1/runs"): Role.viewer,
    ("get", "/v1/runs/{run_id}"): Role.viewer,
    ("post", "/v1/runs/{run_id}/approve"): Role.responder,
    ("post", "/v1/runs/{run_id}/deny"): Role.responder,
    ("post", "/v1/runs/{run_id}/cancel"): Role.responder,
    ("get", "/v1/kill-switch"): Role.viewer,
    ("put", "/v1/kill-switch"): Role.responder,
    ("get", "/v1/audit"): Role.viewer,
    ("get", "/v1/audit/verify"): Role.viewer,
    ("post", "/v1/events"): Role.ingest,
    ("get", "/v1/tokens"): Role.admin,
    ("post", "/v1/tokens"): Role.admin,
    ("delete", "/v1/tokens/{token}"): Role.admin,
    ("get", "/v1/metrics"): Role.metrics,
}

# Requests that would fail validation (or 404) if auth did not come first.
HOSTILE_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("no body", {}),
    ("broken JSON", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
    ("wrong types", {"json": {"assignee": 7, "on": "maybe", "text": None, "unknown": 1}}),
    ("huge body", {"content": b"x" * (5 * 1024 * 1024), "headers": {"Content-Type": "text/plain"}}),
]


@pytest.fixture
def api(db: Engine, db_url: str, kafka_bootstrap: str, unique: str) -> Iterator[Api]:
    with running_api(db, api_settings(db_url, kafka_bootstrap, unique)) as running:
        yield running


# Authenticated otherwise (Slack's signature): no bearer token, and nothing else is.
SIGNED_BY_SLACK = {("post", SLACK_ACTIONS_PATH)}
SIGNED_BY_MLFLOW = {("post", "/v1/webhooks/mlflow")}


def operations(api: Api) -> list[tuple[str, str]]:
    document = api.client.get("/openapi.json").json()
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if (method, path) in SIGNED_BY_SLACK:
                assert operation["security"] == []
                assert operation["x-authenticated-by"] == "slack-signature"
                continue
            if (method, path) in SIGNED_BY_MLFLOW:
                assert operation["security"] == []
                assert operation["x-authenticated-by"] == "mlflow-webhook-signature"
                continue
            if path.startswith("/v1"):
                assert operation["x-required-role"] == EXPECTED_ROLES[(method, path)].value
                assert {"401", "403"} <= set(operation["responses"])
                assert operation["security"] == [{"HTTPBearer": []}]
                found.append((method, path))
    return found


def concrete(path: str) -> str:
    """Path parameters filled with values that name nothing (and one that breaks validation)."""
    return (
        path.replace("{incident_id}", "x" * 300)
        .replace("{run_id}", "nope")
        .replace("{token}", "no%20body%00")
    )


def assert_problem(response: Any, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["type"]
    assert body["request_id"] == response.headers["x-request-id"]


def test_openapi_lists_every_operation_with_its_role(api: Api) -> None:
    """The document covers exactly the operations this test knows, each with its role."""
    assert sorted(operations(api)) == sorted(EXPECTED_ROLES)


@pytest.mark.parametrize(("what", "request_kw"), HOSTILE_BODIES, ids=[h[0] for h in HOSTILE_BODIES])
def test_without_a_valid_token_every_operation_answers_401(
    api: Api, what: str, request_kw: dict[str, Any]
) -> None:
    """No token, a malformed one, a wrong scheme or an unknown token: 401, whatever the request."""
    bad = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer rsp_" + "A" * 43},
        {"Authorization": "Bearer " + api.tokens[Role.admin] + "x"},
    ]
    for method, path in operations(api):
        for headers in bad:
            kw = {**request_kw, "headers": {**request_kw.get("headers", {}), **headers}}
            response = api.client.request(method, concrete(path), **kw)
            assert_problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert_problem(api.client.get("/v1/no-such-thing"), 401)


@pytest.mark.parametrize(("what", "request_kw"), HOSTILE_BODIES, ids=[h[0] for h in HOSTILE_BODIES])
def test_every_role_below_the_one_needed_gets_403(
    api: Api, what: str, request_kw: dict[str, Any]
) -> None:
    """Each role that does not suffice is refused before path, query or body are looked at."""
    for method, path in operations(api):
        need = EXPECTED_ROLES[(method, path)]
        for role in Role:
            if permits(role, need):
                continue
            kw = {**request_kw, "headers": {**request_kw.get("headers", {}), **api.auth(role)}}
            response = api.client.request(method, concrete(path) + "?limit=-5", **kw)
            assert_problem(response, 403)
            assert need.value in response.json()["detail"]


def test_every_v1_route_of_the_app_is_in_the_document_or_signed_by_slack(api: Api) -> None:
    """No route hides from the walk above: each /v1 route is documented, or is Slack's one."""
    documented = set(operations(api))
    routes = {
        (method.lower(), route.path)
        for route in iter_route_contexts(api.app.routes)
        for method in getattr(route.original_route, "methods", None) or ()
        if (route.path or "").startswith("/v1")
    }
    assert routes == documented | SIGNED_BY_SLACK | SIGNED_BY_MLFLOW


def test_only_the_exact_slack_path_skips_the_bearer_token(api: Api) -> None:
    """Near misses of the Slack path (suffixes, case, a trailing slash) still need a token."""
    for path in (
        SLACK_ACTIONS_PATH + "/",
        SLACK_ACTIONS_PATH + "x",
        "/v1/Slack/actions",
        SLACK_ACTIONS_PATH + "/../../incidents",
        "/v1/slack",
    ):
        for method in ("get", "post"):
            response = api.client.request(method, path)
            assert_problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")
    # Slack's path is not served without a signing secret, and never on a bearer token alone
    served = api.client.post(SLACK_ACTIONS_PATH, headers=api.auth(Role.admin))
    assert_problem(served, 404)


def test_a_revoked_token_is_refused_from_the_next_request(api: Api) -> None:
    """Revoking through the admin API takes effect at once; it is audited with the admin."""
    viewer = api.auth(Role.viewer)
    assert api.client.get("/v1/incidents", headers=viewer).status_code == 200
    gone = api.client.delete("/v1/tokens/viewer", headers=api.auth(Role.admin))
    assert gone.status_code == 200 and gone.json()["revoked_by"] == "analyst:token:admin"
    assert_problem(api.client.get("/v1/incidents", headers=viewer), 401)
    made = api.client.post(
        "/v1/tokens", json={"name": "new-viewer", "role": "viewer"}, headers=api.auth(Role.admin)
    )
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    listed = api.client.get("/v1/tokens", headers=api.auth(Role.admin)).text
    assert secret not in listed and "new-viewer" in listed
    fresh = {"Authorization": f"Bearer {secret}"}
    assert api.client.get("/v1/incidents", headers=fresh).status_code == 200
    audit = api.client.get(
        "/v1/audit", params={"subject": "token:new-viewer"}, headers=fresh
    ).json()
    assert [r["action"] for r in audit["items"]] == ["token.created"]
    assert audit["items"][0]["actor"] == "analyst:token:admin"
