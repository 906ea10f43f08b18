"""SLA clocks on SQLite and PostgreSQL: the store stamps when clocks stop, the API shows the
clocks and filters breached incidents (the SQL rule agrees with the pure one), and the API's
metrics count open breaches for a `metrics` token only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from responder.incidents.model import IncidentEdit
from responder.incidents.sla import targets
from responder.incidents.store import Incident, apply_changes, update_incident
from responder.service.identity import Role
from responder.service.sla import breach_counts
from responder.service.views import as_utc
from responder.settings import SlaSettings
from tests.support.api import Api, api_settings, running_api
from tests.support.runner_kit import change

pytestmark = pytest.mark.integration

TARGETS = targets(SlaSettings())  # critical: acknowledge 15 min, resolve 4 h


@pytest.fixture
def api(db: Engine, db_url: str, kafka_bootstrap: str, unique: str) -> Iterator[Api]:
    with running_api(db, api_settings(db_url, kafka_bootstrap, unique)) as running:
        yield running


def seed(engine: Engine, incident_id: str, age: timedelta, **stamps: timedelta) -> None:
    """A critical incident opened `age` ago, with clocks stopped `stamps` after opening."""
    with Session(engine) as session, session.begin():
        apply_changes(session, [change(incident_id=incident_id)])
        row = session.get(Incident, incident_id)
        assert row is not None
        row.created_at = datetime.now(UTC) - age  # now, not at import: the suite runs long
        for name, after in stamps.items():
            setattr(row, name, row.created_at + after)
        if "acknowledged_at" in stamps:
            row.status = "resolved" if "resolved_at" in stamps else "acknowledged"
        session.add(row)


def scenario(engine: Engine) -> None:
    seed(engine, "fresh", timedelta(minutes=5))
    seed(engine, "late-ack", timedelta(minutes=20))
    seed(engine, "acked-late", timedelta(hours=1), acknowledged_at=timedelta(minutes=30))
    seed(engine, "acked", timedelta(hours=1), acknowledged_at=timedelta(minutes=5))
    seed(
        engine,
        "closed-late",
        timedelta(days=1),
        acknowledged_at=timedelta(minutes=1),
        resolved_at=timedelta(hours=5),
    )


def test_the_store_stamps_acknowledgement_closing_and_reopening(db: Engine) -> None:
    """First ack is kept; closing stamps resolved_at; a reopening change clears it again."""
    with Session(db) as session, session.begin():
        apply_changes(session, [change()])
        row = update_incident(session, "inc-1", IncidentEdit(status="acknowledged"), actor="a")
        acked = row.acknowledged_at
        assert acked is not None and row.resolved_at is None
        update_incident(session, "inc-1", IncidentEdit(status="open"), actor="a")
        row = update_incident(session, "inc-1", IncidentEdit(status="resolved"), actor="a")
        assert row.acknowledged_at == acked and row.resolved_at is not None
        apply_changes(session, [change(2)])  # new evidence reopens it
        session.refresh(row)
        assert row.status == "open" and row.resolved_at is None
        assert row.acknowledged_at is not None and as_utc(row.acknowledged_at) == as_utc(acked)


def test_clocks_and_the_breached_filter_agree(api: Api) -> None:
    """Every listed incident carries its clocks; `sla=breached` lists exactly the breached."""
    scenario(api.engine)
    viewer = api.auth(Role.viewer)
    listed = api.client.get("/v1/incidents", headers=viewer).json()["items"]
    by_id = {i["id"]: i["sla"] for i in listed}
    assert by_id["fresh"]["acknowledge"]["state"] == "on_track"
    assert by_id["fresh"]["acknowledge"]["target_s"] == 15 * 60
    assert by_id["late-ack"]["acknowledge"]["state"] == "breached"
    assert by_id["late-ack"]["acknowledge"]["remaining_s"] < 0
    assert by_id["acked-late"]["acknowledge"]["state"] == "breached"
    assert by_id["acked"]["acknowledge"]["state"] == "met"
    assert by_id["acked"]["resolve"]["state"] == "on_track"
    assert by_id["closed-late"]["resolve"]["state"] == "breached"
    expected = {iid for iid, sla in by_id.items() if sla["breached"]}
    assert expected == {"late-ack", "acked-late", "closed-late"}
    breached = api.client.get("/v1/incidents", params={"sla": "breached"}, headers=viewer)
    assert breached.status_code == 200, breached.text
    assert {i["id"] for i in breached.json()["items"]} == expected
    detail = api.client.get("/v1/incidents/late-ack", headers=viewer).json()
    assert detail["sla"]["state"] == "breached" and detail["acknowledged_at"] is None
    assert api.client.get("/v1/incidents?sla=late", headers=viewer).status_code == 422


def test_open_breaches_are_counted_and_served_to_a_metrics_token(api: Api) -> None:
    """The gauge counts incidents not closed, by severity and clock; only `metrics` may read it."""
    scenario(api.engine)
    with Session(api.engine) as session:
        counts = breach_counts(session, TARGETS, datetime.now(UTC))
    assert counts[("critical", "acknowledge")] == 2
    assert counts[("critical", "resolve")] == 0  # the late one is closed
    assert counts[("low", "resolve")] == 0
    api.client.get("/v1/incidents", headers=api.auth(Role.viewer))
    api.client.get("/v1/incidents/late-ack", headers=api.auth(Role.viewer))
    assert api.client.get("/v1/metrics", headers=api.auth(Role.viewer)).status_code == 403
    scraped = api.client.get("/v1/metrics", headers=api.auth(Role.metrics))
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert 'responder_sla_breached_incidents{clock="acknowledge",severity="critical"} 2.0' in text
    assert (
        'responder_api_request_duration_seconds_count{method="GET",'
        'route="/v1/incidents/{incident_id}",status="200"} 1.0'
    ) in text
    assert "late-ack" not in text  # route templates, never paths
    assert 'route="unmatched"' not in text
