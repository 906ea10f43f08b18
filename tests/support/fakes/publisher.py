"""`RecordingPublisher`: the service's publishing port, keeping what it was given in memory."""

from __future__ import annotations

from collections.abc import Sequence

from responder.commands import AnyCommand
from responder.service.publish import Record


class RecordingPublisher:
    topics_commands = "commands"

    def __init__(self) -> None:
        self.commands: list[AnyCommand] = []
        self.records: list[Record] = []

    async def publish(self, command: AnyCommand) -> None:
        self.commands.append(command)

    async def send_all(self, records: Sequence[Record]) -> None:
        self.records.extend(records)
