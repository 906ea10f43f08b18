"""What any Kafka client writes, on the real broker, read by a real worker: Kafka's own Java
producer with every codec, null keys and arbitrary header bytes; tombstones; transactions (only
committed records become events); a record the Python client cannot decode (passed with a note
in the DLQ, the records around it still become incidents)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlmodel import Session, select

from responder.incidents.store import Incident
from responder.storage.database import make_engine
from responder.streams.failures import TOMBSTONE
from responder.streams.salvage import REASON as UNDECODABLE
from tests.support.harness import (
    EACH_RULE,
    Worker,
    consume,
    delete_topics,
    event_json,
    incidents,
    produce,
    running_worker,
    topic,
    wait_for,
    write_rules,
)
from tests.support.java_client import (
    CODECS,
    RawKey,
    Record,
    Step,
    java_produce,
    produce_raw_headers,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TRIVY = ROOT / "tests" / "fixtures" / "reports" / "trivy" / "trivy.scan1.json"
IMAGE = "registry.example.com/ml/fraud-scorer-serving:3.2.0"
# header values no text decoding survives, and a key that is not ASCII
HEADERS = (("trace", b"\xff\xfe\x00\x80binary"), ("ключ", b"\xc3("), ("null", None))


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """One incident per leaked secret (by resource id), and the shipped serving-image rule."""
    directory = write_rules(tmp_path / "rules", EACH_RULE)
    shutil.copy(ROOT / "rules" / "vulnerable-serving-image.yaml", directory)
    return directory


@pytest.fixture
def worker(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, tmp_path: Path, rules: Path
) -> Iterator[Worker]:
    with running_worker(kafka_bootstrap, pg_schema_url, rules, unique, tmp_path / "w.log") as w:
        yield w
    delete_topics(kafka_bootstrap, unique)


def stored(url: str) -> dict[str, str]:
    """Stored incidents: the grouped resource id → the rule."""
    return {row.group["resource.id"]: row.rule for row in incidents(url)}


def leaked(resource: str, n: int) -> bytes:
    return event_json(
        f"{resource}-{n}", type="secret.leaked", resource=resource, kind="api_key", minute=n
    )


def reasons(messages: list[object]) -> list[tuple[bytes, bytes]]:
    """(reason, source topic) of DLQ messages."""
    out = []
    for message in messages:
        headers = dict(message.headers)  # type: ignore[attr-defined]
        out.append((headers["responder.reason"], headers["responder.source.topic"]))
    return sorted(out)


def test_java_producer_every_codec_null_keys_and_header_bytes_open_incidents(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, worker: Worker
) -> None:
    """Kafka's Java producer writes events in gzip, snappy, lz4 and zstd batches (null keys,
    binary and null header values, a tombstone in each) and a zstd-compressed Trivy report: every
    event opens its incident, each tombstone reaches the DLQ with its reason, the worker lives."""
    events, reports = topic(unique, "events"), topic(unique, "reports")
    steps: list[Step] = []
    for codec in CODECS:
        steps.append(f"codec {codec}")
        steps += [Record(None, leaked(f"key-{codec}", n), HEADERS) for n in range(3)]
        steps.append(Record(f"gone-{codec}".encode(), None, HEADERS))
    labels = orjson.dumps({"component": "model-serving", "env": "prod"})
    report_headers = (("responder.format", b"trivy"), ("responder.labels", labels), *HEADERS)
    steps += [
        "codec zstd",
        f"topic {reports}",
        Record(None, TRIVY.read_bytes(), report_headers),
        Record(b"gone-report", None),
    ]
    assert java_produce(kafka_bootstrap, events, steps) == len(steps) - len(CODECS) - 2

    want = {f"key-{codec}": "each-secret" for codec in CODECS} | {IMAGE: "vulnerable-serving-image"}
    wait_for(lambda: stored(pg_schema_url) == want, 90)
    dead = consume(kafka_bootstrap, topic(unique, "dlq"), expect=5)
    assert reasons(dead) == sorted(
        [(TOMBSTONE.encode(), events.encode())] * 4 + [(TOMBSTONE.encode(), reports.encode())]
    )
    assert all(message.value is None for message in dead)
    assert worker.log_events("report converted")[-1]["events"] == 5
    assert worker.proc is not None and worker.proc.poll() is None


def test_transactional_producer_only_committed_records_become_events(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, worker: Worker
) -> None:
    """A transactional Java producer commits, aborts, commits: the aborted transaction's events
    (already in the log, between the two others on the same partition) never become events."""
    key = b"one-partition"  # order: the second commit is read after the abort
    steps: list[Step] = [
        "begin",
        *(Record(key, leaked("committed-first", n)) for n in range(2)),
        "commit",
        "begin",
        *(Record(key, leaked("aborted", n)) for n in range(2)),
        "abort",
        "begin",
        *(Record(key, leaked("committed-after", n)) for n in range(2)),
        "commit",
    ]
    events = topic(unique, "events")
    assert java_produce(kafka_bootstrap, events, steps, transactional_id=f"t-{unique}") == 6

    want = {"committed-first": "each-secret", "committed-after": "each-secret"}
    wait_for(lambda: stored(pg_schema_url) == want, 90)
    # ingest read the partition in order: had it read the aborted events, they would be routed
    # to the correlation topic before the second commit's were, and those are stored by now
    routed = consume(kafka_bootstrap, topic(unique, "correlate"), expect=1000, timeout=10)
    assert routed and b"committed-after-1" in b"".join(m.value for m in routed)
    assert not any(b"aborted" in m.value for m in routed)
    assert stored(pg_schema_url) == want
    assert consume(kafka_bootstrap, topic(unique, "dlq"), expect=1, timeout=3) == []


def test_a_record_the_client_cannot_decode_goes_to_the_dlq_and_the_rest_still_counts(
    kafka_bootstrap: str, pg_schema_url: str, unique: str, worker: Worker
) -> None:
    """A header key that is not UTF-8 (librdkafka clients may write one) makes aiokafka raise for
    its partition: the worker notes the record in the DLQ by position, and the one after it in
    the same batch (which the client cannot decode either), and goes on. The events before it
    in that batch and those in later batches are not lost."""
    events = topic(unique, "events")
    bad = [(RawKey(b"\xff\xfe-not-utf8"), b"v")]
    first_batch = [
        Record(b"k", leaked("before", 0)),
        Record(b"k", leaked("before", 1)),
        Record(b"k", leaked("unreadable", 0), bad),
        Record(b"k", leaked("unreadable", 1)),
    ]
    asyncio.run(produce_raw_headers(kafka_bootstrap, events, 0, first_batch))
    asyncio.run(produce_raw_headers(kafka_bootstrap, events, 0, [Record(b"k", leaked("after", 0))]))
    produce(kafka_bootstrap, events, [leaked("elsewhere", 0)])

    want = {"before": "each-secret", "after": "each-secret", "elsewhere": "each-secret"}
    wait_for(lambda: stored(pg_schema_url) == want, 90)
    dead = consume(kafka_bootstrap, topic(unique, "dlq"), expect=2)
    assert reasons(dead) == [(UNDECODABLE.encode(), events.encode())] * 2
    notes = sorted((orjson.loads(d.value) for d in dead), key=lambda n: n["offset"])
    assert [(n["partition"], n["offset"]) for n in notes] == [(0, 2), (0, 3)]
    assert all("UnicodeDecodeError" in n["error"] for n in notes)
    assert sorted(dict(d.headers)["responder.source.offset"] for d in dead) == [b"2", b"3"]
    engine = make_engine(pg_schema_url)
    with Session(engine) as session:
        rows = session.exec(select(Incident).where(Incident.rule == "each-secret")).all()
        by_resource = {r.group["resource.id"]: r for r in rows}
    engine.dispose()
    assert sorted(e["id"] for e in by_resource["before"].event_ids) == ["before-0", "before-1"]
    wait_for(lambda: len(worker.log_events("undecodable record to DLQ")) == 2, 30)
    assert worker.proc is not None and worker.proc.poll() is None
