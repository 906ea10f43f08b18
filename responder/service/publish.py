"""Publishing to Kafka: the port the operations use, one long-lived producer for a server and a
one-shot sender for the CLI. Every send waits for the broker's acknowledgement (acks=all).
Commands are signed with the process's key (`commands.signed_record`); a process without one
cannot send them (Unavailable, saying which settings are missing)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from responder.commands import AnyCommand, Unsigned, send_command, signed_record
from responder.kafka_clients import client_options
from responder.security.signatures import Signer
from responder.service.errors import Unavailable
from responder.settings import KafkaSettings
from responder.streams.topics import MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class Record:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)


class Publisher(Protocol):
    topics_commands: str

    async def publish(self, command: AnyCommand) -> None:
        """Put one command on the commands topic; return once the broker has it."""

    async def send_all(self, records: Sequence[Record]) -> None:
        """Send records; return once the broker acknowledged every one (Unavailable if not)."""


class OneShotPublisher:
    """A producer per call (the CLI sends one command per process)."""

    def __init__(self, kafka: KafkaSettings, signer: Signer | None = None) -> None:
        self.kafka = kafka
        self.signer = signer
        self.topics_commands = kafka.topics.commands

    async def publish(self, command: AnyCommand) -> None:
        try:
            await send_command(self.kafka, command, self.signer)
        except Unsigned as exc:
            raise Unavailable(str(exc)) from None

    async def send_all(self, records: Sequence[Record]) -> None:
        producer = KafkaPublisher(self.kafka)
        await producer.start()
        try:
            await producer.send_all(records)
        finally:
            await producer.stop()


class KafkaPublisher:
    """One idempotent producer for a server process, started and stopped with it."""

    def __init__(
        self, kafka: KafkaSettings, *, signer: Signer | None = None, timeout_s: float = 15.0
    ) -> None:
        self.kafka = kafka
        self.signer = signer
        self.topics_commands = kafka.topics.commands
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **client_options(self.kafka),
            client_id=f"{self.kafka.client_id}-api",
            acks="all",
            enable_idempotence=True,
            max_request_size=MAX_MESSAGE_BYTES,
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise Unavailable("the Kafka producer is not started")
        return self._producer

    async def publish(self, command: AnyCommand) -> None:
        try:
            value, key, headers = signed_record(command, self.signer)
        except Unsigned as exc:
            raise Unavailable(str(exc)) from None
        await self.send_all([Record(self.topics_commands, value, key, headers)])

    async def send_all(self, records: Sequence[Record]) -> None:
        producer = self.producer
        try:
            async with asyncio.timeout(self.timeout_s):
                pending = [
                    await producer.send(r.topic, value=r.value, key=r.key, headers=list(r.headers))
                    for r in records
                ]
                await asyncio.gather(*pending)
        except (KafkaError, TimeoutError) as exc:
            raise Unavailable(f"Kafka did not acknowledge: {type(exc).__name__}") from None

    async def reachable(self, timeout_s: float = 2.0) -> bool:
        """Whether the brokers answer a metadata request now (readiness)."""
        if self._producer is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                return bool(await self._producer.client.fetch_all_metadata())
        except (KafkaError, TimeoutError, OSError):
            return False
