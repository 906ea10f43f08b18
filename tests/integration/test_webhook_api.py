"""POST /v1/webhooks/mlflow on the real API app and broker: a signed delivery updates the asset
graph and becomes a SecurityEvent on the events topic; a tampered, replayed, stale or unsigned
one is refused with a problem document and produces nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session

from responder.assets.model import model_version_id
from responder.assets.store import load_graph
from responder.assets.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
)
from responder.settings import merged
from tests.support.api import Api, api_settings, running_api
from tests.support.harness import consume

pytestmark = pytest.mark.integration

SECRET = SecretStr("whsec-api-test")
PATH = "/v1/webhooks/mlflow"


@pytest.fixture
def api(db: Engine, db_url: str, kafka_bootstrap: str, unique: str) -> Iterator[Api]:
    settings = merged(
        api_settings(db_url, kafka_bootstrap, unique),
        {"assets": {"webhook_secret": SECRET.get_secret_value(), "webhook_tolerance_s": 300}},
    )
    with running_api(db, settings) as api:
        yield api


def delivery(
    delivery_id: str,
    data: dict[str, Any],
    *,
    entity: str = "model_version",
    at: float | None = None,
) -> tuple[bytes, dict[str, str]]:
    stamp = str(int(time.time() if at is None else at))
    body = json.dumps(
        {"entity": entity, "action": "created", "timestamp": "2026-11-30T12:00:00Z", "data": data}
    ).encode()
    headers = {
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: signature(SECRET, delivery_id, stamp, body),
        "content-type": "application/json",
    }
    return body, headers


VERSION = {"name": "fraud-detector", "version": "7", "source": "s3://models/7", "tags": {}}


def test_a_signed_delivery_becomes_an_event_and_updates_the_graph(api: Api) -> None:
    body, headers = delivery("d-1", VERSION)
    refused = []
    tampered = body.replace(b'"7"', b'"8"')
    refused.append(api.client.post(PATH, content=tampered, headers=headers))
    unsigned = {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
    refused.append(api.client.post(PATH, content=body, headers=unsigned))
    old_body, old_headers = delivery("d-old", VERSION, at=time.time() - 3600)
    refused.append(api.client.post(PATH, content=old_body, headers=old_headers))
    assert [r.status_code for r in refused] == [401, 401, 400]
    assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
    assert "3600" not in refused[0].text  # nothing about timing before the signature held

    ok = api.client.post(PATH, content=body, headers=headers)  # no bearer token: the HMAC is it
    assert ok.status_code == 202, ok.text
    assert ok.json() == {
        "delivery_id": "d-1",
        "event_type": "model.version_created",
        "graph_updated": True,
    }
    again = api.client.post(PATH, content=body, headers=headers)
    assert again.status_code == 409

    alias_body, alias_headers = delivery(
        "d-2",
        {"name": "fraud-detector", "alias": "champion", "version": "7"},
        entity="model_version_alias",
    )
    moved = api.client.post(PATH, content=alias_body, headers=alias_headers)
    assert moved.status_code == 202 and moved.json()["event_type"] == "model.alias_changed"

    topic = api.settings.kafka.topics.events
    messages = consume(api.settings.kafka.bootstrap_servers, topic, expect=2)
    events = {json.loads(m.value)["id"]: json.loads(m.value) for m in messages}
    assert set(events) == {"d-1", "d-2"}
    assert events["d-1"]["source"] == "mlflow"
    assert events["d-1"]["type"] == "model.version_created"
    assert events["d-2"]["attributes"]["release"]["check"] != "passed"  # no scan, no approval
    with Session(api.engine) as session:
        graph = load_graph(session)
    assert model_version_id("fraud-detector", 7) in graph


def test_without_a_secret_deliveries_are_refused(
    db: Engine, db_url: str, kafka_bootstrap: str, unique: str
) -> None:
    with running_api(db, api_settings(db_url, kafka_bootstrap, unique)) as api:
        body, headers = delivery("d-9", VERSION)
        refused = api.client.post(PATH, content=body, headers=headers)
        assert refused.status_code == 404 and "not served here" in refused.json()["detail"]
