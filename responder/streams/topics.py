"""The Kafka topics the worker owns, created on start with the partition counts it relies on.

The correlation topic and its changelog must have the same number of partitions (the changelog
partition of a key is the partition the key is processed on); `ensure_topics` checks that.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from dataclasses import dataclass, field

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from responder.kafka_clients import client_options
from responder.settings import KafkaSettings

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 5 * 1024 * 1024  # events up to 1 MiB are valid; larger ones must reach the DLQ


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(kafka: KafkaSettings) -> list[TopicSpec]:
    t, n = kafka.topics, kafka.partitions
    big = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    return [
        TopicSpec(t.events, n, big),
        TopicSpec(t.dlq, n, big),
        TopicSpec(t.correlate, n, big),
        TopicSpec(t.changelog, n, {**big, "cleanup.policy": "compact"}),
        TopicSpec(t.incidents, n, big),
        TopicSpec(t.commands, n),
        TopicSpec(t.reports, n, big),
    ]


def partition_for(key: str, partitions: int) -> int:
    """Stable partition of a correlation key (the same in every process and language)."""
    return zlib.crc32(key.encode("utf-8")) % partitions


def _settings(kafka: KafkaSettings | str) -> KafkaSettings:
    """A bare bootstrap address (tests, benchmarks) means a plaintext connection."""
    return kafka if isinstance(kafka, KafkaSettings) else KafkaSettings(bootstrap_servers=kafka)


async def wait_for_broker(
    kafka: KafkaSettings | str, timeout_s: float | None = None, *, max_backoff_s: float = 30.0
) -> None:
    """Return once the broker answers; retry with backoff (up to `max_backoff_s`) meanwhile.

    Without a timeout it waits for as long as the outage lasts, saying so once when it starts
    and once when it ends (not once per attempt).
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    delay, down_since = 0.5, None
    kafka = _settings(kafka)
    bootstrap = kafka.bootstrap_servers
    while True:
        admin = AIOKafkaAdminClient(**client_options(kafka))
        try:
            await admin.start()
            await admin.list_topics()
        except KafkaError as exc:
            if down_since is None:
                down_since = loop.time()
                log.warning(
                    "Kafka unreachable; retrying until it answers",
                    bootstrap=bootstrap,
                    error=str(exc),
                )
            if deadline is not None and loop.time() > deadline:
                raise RuntimeError(
                    f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s; "
                    "start one with `scripts/kafka up`"
                ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
        else:
            if down_since is not None:
                log.warning(
                    "Kafka reachable again",
                    bootstrap=bootstrap,
                    outage_s=round(loop.time() - down_since, 1),
                )
            return
        finally:
            await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """New partitions answer produce requests only once elected leaders exist: wait for them,
    so the first send is not refused (and retried noisily) by a broker still electing."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while asyncio.get_running_loop().time() < deadline:
        described = await admin.describe_topics(names)
        partitions = [p for d in described for p in d.get("partitions", [])]
        if partitions and all(p.get("leader", -1) >= 0 for p in partitions):
            return
        await asyncio.sleep(0.05)


async def create_topics(kafka: KafkaSettings | str, names: list[str], partitions: int) -> None:
    """Create plain topics (tests, benchmarks) and wait until their partitions have leaders."""
    admin = AIOKafkaAdminClient(**client_options(_settings(kafka)))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        await _wait_for_leaders(admin, names)
    finally:
        await admin.close()


async def ensure_topics(kafka: KafkaSettings) -> None:
    """Create missing topics; verify the partition counts the correlation stage depends on."""
    await wait_for_broker(kafka)
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in topic_specs(kafka) if s.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
                await admin.create_topics(
                    [
                        NewTopic(
                            s.name, s.partitions, kafka.replication_factor, topic_configs=s.config
                        )
                        for s in missing
                    ]
                )
            log.info("topics created", topics=[s.name for s in missing])
            await _wait_for_leaders(admin, [s.name for s in missing])
        described = await admin.describe_topics([kafka.topics.correlate, kafka.topics.changelog])
        counts = {d["topic"]: len(d["partitions"]) for d in described}
        if counts.get(kafka.topics.correlate) != counts.get(kafka.topics.changelog):
            raise RuntimeError(
                f"{kafka.topics.correlate} and {kafka.topics.changelog} must have the same "
                f"number of partitions, found {counts}"
            )
    finally:
        await admin.close()
