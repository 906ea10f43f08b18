"""Prometheus metrics of a real worker and API after a scenario: events in and rejected by
reason, an incident opened, a playbook run approved and completed, action latency, commands,
consumer lag, API requests by route template, posted events, and SLA breaches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from responder.service.identity import Role
from tests.support.harness import produce, topic, wait_for
from tests.support.stack import Stack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def stack(kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(kafka_bootstrap, pg_schema_url, unique, tmp_path) as running:
        yield running


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name{labels}` of an exposition, None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def test_worker_and_api_metrics_move_with_a_scenario(stack: Stack, unique: str) -> None:
    """Counters of both processes move; labels are route templates and bounded values."""
    event = {
        "id": f"m-{unique}",
        "source": "modelscan",
        "type": "model.tampered",
        "time": "2026-11-30T09:00:00Z",
        "severity": "critical",
        "title": "Pickle with os.system",
        "resource": {"kind": "model", "id": f"models:/m-{unique}/1"},
    }
    stack.send(event, {"id": "no-source"})
    produce(stack.kafka, topic(unique, "events"), [b"{not json"], key_by_resource=False)

    api = httpx.Client(base_url=stack.url, timeout=30)

    def auth(role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {stack.tokens[role]}"}

    def waiting() -> str | None:
        page = api.get("/v1/runs", params={"status": "waiting"}, headers=auth(Role.viewer))
        items: list[dict[str, Any]] = page.json()["items"]
        return items[0]["id"] if items else None

    run_id = wait_for(waiting, 60)
    approved = api.post(f"/v1/runs/{run_id}/approve", headers=auth(Role.responder))
    assert approved.status_code == 202, approved.text
    bad = dict(event, id=f"api-{unique}", severity="dire")
    posted = api.post(
        "/v1/events",
        content=json.dumps([bad]),
        headers={**auth(Role.ingest), "Content-Type": "application/json"},
    )
    assert posted.status_code == 202 and posted.json()["rejected"] == 1

    def worker_text() -> str | None:
        text = httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=10).text
        done = value(
            text,
            "responder_playbook_runs_finished_total",
            playbook="quarantine-model",
            outcome="completed",
        )
        return text if done else None

    worker = wait_for(worker_text, 60)
    assert value(worker, "responder_events_received_total") == 3
    assert value(worker, "responder_events_rejected_total", reason="invalid_json") == 1
    assert value(worker, "responder_events_rejected_total", reason="schema") == 1
    assert (
        value(
            worker,
            "responder_incidents_opened_total",
            kind="model_tampering",
            severity="critical",
        )
        == 1
    )
    assert value(worker, "responder_commands_total", outcome="applied") == 1
    count = value(
        worker, "responder_action_duration_seconds_count", action="incident.update", outcome="ok"
    )
    assert count == 1
    for stage in ("ingest", "correlate", "sink", "commands"):
        assert value(worker, "responder_consumer_lag", stage=stage) is not None, stage

    assert api.get("/v1/metrics", headers=auth(Role.viewer)).status_code == 403
    scraped = api.get("/v1/metrics", headers=auth(Role.metrics))
    assert scraped.status_code == 200
    text = scraped.text
    approve = value(
        text,
        "responder_api_request_duration_seconds_count",
        method="POST",
        route="/v1/runs/{run_id}/approve",
        status="202",
    )
    assert approve == 1
    assert value(text, "responder_api_events_rejected_total", reason="schema") == 1
    assert value(text, "responder_api_events_accepted_total") == 0
    assert (
        value(text, "responder_sla_breached_incidents", severity="critical", clock="resolve") == 0
    )
    assert run_id not in text and unique not in text  # no ids or paths as label values
