"""Tool reports on the real broker: `responder.reports` → converters → events → a shipped rule →
the incident in PostgreSQL; what cannot be converted reaches the DLQ with its reason."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlmodel import Session, select

from responder.cli.send import send_report
from responder.correlation.replay import replay
from responder.correlation.rules import load_rules
from responder.events.normalize import Context, convert
from responder.incidents.store import Incident
from responder.storage.database import make_engine
from tests.support.harness import (
    Worker,
    consume,
    incidents,
    kafka_settings,
    running_worker,
    topic,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "reports"
RULES = ROOT / "rules"
SECRETS = (
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
)


@pytest.fixture
def worker(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path
) -> Iterator[Worker]:
    with running_worker(kafka_bootstrap, pg_schema_url, RULES, unique, tmp_path / "w.log") as w:
        yield w


def send(bootstrap: str, unique: str, fixture: str, fmt: str, context: Context) -> None:
    """What `responder send FILE --format ...` does: the report, its context in headers."""
    settings = kafka_settings(bootstrap, unique)
    asyncio.run(send_report(settings, FIXTURES / fixture, settings.topics.reports, fmt, context))


async def _produce(
    bootstrap: str, name: str, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(name, value=value, key=b"report", headers=headers)
    finally:
        await producer.stop()


def produce(bootstrap: str, name: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    asyncio.run(_produce(bootstrap, name, value, headers))


def converted(fixture: str, fmt: str = "auto", context: Context | None = None) -> list[bytes]:
    """The events the worker should make of a report, converted here."""
    with (FIXTURES / fixture).open("rb") as stream:
        outputs = list(convert(stream, fmt, context or Context()))
    return [orjson.dumps(o) for o in outputs if isinstance(o, dict)]


def expected(*events: list[bytes]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    lines = [line for batch in events for line in batch]
    result = replay(lines, load_rules(RULES))
    return {(i.rule, tuple((e["source"], e["id"]) for e in i.events)) for i in result.incidents}


def stored(url: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(r.rule, tuple((e["source"], e["id"]) for e in r.event_ids)) for r in incidents(url)}


def test_trivy_report_opens_the_vulnerable_serving_image_incident(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, worker: Worker
) -> None:
    """A Trivy report sent with labels becomes events; the critical CVEs open one incident."""
    context = Context(labels={"component": "model-serving", "env": "prod"})
    send(kafka_bootstrap, unique, "trivy/trivy.scan1.json", "trivy", context)
    want = expected(converted("trivy/trivy.scan1.json", "trivy", context))
    assert {rule for rule, _ in want} == {"vulnerable-serving-image"}
    [(_, refs)] = want
    assert len(refs) == 2  # CVSS 10.0 (xz) and 9.8 (torch)
    wait_for(lambda: stored(pg_schema_url) == want, 60)
    events = consume(kafka_bootstrap, topic(unique, "events"), expect=5)
    assert len(events) == 5 and {e.key for e in events} == {
        b"registry.example.com/ml/fraud-scorer-serving:3.2.0"
    }
    assert worker.log_events("report converted")[-1]["events"] == 5


def test_leaked_key_in_gitleaks_then_used_in_cloudtrail(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, worker: Worker
) -> None:
    """gitleaks (JSON wrapper) then CloudTrail (auto-detected): leaked-key-then-used opens."""
    report = orjson.loads((FIXTURES / "gitleaks/gitleaks.json").read_bytes())
    wrapper = orjson.dumps({"format": "gitleaks", "labels": {"env": "prod"}, "report": report})
    produce(kafka_bootstrap, topic(unique, "reports"), wrapper, [])
    send(kafka_bootstrap, unique, "cloudtrail/cloudtrail.json", "auto", Context())

    leaks = converted("gitleaks/gitleaks.json", "gitleaks", Context(labels={"env": "prod"}))
    want = expected(leaks, converted("cloudtrail/cloudtrail.json"))
    assert {rule for rule, _ in want} == {"leaked-key-then-used", "key-used-from-many-ips"}
    wait_for(lambda: stored(pg_schema_url) == want, 60)
    events = consume(kafka_bootstrap, topic(unique, "events"), expect=9)
    raw = b"\n".join(e.value for e in events)
    assert all(secret.encode() not in raw for secret in SECRETS)
    assert b"AKIAIOSFODNN7EXAMPLE" in raw  # the key id, which CloudTrail logs in clear


def test_sarif_and_a_binary_mode_cloudevent_with_a_modelscan_report(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, worker: Worker
) -> None:
    """SARIF from Bandit opens the deserialization incident; modelscan in a CloudEvent
    (binary mode: ce_ headers) opens model-integrity for the named model."""
    sarif = Context(asset="ml-platform/fraud-scorer")
    send(kafka_bootstrap, unique, "sarif/bandit.scan1.sarif", "sarif", sarif)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"scan-412"),
        ("ce_source", b"//ci.example.com/pipelines/fraud-scorer/412"),
        ("ce_type", b"com.example.ci.modelscan.completed"),
        ("ce_subject", b"fraud-scorer"),
        ("content-type", b"application/json"),
    ]
    modelscan = (FIXTURES / "modelscan/modelscan.json").read_bytes()
    produce(kafka_bootstrap, topic(unique, "reports"), modelscan, headers)

    code = converted("sarif/bandit.scan1.sarif", "sarif", sarif)
    with io.BytesIO(modelscan) as stream:
        model = [
            o
            for o in convert(stream, "modelscan", Context(asset="fraud-scorer"))
            if isinstance(o, dict)
        ]
    assert [m["resource"]["name"] for m in model] == ["fraud-scorer"]
    want_rules = {"unsafe-deserialization-in-code", "model-integrity"}
    assert {rule for rule, _ in expected(code)} == {"unsafe-deserialization-in-code"}

    def rules_stored() -> set[str]:
        return {rule for rule, _ in stored(pg_schema_url)}

    wait_for(lambda: rules_stored() == want_rules, 60)
    assert stored(pg_schema_url) >= expected(code)
    engine = make_engine(pg_schema_url)
    with Session(engine) as s:
        integrity = s.exec(select(Incident).where(Incident.rule == "model-integrity")).one()
    assert integrity.group == {"resource.name": "fraud-scorer"}
    assert integrity.severity == "critical"


def dlq_headers(message: Any) -> dict[str, bytes]:
    return dict(message.headers)


def test_unconvertible_reports_reach_the_dlq_with_their_reason(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, worker: Worker
) -> None:
    """Unknown bytes go to the DLQ unchanged; a broken secret-scanner report as a note that
    names it by sha256 (the secret never reaches the DLQ); a bad wrapper with its reason."""
    reports = topic(unique, "reports")
    garbage = b"this is not a report\n"
    produce(kafka_bootstrap, reports, garbage, [])
    full = (FIXTURES / "gitleaks/gitleaks.json").read_bytes()
    broken = full[: full.index(b"slack-bot-token") + 40]  # cut inside the third finding
    produce(kafka_bootstrap, reports, broken, [("responder.format", b"gitleaks")])
    bad_wrapper = orjson.dumps({"format": "trivy", "labels": {"env": 1}, "report": {}})
    produce(kafka_bootstrap, reports, bad_wrapper, [])

    dead = consume(kafka_bootstrap, topic(unique, "dlq"), expect=3)
    assert len(dead) == 3
    by_reason = {dlq_headers(m)["responder.reason"]: m for m in dead}
    unknown = by_reason[b"unknown report format"]
    assert unknown.value == garbage
    assert dlq_headers(unknown)["responder.source.topic"] == reports.encode()

    [partial] = [m for r, m in by_reason.items() if r.startswith(b"1 part(s) of a gitleaks")]
    note = orjson.loads(partial.value)
    assert note["report_bytes"] == len(broken) and len(note["report_sha256"]) == 64
    assert "unreadable gitleaks report" in note["rejected"][0]
    assert all(s.encode()[:20] not in partial.value for s in SECRETS)
    assert all(s.encode()[:20] not in b"".join(v for _, v in partial.headers) for s in SECRETS)

    wrapper = by_reason[b"unreadable report message"]
    assert wrapper.value == bad_wrapper
    assert b"labels" in dlq_headers(wrapper)["responder.detail"]

    # the two findings before the cut were still converted and sent
    events = consume(kafka_bootstrap, topic(unique, "events"), expect=2)
    assert sorted(orjson.loads(e.value)["attributes"]["rule"] for e in events) == [
        "aws-access-token",
        "generic-api-key",
    ]
    assert worker.proc is not None and worker.proc.poll() is None
