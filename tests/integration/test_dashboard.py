"""The dashboard over HTTP (no browser): signing in with a token sets a session cookie, never
the token; pages escape hostile text; forms need the session's CSRF secret and the role; the
buttons follow the role; actions become commands with the token's identity."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from responder import bootstrap
from responder.assets.blast_store import save_radius
from responder.incidents.store import apply_changes
from responder.service import tokens
from responder.service.identity import Role
from responder.settings import merged
from tests.support.api import Api, api_settings, issue_tokens, running_api, serving
from tests.support.harness import consume_all
from tests.support.runner_kit import change

pytestmark = pytest.mark.integration

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.fixture
def api(db: Engine, db_url: str, kafka_bootstrap: str, unique: str) -> Iterator[Api]:
    with running_api(db, api_settings(db_url, kafka_bootstrap, unique)) as running:
        yield running


def seed(engine: Engine) -> None:
    hostile = change()
    hostile = hostile.model_copy(
        update={"title": HOSTILE, "group": {"resource.id": HOSTILE}, "severity": "critical"}
    )
    with Session(engine) as session, session.begin():
        apply_changes(session, [hostile])


def sign_in(api: Api, role: Role, client: TestClient | None = None) -> TestClient:
    """A browser-like client signed in with the role's token (the API's own client when it
    must publish: its event loop runs the Kafka producer)."""
    client = client or TestClient(api.app, base_url="http://testserver")
    client.cookies.clear()
    answer = client.post("/ui/login", data={"token": api.tokens[role]}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_signing_in_sets_a_strict_http_only_session_cookie_and_no_token(api: Api) -> None:
    """The cookie holds a fresh session id; the token is in no header, page or redirect."""
    client = TestClient(api.app)
    assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui/login"
    page = client.get("/ui/login")
    assert page.status_code == 200 and 'type="password"' in page.text
    headers = page.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    secret = api.tokens[Role.analyst]
    answer = client.post("/ui/login", data={"token": secret}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("responder_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert secret not in cookie and secret not in json.dumps(dict(answer.headers))
    queue = client.get("/ui/")
    assert queue.status_code == 200 and secret not in queue.text
    assert "analyst" in queue.text and 'data-live="/ui/live/queue?status=active"' in queue.text


def test_https_gets_a_secure_host_prefixed_cookie(api: Api) -> None:
    """Over https the cookie is Secure and named __Host-."""
    client = TestClient(api.app, base_url="https://testserver")
    answer = client.post(
        "/ui/login", data={"token": api.tokens[Role.viewer]}, follow_redirects=False
    )
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-responder_session=") and "Secure" in cookie


def test_tokens_that_cannot_read_incidents_cannot_sign_in(api: Api) -> None:
    """Unknown, ingest and metrics tokens get the login form again, with a 401."""
    client = TestClient(api.app)
    for token in ("rsp_" + "A" * 43, api.tokens[Role.ingest], api.tokens[Role.metrics], ""):
        answer = client.post("/ui/login", data={"token": token}, follow_redirects=False)
        assert answer.status_code == 401 and "set-cookie" not in answer.headers
        assert "cannot sign in" in answer.text


def test_hostile_titles_and_resource_ids_are_shown_as_text(api: Api) -> None:
    """Markup in a title or resource id is escaped on the queue and the incident page."""
    seed(api.engine)
    client = sign_in(api, Role.viewer)
    for path in ("/ui/", "/ui/incidents/inc-1", "/ui/incidents/inc-1/events/0"):
        html = client.get(path).text
        assert "<img src=x" not in html and "<script>alert" not in html, path
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in client.get("/ui/").text


def test_buttons_follow_the_role_and_the_server_refuses_anyway(api: Api) -> None:
    """A viewer sees no action buttons and is refused (403) when posting one regardless."""
    seed(api.engine)
    viewer = sign_in(api, Role.viewer)
    page = viewer.get("/ui/incidents/inc-1").text
    assert ">Acknowledge</button>" not in page and "Add comment" not in page
    refused = viewer.post("/ui/incidents/inc-1/ack", data={"csrf": csrf_of(page)})
    assert refused.status_code == 403 and "analyst role" in refused.text
    analyst = sign_in(api, Role.analyst)
    page = analyst.get("/ui/incidents/inc-1").text
    assert ">Acknowledge</button>" in page and "Add comment" in page


async def test_actions_need_the_csrf_secret_and_the_same_origin(api: Api) -> None:
    """Without the form's secret, or from another origin, nothing is sent; with it, a command
    carrying token:analyst is on the topic."""
    seed(api.engine)
    client = sign_in(api, Role.analyst, api.client)
    page = client.get("/ui/incidents/inc-1").text
    for data, headers in (
        ({"text": "no secret"}, {}),
        ({"csrf": "forged"}, {}),
        ({"csrf": csrf_of(page)}, {"Origin": "https://evil.example"}),
    ):
        refused = client.post("/ui/incidents/inc-1/ack", data=data, headers=headers)
        assert refused.status_code == 403
    sent = client.post(
        "/ui/incidents/inc-1/comment",
        data={"csrf": csrf_of(page), "text": HOSTILE},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert sent.headers["location"] == "/ui/incidents/inc-1?sent=comment"
    [message] = await consume_all(
        api.settings.kafka.bootstrap_servers, api.settings.kafka.topics.commands, 1, timeout=30
    )
    command: dict[str, Any] = json.loads(message.value)
    assert command["by"] == "token:analyst" and command["text"] == HOSTILE
    assert "A worker applies it" in client.get(sent.headers["location"]).text


def test_logging_out_or_revoking_the_token_ends_the_session(api: Api) -> None:
    """After logout the cookie no longer opens a page; revoking a token ends its sessions."""
    client = sign_in(api, Role.analyst)
    page = client.get("/ui/").text
    out = client.post("/ui/logout", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert client.get("/ui/", follow_redirects=False).status_code == 303
    other = sign_in(api, Role.responder)
    assert other.get("/ui/").status_code == 200
    with Session(api.engine) as session, session.begin():
        tokens.revoke(session, "responder", actor="admin")
    assert other.get("/ui/", follow_redirects=False).headers["location"] == "/ui/login"
    assert other.get("/ui/live/queue").status_code == 401


def test_live_stream_sends_fragments_and_is_bounded_per_process(
    db: Engine, db_url: str, kafka_bootstrap: str, unique: str
) -> None:
    """Over a real socket: the stream opens with the queue's rows; the next stream beyond
    RESPONDER_WEB__MAX_LIVE gets 503; without a session, 401."""
    seed(db)
    settings = merged(api_settings(db_url, kafka_bootstrap, unique), {"web": {"max_live": 1}})
    secret = issue_tokens(db, "-live")[Role.viewer]
    with serving(bootstrap.api_app(settings, engine=db)) as url:
        client = httpx.Client(base_url=url, timeout=30, follow_redirects=True)
        assert client.get("/ui/live/queue").status_code == 401
        signed = client.post("/ui/login", data={"token": secret})
        assert signed.status_code == 200 and "Incident queue" in signed.text
        with client.stream("GET", "/ui/live/queue?status=all") as live:
            assert live.headers["content-type"].startswith("text/event-stream")
            lines = live.iter_lines()
            assert next(lines) == "retry: 3000"
            assert next(lines) == ""
            assert next(lines) == "event: swap"
            data = json.loads(next(lines).removeprefix("data: "))
            assert data["target"] == "queue-rows" and "&lt;img src=x" in data["html"]
            busy = client.get("/ui/live/queue")
            assert busy.status_code == 503 and busy.headers["retry-after"] == "30"


def test_the_incident_page_shows_its_blast_radius_as_text(api: Api) -> None:
    """The Blast radius panel lists the stored radius; hostile asset ids stay text."""
    seed(api.engine)
    client = sign_in(api, Role.viewer)
    assert "No known asset" in client.get("/ui/incidents/inc-1").text
    radius = {
        "models": ["fraud-detector"],
        "endpoints": [{"id": f"endpoint:{HOSTILE}", "tier": "critical", "attributes": {}}],
        "owners": [{"id": "team:fraud-ml", "attributes": {"contact": "#fraud-ml"}}],
        "critical": [f"endpoint:{HOSTILE}"],
        "size": 3,
    }
    with Session(api.engine) as session, session.begin():
        save_radius(session, "inc-1", radius)
    html = client.get("/ui/incidents/inc-1").text
    panel = html[html.index('id="blast-radius"') :]
    assert "3 assets" in panel and "fraud-detector" in panel and "#fraud-ml" in panel
    assert "Touches critical assets" in panel
    assert "<img src=x" not in html and "<script>alert" not in html
    detail = api.client.get("/v1/incidents/inc-1", headers=api.auth(Role.viewer)).json()
    assert detail["blast_radius"] == radius
