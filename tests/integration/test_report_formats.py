"""Every report format, from report to incident on the real broker: each report is sent to
`responder.reports` (format, labels, asset and time in headers, as `responder send` writes them),
converted by the worker, correlated by a shipped rule, and the incident is stored in PostgreSQL.

One worker serves the whole module (starting one per format would cost more than the tests):
every report is sent once, in order, on one partition, when the module starts; each format's
test then waits for the incidents its events must be part of. Which events those are is known
here by converting the same report with the same context (the ids are stable).

detect-secrets names a secret only by its hash, so `leaked-key-then-used` cannot join its
findings to the key's use; `secrets-committed-together` answers them (three or more in one file
of one repository, the repository given as the report's asset).
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import create_engine, text
from sqlmodel import Session, select

from responder.events.normalize import FORMATS, Context, convert
from responder.incidents.store import Incident
from responder.storage.database import make_engine, upgrade
from responder.streams.reports import report_headers
from responder.streams.topics import MAX_MESSAGE_BYTES
from tests.conftest import schema_url
from tests.support.harness import Worker, delete_topics, topic, wait_for, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "reports"
NINE = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # before the CloudTrail key uses (09:12)
SERVING = {"component": "model-serving", "env": "prod"}
WAIT_S = 180.0  # for all of the module's incidents together


def burst() -> bytes:
    """A SecurityEvent JSONL report: ten adversarial inputs against one endpoint in a minute,
    live traffic newer than every report before it (older, it would be late against the
    input partitions' progress and rightly dropped, depending on how far each had read)."""
    lines = [
        orjson.dumps(
            {
                "id": f"adv-{n}",
                "source": "prompt-guard",
                "type": "input.adversarial",
                "time": f"2026-11-30T11:00:{n * 5:02d}Z",
                "severity": "medium",
                "title": "prompt injection attempt",
                "resource": {"kind": "endpoint", "id": "chat-gateway"},
                "actor": {"ip": f"198.51.100.{n + 1}"},
            }
        )
        for n in range(10)
    ]
    return b"\n".join(lines) + b"\n"


@dataclass(frozen=True)
class Case:
    """One format's report, what the sender says about it, and the rules it must trigger."""

    format: str
    report: str | bytes  # a fixture's path under tests/fixtures/reports, or the report itself
    rules: frozenset[str]
    labels: dict[str, str] = field(default_factory=dict)
    asset: str | None = None
    when: datetime | None = NINE

    @property
    def context(self) -> Context:
        return Context(labels=self.labels, asset=self.asset, time=self.when)

    def body(self) -> bytes:
        if isinstance(self.report, bytes):
            return self.report
        return (FIXTURES / self.report).read_bytes()

    def refs(self) -> set[tuple[str, str]]:
        """(source, id) of the events this report converts to."""
        outputs = convert(io.BytesIO(self.body()), self.format, self.context)
        return {(o["source"], o["id"]) for o in outputs if isinstance(o, dict)}


def case(fmt: str, report: str | bytes, *rules: str, **kwargs: object) -> Case:
    return Case(fmt, report, frozenset(rules), **kwargs)  # type: ignore[arg-type]


# In sending order: the secret scanners before CloudTrail (a leak, then the key's use).
CASES = [
    case("trivy", "trivy/trivy.scan1.json", "vulnerable-serving-image", labels=SERVING),
    case("grype", "grype/grype.json", "vulnerable-serving-image", labels=SERVING),
    case(
        "osv-scanner",
        "osv-scanner/osv-scanner.json",
        "vulnerable-serving-dependency",
        labels=SERVING,
        asset="fraud-scorer",
    ),
    case(
        "pip-audit",
        "pip-audit/pip-audit.json",
        "vulnerable-serving-dependency",
        labels=SERVING,
        asset="fraud-scorer",
    ),
    case(
        "sarif",
        "sarif/semgrep.scan1.sarif",
        "unsafe-deserialization-in-code",
        asset="ml-platform/fraud-scorer",
    ),
    case(
        "bandit",
        "bandit/bandit.scan1.json",
        "unsafe-deserialization-in-code",
        asset="ml-platform/churn-model",
    ),
    case("gitleaks", "gitleaks/gitleaks.json", "leaked-key-then-used", labels={"env": "prod"}),
    case("trufflehog", "trufflehog/trufflehog.jsonl", "leaked-key-then-used"),
    case(
        "detect-secrets",
        "detect-secrets/detect-secrets.json",
        "secrets-committed-together",
        asset="ml-platform/fraud-scorer",
    ),
    case(
        "cloudtrail",
        "cloudtrail/cloudtrail.json",
        "leaked-key-then-used",
        "key-used-from-many-ips",
    ),
    case("modelscan", "modelscan/modelscan.json", "model-integrity", asset="fraud-scorer"),
    case("picklescan", "picklescan/picklescan.txt", "model-integrity", asset="churn-model"),
    case("falco", "falco/falco.jsonl", "running-vulnerable-image", labels={"env": "prod"}),
    case("k8s-audit", "k8s-audit/k8s-audit.jsonl", "shell-in-model-serving"),
    case("presidio", "presidio/presidio.jsonl", "pii-exposed", asset="support-transcripts"),
    case(
        "evidently",
        "evidently/evidently.json",
        "drift-with-data-quality-failure",
        asset="fraud-features",
        when=datetime(2026, 11, 30, 10, 0, tzinfo=UTC),  # the Great Expectations run's day
    ),
    case(
        "great-expectations",
        "great-expectations/great-expectations.json",
        "drift-with-data-quality-failure",
        asset="fraud-features",
    ),
    case(
        "garak",
        "garak/garak.report.jsonl",
        "llm-probe-failures",
        labels={"env": "prod"},
        asset="fraud-chat-prod",
    ),
    case("ocsf", "ocsf/ocsf.json", "vulnerable-serving-image", labels=SERVING),
    case(
        "cloudevents",
        "cloudevents/cloudevents.json",
        "model-integrity",
        "vulnerable-serving-image",
        labels=SERVING,
    ),
    case("securityevent", burst(), "adversarial-burst"),
]


def test_every_format_has_a_case() -> None:
    """A new format needs its case here."""
    assert {c.format for c in CASES} == set(FORMATS)
    assert all(c.refs() and c.rules for c in CASES)  # each converts, with the context given


@dataclass
class Module:
    url: str
    deadline: float


@pytest.fixture(scope="module")
def module(
    kafka_bootstrap: str, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Module]:
    """A schema, topics and one worker for the module; every report sent once, in order."""
    unique = uuid.uuid4().hex[:10]
    schema = f"t_{unique}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = schema_url(postgres_url, schema)
    upgrade(make_engine(url))
    log = tmp_path_factory.mktemp("formats") / "worker.log"
    worker = Worker(worker_env(kafka_bootstrap, url, ROOT / "rules", unique), log).start()
    try:
        asyncio.run(send_all(kafka_bootstrap, topic(unique, "reports")))
        yield Module(url, time.monotonic() + WAIT_S)
    finally:
        worker.stop()
        delete_topics(kafka_bootstrap, unique)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


async def send_all(bootstrap: str, reports: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=MAX_MESSAGE_BYTES + 64 * 1024
    )
    await producer.start()
    try:
        for c in CASES:  # one key: one partition, converted in this order
            headers = report_headers(c.format, c.context)
            await producer.send_and_wait(reports, value=c.body(), key=b"formats", headers=headers)
    finally:
        await producer.stop()


def incidents_with(url: str, refs: set[tuple[str, str]]) -> set[str]:
    """The rules of stored incidents that hold at least one of these events."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            rows = session.exec(select(Incident)).all()
            return {
                row.rule for row in rows if refs & {(e["source"], e["id"]) for e in row.event_ids}
            }
    finally:
        engine.dispose()


@pytest.mark.parametrize("c", CASES, ids=[c.format for c in CASES])
def test_report_to_incident(c: Case, module: Module) -> None:
    """The format's report, sent to Kafka, ends in the incidents of the rules that answer it."""
    refs = c.refs()
    remaining = max(module.deadline - time.monotonic(), 5.0)
    try:
        wait_for(lambda: c.rules <= incidents_with(module.url, refs), remaining)
    except TimeoutError:
        assert incidents_with(module.url, refs) >= c.rules  # shows what is missing
