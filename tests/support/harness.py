"""Test harness: real `responder worker` processes on per-test topics, and Kafka helpers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from responder.audit.chain import ChainKey
from responder.audit.store import Keyring, use_keys
from responder.incidents.store import Incident
from responder.settings import KafkaSettings, Topics
from responder.storage.database import make_engine, upgrade
from responder.streams import topics
from responder.streams.records import decode
from tests.support.builders import count_rule
from tests.support.signing import command_env

T = TypeVar("T")
TOPICS = ("events", "dlq", "correlate", "changelog", "incidents", "commands", "reports")


CHAIN_KEY = "harness-chain-key-0123456789abcdefghij"  # the audit chain key test workers use


def keyed_engine(url: str) -> Engine:
    """An engine on a test worker's database that verifies its audit chain with the workers'
    chain key."""
    engine = make_engine(url)
    use_keys(engine, Keyring(ChainKey("k1", CHAIN_KEY.encode())))
    return engine


def worker_env(
    bootstrap: str,
    db_url: str,
    rules_dir: Path,
    unique: str,
    partitions: int = 4,
    playbooks_dir: Path | None = None,
) -> dict[str, str]:
    """A worker on per-test topics; without `playbooks_dir` it runs no playbooks."""
    env = {
        "RESPONDER_PLAYBOOKS__DIR": str(playbooks_dir or rules_dir / "no-playbooks"),
        "RESPONDER_PLAYBOOKS__POLL_S": "0.2",
        "RESPONDER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "RESPONDER_KAFKA__GROUP_PREFIX": f"t-{unique}",
        "RESPONDER_KAFKA__PARTITIONS": str(partitions),
        "RESPONDER_DATABASE__URL": db_url,
        "RESPONDER_RULES_DIR": str(rules_dir),
        "RESPONDER_EVIDENCE__DIR": str(
            Path(tempfile.gettempdir()) / f"responder-evidence-{unique}"
        ),
        "RESPONDER_KAFKA__DATA_DIR": str(
            Path(tempfile.gettempdir()) / f"responder-worker-{unique}"
        ),
        "RESPONDER_CORRELATION__COMMIT_INTERVAL_S": "0.2",
        "RESPONDER_WORKER__PROCESSES": "1",  # one process unless a test asks for more
        "RESPONDER_LOG_FORMAT": "json",
        "RESPONDER_LOG_LEVEL": "INFO",
        **command_env(),
        "RESPONDER_AUDIT__KEY": CHAIN_KEY,
        "RESPONDER_AUDIT__ANCHOR_TOPIC": f"t.{unique}.audit-anchors",
        "RESPONDER_AUDIT__ANCHOR_EVERY_S": "0.5",
    }
    for name in TOPICS:
        env[f"RESPONDER_KAFKA__TOPICS__{name.upper()}"] = f"t.{unique}.{name}"
    return env


def incidents(url: str) -> list[Incident]:
    """The incidents in the database at `url`, oldest first."""
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            return list(s.exec(select(Incident).order_by(col(Incident.first_seen))).all())
    finally:
        engine.dispose()


def topic(unique: str, name: str) -> str:
    return f"t.{unique}.{name}"


def kafka_settings(bootstrap: str, unique: str) -> KafkaSettings:
    """Kafka settings on the test's own topics and consumer groups."""
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        group_prefix=f"t-{unique}",
        topics=Topics(**{name: topic(unique, name) for name in TOPICS}),
    )


@dataclass
class Worker:
    env: dict[str, str]
    log_path: Path
    args: tuple[str, ...] = ()  # extra `responder worker` options, e.g. ("--stages", "ingest")
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process; do not wait for it to serve."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "responder", "worker", *self.args],
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self.proc

    def start(self) -> Worker:
        proc = self.spawn()
        wait_for(lambda: "worker started" in self.log() or proc.poll() is not None, 60)
        assert proc.poll() is None, f"worker exited early:\n{self.log()[-3000:]}"
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self, event: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            start = line.find("{")  # a terminal escape sequence may come first
            if start >= 0 and f'"{event}"' in line:
                try:
                    out.append(json.loads(line[start:]))
                except ValueError:
                    continue
        return out

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self._log:
            self._log.close()


@contextmanager
def running_worker(
    bootstrap: str, db_url: str, rules_dir: Path, unique: str, log_path: Path
) -> Iterator[Worker]:
    """A worker (every stage, one process) on per-test topics and a migrated database, serving
    until the block ends."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    started = Worker(worker_env(bootstrap, db_url, rules_dir, unique), log_path).start()
    try:
        yield started
    finally:
        started.stop()


def wait_for(
    predicate: Callable[[], T | Literal[False] | None], timeout: float, interval: float = 0.2
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


async def _produce(
    bootstrap: str, name: str, values: list[bytes], keys: list[bytes | None] | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(name, value=v, key=keys[i] if keys else None)
            for i, v in enumerate(values)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def produce(
    bootstrap: str,
    name: str,
    values: list[bytes],
    key_by_resource: bool = True,
    key: bytes | None = None,
) -> None:
    keys: list[bytes | None] | None = None
    if key is not None:
        keys = [key] * len(values)
    elif key_by_resource:
        keys = []
        for v in values:
            try:
                keys.append(json.loads(v)["resource"]["id"].encode())
            except (ValueError, KeyError, TypeError):
                keys.append(None)
    asyncio.run(_produce(bootstrap, name, values, keys))


async def consume_all(bootstrap: str, name: str, expect: int, timeout: float) -> list[Any]:
    consumer = AIOKafkaConsumer(
        name, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                out.extend(msgs)
    finally:
        await consumer.stop()
    return out


async def routed_ids(bootstrap: str, name: str, expect: int) -> list[str]:
    """The ids of the events routed to the correlation topic, once `expect` are there (or after
    30 reads of the whole topic, a second each and a client start-up). Messages that carry only
    progress, which ingest sends for a batch it routed nothing from, are read past."""
    ids: list[str] = []
    for _ in range(30):
        messages = await consume_all(bootstrap, name, 10**9, timeout=1)
        ids = [e.id for m in messages for *_, e in decode(m.value)]
        if len(ids) >= expect:
            break
    return ids


def consume(bootstrap: str, name: str, expect: int, timeout: float = 30) -> list[Any]:
    return asyncio.run(consume_all(bootstrap, name, expect, timeout))


def create_topics(bootstrap: str, names: list[str], partitions: int = 4) -> None:
    asyncio.run(topics.create_topics(bootstrap, names, partitions))


async def delete_topics_of(bootstrap: str, uniques: set[str]) -> list[str]:
    """Delete every topic whose name carries one of these test ids (`t.<unique>.*`, the
    worker's own `t-<unique>-...`) from the shared broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if any(u in n for u in uniques)]
        for start in range(0, len(names), 100):
            await admin.delete_topics(names[start : start + 100])
        return names
    finally:
        await admin.close()


def delete_topics(bootstrap: str, unique: str) -> list[str]:
    """Delete the topics of one test."""
    return asyncio.run(delete_topics_of(bootstrap, {unique}))


async def _committed(bootstrap: str, group: str, name: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == name}
    finally:
        await admin.close()


async def _ends(bootstrap: str, name: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        from aiokafka import TopicPartition

        parts = consumer.partitions_for_topic(name) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(name) or set()
        ends = await consumer.end_offsets([TopicPartition(name, p) for p in parts])
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def _members(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        (described,) = response.groups
        return len(described[5])  # (error, group, state, protocol type, protocol, members, ...)
    finally:
        await admin.close()


def group_members(bootstrap: str, group: str) -> int:
    """How many members consumer group `group` has now."""
    return asyncio.run(_members(bootstrap, group))


def caught_up(bootstrap: str, group: str, name: str) -> bool:
    """Whether `group` has committed every message of topic `name`."""
    return committed_up_to(bootstrap, group, name, topic_ends(bootstrap, name))


def topic_ends(bootstrap: str, name: str) -> dict[int, int]:
    """Topic `name`'s end offset by partition."""
    return asyncio.run(_ends(bootstrap, name))


def committed_up_to(bootstrap: str, group: str, name: str, ends: dict[int, int]) -> bool:
    """Whether `group` has committed topic `name` up to `ends` (offsets by partition)."""
    committed = asyncio.run(_committed(bootstrap, group, name))
    return bool(ends) and all(committed.get(p, 0) >= end for p, end in ends.items())


def event_json(
    id: str,
    *,
    type: str = "input.adversarial",
    resource: str = "endpoint-1",
    kind: str = "endpoint",
    minute: float = 0,
    severity: str = "medium",
    source: str = "detector",
    **extra: Any,
) -> bytes:
    from datetime import UTC, datetime, timedelta

    at = datetime(2026, 11, 25, 9, 0, tzinfo=UTC) + timedelta(minutes=minute)
    doc = {
        "id": id,
        "source": source,
        "type": type,
        "time": at.isoformat().replace("+00:00", "Z"),
        "severity": severity,
        "title": f"{type} on {resource}",
        "resource": {"kind": kind, "id": resource},
        **extra,
    }
    return json.dumps(doc).encode()


BURST_RULE = yaml.safe_dump(
    count_rule("burst", "input.adversarial", "resource.id", "10m", 5, severity="high"),
    sort_keys=False,
)

EACH_RULE = """
id: each-secret
title: Secret leaked
match:
  type: secret.leaked
group_by: [resource.id]
window: 1h
incident: {kind: secret_exposure}
"""


def write_rules(directory: Path, *texts: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (directory / f"rule{i}.yaml").write_text(text)
    return directory
