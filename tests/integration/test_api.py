"""The REST API against SQLite / PostgreSQL and the real broker: analyst actions become
commands with the token's identity that a CommandStage applies, stale ETags are refused,
events are published or dead-lettered, and every error is a problem detail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from responder.audit.store import AuditRecord
from responder.incidents.store import apply_changes, get_incident
from responder.service.identity import Role
from responder.streams.playbooks import CommandStage, Wakeup
from tests.support.api import Api, api_settings, kafka_of, running_api
from tests.support.harness import consume_all, event_json
from tests.support.runner_kit import ASK, Kit, change
from tests.support.signing import GATE
from tests.support.stages import running, settle

pytestmark = pytest.mark.integration


@pytest.fixture
def api(db: Engine, db_url: str, kafka_bootstrap: str, unique: str) -> Iterator[Api]:
    with running_api(db, api_settings(db_url, kafka_bootstrap, unique, max_batch_events=5)) as a:
        yield a


def seed(engine: Engine, *changes: Any) -> None:
    with Session(engine) as session, session.begin():
        apply_changes(session, list(changes or [change()]))


async def apply_commands(api: Api, expect: int) -> CommandStage:
    """Run a CommandStage on the API's commands topic until `expect` commands were handled."""
    async with running(CommandStage(kafka_of(api.settings), api.engine, Wakeup(), GATE)) as stage:
        await settle(lambda: stage.stats.applied + stage.stats.refused >= expect)
    return stage


async def test_ack_through_the_api_is_applied_with_the_token_identity(api: Api) -> None:
    """ETag → ack with If-Match → command on the topic as token:analyst → applied and audited."""
    seed(api.engine)
    analyst = api.auth(Role.analyst)
    shown = api.client.get("/v1/incidents/inc-1", headers=analyst)
    assert shown.status_code == 200
    etag = shown.headers["etag"]
    assert etag == f'"{shown.json()["etag"]}"'
    sent = api.client.post(
        "/v1/incidents/inc-1/ack",
        json={"comment": "on it"},
        headers={**analyst, "If-Match": etag},
    )
    assert sent.status_code == 202, sent.text
    accepted = sent.json()
    assert accepted["command"] == "incident" and accepted["target"] == "inc-1"
    [message] = await consume_all(
        api.settings.kafka.bootstrap_servers, api.settings.kafka.topics.commands, 1, timeout=30
    )
    command = json.loads(message.value)
    assert command["id"] == accepted["command_id"] and command["by"] == "token:analyst"
    assert command["expected"] == shown.json()["etag"] and message.key == b"inc-1"

    stage = await apply_commands(api, 1)
    assert stage.stats.applied == 1
    with Session(api.engine) as session:
        row = get_incident(session, "inc-1")
        assert row is not None and row.status == "acknowledged"
        [update] = session.exec(
            select(AuditRecord).where(col(AuditRecord.action) == "incident.update")
        ).all()
        assert update.actor == "analyst:token:analyst"
    timeline = api.client.get("/v1/incidents/inc-1", headers=analyst).json()["timeline"]
    assert [r["action"] for r in timeline] == ["incident.opened", "incident.update"]


async def test_stale_etags_are_refused_by_the_api_and_by_the_worker(api: Api) -> None:
    """A changed incident: 412 at the API; a command that raced the change goes to the DLQ."""
    seed(api.engine)
    analyst = api.auth(Role.analyst)
    etag = api.client.get("/v1/incidents/inc-1", headers=analyst).headers["etag"]
    first = api.client.post(
        "/v1/incidents/inc-1/severity",
        json={"severity": "low"},
        headers={**analyst, "If-Match": etag},
    )
    second = api.client.post(
        "/v1/incidents/inc-1/assign",
        json={"assignee": "bob"},
        headers={**analyst, "If-Match": etag},  # read before the first one was applied
    )
    assert first.status_code == second.status_code == 202
    stage = await apply_commands(api, 2)
    assert (stage.stats.applied, stage.stats.refused) == (1, 1)
    [dead] = await consume_all(
        api.settings.kafka.bootstrap_servers, api.settings.kafka.topics.dlq, 1, timeout=30
    )
    headers = dict(dead.headers)
    assert headers["responder.reason"] == b"command does not apply"
    assert b"stale" in headers["responder.detail"]
    with Session(api.engine) as session:
        row = get_incident(session, "inc-1")
        assert row is not None and row.severity == "low" and row.assignee is None

    stale = api.client.post(
        "/v1/incidents/inc-1/comment", json={"text": "x"}, headers={**analyst, "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    current = api.client.get("/v1/incidents/inc-1", headers=analyst).headers["etag"]
    assert stale.headers["etag"] == current != etag
    for odd in ('W/"' + etag.strip('"') + '"', "garbage", '"' + "0" * 32 + '"'):
        refused = api.client.post("/v1/incidents/inc-1/ack", headers={**analyst, "If-Match": odd})
        assert refused.status_code == 412
    assert (
        api.client.post("/v1/incidents/inc-1/ack", headers={**analyst, "If-Match": "*"}).status_code
        == 202
    )
    assert (
        api.client.post(
            "/v1/incidents/inc-1/ack", headers={**analyst, "If-Match": current}
        ).status_code
        == 202
    )


async def test_posted_events_are_published_or_dead_lettered_with_reasons(api: Api) -> None:
    """A batch of valid and invalid events: accepted on the events topic, rejected on the DLQ."""
    good = json.loads(event_json("e1", resource="model-a"))
    batch = [good, {**good, "id": "e2", "time": "2026-11-25T09:00:00"}, {"id": 3}, "text"]
    ingest = api.auth(Role.ingest)
    answer = api.client.post("/v1/events", json=batch, headers=ingest)
    assert answer.status_code == 202, answer.text
    result = answer.json()
    assert (result["accepted"], result["rejected"]) == (1, 3)
    assert [i["status"] for i in result["items"]] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert {k: v for k, v in result["items"][0].items() if v is not None} == {
        "index": 0,
        "status": "accepted",
        "source": "detector",
        "id": "e1",
    }
    assert result["items"][1]["reason"].startswith("schema violation")
    single = api.client.post(
        "/v1/events",
        content=event_json("e9", resource="model-b"),
        headers={**ingest, "Content-Type": "application/json"},
    )
    assert single.json()["accepted"] == 1
    broken = api.client.post(
        "/v1/events", content=b'{"id": ', headers={**ingest, "Content-Type": "application/json"}
    )
    assert broken.status_code == 202 and broken.json()["items"][0]["reason"] == "invalid JSON"

    kafka = api.settings.kafka
    published = await consume_all(kafka.bootstrap_servers, kafka.topics.events, 2, timeout=30)
    assert sorted(json.loads(m.value)["id"] for m in published) == ["e1", "e9"]
    assert {m.key for m in published} == {b"model-a", b"model-b"}
    dead = await consume_all(kafka.bootstrap_servers, kafka.topics.dlq, 4, timeout=30)
    assert len(dead) == 4
    for message in dead:
        headers = dict(message.headers)
        assert set(headers) >= {
            "responder.reason",
            "responder.detail",
            "responder.source.topic",
            "responder.source.partition",
            "responder.source.offset",
            "responder.source.actor",
            "responder.source.request_id",
        }
        assert headers["responder.source.topic"] == b"api:/v1/events"
        assert headers["responder.source.actor"] == b"token:ingest"
    assert any(m.value == b'{"id": ' for m in dead)  # a single body is kept byte for byte

    too_many = api.client.post("/v1/events", json=[good] * 6, headers=ingest)
    assert too_many.status_code == 413
    assert (
        api.client.post(
            "/v1/events", content=b"", headers={**ingest, "Content-Type": "application/json"}
        ).status_code
        == 422
    )
    wrong_type = api.client.post(
        "/v1/events", content=b"{}", headers={**ingest, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    huge = api.client.post(
        "/v1/events",
        content=b"[" + b" " * (4 * 1024 * 1024) + b"]",
        headers={**ingest, "Content-Type": "application/json"},
    )
    assert huge.status_code == 413 and huge.headers["content-type"] == "application/problem+json"


def test_incidents_filter_sort_and_page_with_opaque_cursors(api: Api) -> None:
    """Filters combine; pages follow one another without gaps or repeats."""
    seed(
        api.engine,
        *[
            change(incident_id=f"inc-{n}", severity="critical" if n % 2 else "low")
            for n in range(7)
        ],
    )
    viewer = api.auth(Role.viewer)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "sort": "first_seen"}
        if cursor:
            params["cursor"] = cursor
        page = api.client.get("/v1/incidents", params=params, headers=viewer).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert sorted(seen) == [f"inc-{n}" for n in range(7)] and len(set(seen)) == 7
    critical = api.client.get(
        "/v1/incidents", params={"severity": "critical", "q": "LEAKED"}, headers=viewer
    ).json()
    assert sorted(i["id"] for i in critical["items"]) == ["inc-1", "inc-3", "inc-5"]
    none = api.client.get(
        "/v1/incidents", params={"until": "2000-01-01T00:00:00Z"}, headers=viewer
    ).json()
    assert none["items"] == []
    other_sort = api.client.get(
        "/v1/incidents", params={"cursor": cursor or "x", "sort": "-last_seen"}, headers=viewer
    )
    assert other_sort.status_code == 422
    assert other_sort.headers["content-type"] == "application/problem+json"
    naive = api.client.get("/v1/incidents", params={"since": "2026-01-01T00:00:00"}, headers=viewer)
    assert naive.status_code == 422 and naive.json()["errors"]


async def test_runs_through_the_api(api: Api, tmp_path: Path) -> None:
    """List and show a waiting run, deny it with a reason; cancel refused once it is finished."""
    kit = Kit(db=api.engine, directory=tmp_path / "playbooks")
    kit.playbook("ask", ASK)
    [rid] = kit.apply(change())
    await kit.drive()
    viewer, responder = api.auth(Role.viewer), api.auth(Role.responder)
    listed = api.client.get("/v1/runs", params={"status": "waiting"}, headers=viewer).json()
    assert [r["id"] for r in listed["items"]] == [rid]
    shown = api.client.get(f"/v1/runs/{rid[:8]}", headers=viewer).json()
    assert shown["steps"][0]["status"] == "waiting_approval"
    wrong_step = api.client.post(
        f"/v1/runs/{rid}/approve", json={"step": "nope"}, headers=responder
    )
    assert wrong_step.status_code == 409
    denied = api.client.post(f"/v1/runs/{rid}/deny", json={"reason": "not ours"}, headers=responder)
    assert denied.status_code == 202 and denied.json()["target"] == rid
    await apply_commands(api, 1)
    await kit.drive()
    after = api.client.get(f"/v1/runs/{rid}", headers=viewer).json()
    assert after["steps"][0]["decided_by"] == "token:responder"
    assert after["status"] == "completed"
    cancel = api.client.post(f"/v1/runs/{rid}/cancel", headers=responder)
    assert cancel.status_code == 409 and "cannot be cancelled" in cancel.json()["detail"]
    switched = api.client.put("/v1/kill-switch", json={"on": True}, headers=responder)
    assert switched.status_code == 202
    await apply_commands(api, 1)  # the same consumer group: only the new command is left
    state = api.client.get("/v1/kill-switch", headers=viewer).json()
    assert state["on"] is True and state["by"] == "token:responder"


def test_audit_query_and_verification(api: Api) -> None:
    """Records by subject and order; verify with and without an anchor."""
    seed(api.engine, change(1), change(2))
    viewer = api.auth(Role.viewer)
    page = api.client.get(
        "/v1/audit", params={"subject": "inc-1", "order": "-seq", "limit": 1}, headers=viewer
    ).json()
    assert [r["action"] for r in page["items"]] == ["incident.opened"] or page["next_cursor"]
    newest = page["items"][0]
    rest = api.client.get(
        "/v1/audit",
        params={"subject": "inc-1", "order": "-seq", "cursor": page["next_cursor"]},
        headers=viewer,
    ).json()
    assert [r["seq"] for r in rest["items"]] == [newest["seq"] - 1]
    anchor = f"{newest['seq']}:{newest['hash']}"
    verified = api.client.get("/v1/audit/verify", params={"anchor": anchor}, headers=viewer)
    assert verified.json()["ok"] is True and verified.json()["records"] >= 2
    bad = api.client.get("/v1/audit/verify", params={"anchor": "1:zz"}, headers=viewer)
    assert bad.status_code == 422
    missing = api.client.get(
        "/v1/audit/verify", params={"anchor": f"999:{'0' * 64}"}, headers=viewer
    ).json()
    assert missing["ok"] is False and "gone" in missing["reason"]


def test_errors_are_problem_details_with_the_request_id(api: Api) -> None:
    """404, 422 and health answers; request ids are echoed when plain, replaced otherwise."""
    viewer = api.auth(Role.viewer)
    missing = api.client.get("/v1/incidents/nope", headers={**viewer, "X-Request-ID": "abc-123"})
    assert missing.status_code == 404
    assert missing.headers["x-request-id"] == "abc-123"
    assert missing.json() == {
        "type": "https://responder.dev/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "no incident 'nope'",
        "instance": "/v1/incidents/nope",
        "request_id": "abc-123",
    }
    odd = api.client.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"})
    assert odd.status_code == 200 and odd.headers["x-request-id"] != "bad id\twith junk"
    assert len(odd.headers["x-request-id"]) == 32
    assert odd.headers["cache-control"] == "no-store"
    typo = api.client.get("/v1/incidents", params={"statuss": "open"}, headers=viewer)
    assert typo.status_code == 422 and "statuss" in typo.json()["detail"]
    invalid = api.client.get("/v1/incidents", params={"limit": 0}, headers=viewer)
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["loc"][-1] == "limit"
    body = api.client.post(
        "/v1/incidents/inc-1/assign", json={"assignee": ""}, headers=api.auth(Role.analyst)
    )
    assert body.status_code == 422
    big = api.client.post(
        "/v1/incidents/inc-1/comment",
        json={"text": "x" * 100_000},
        headers=api.auth(Role.analyst),
    )
    assert big.status_code == 413
    assert api.client.get("/readyz").json() == {"status": "ok"}
    assert api.client.get("/openapi.json").status_code == 200
