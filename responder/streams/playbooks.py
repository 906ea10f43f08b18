"""Worker stages for playbooks: the runner loop and the consumer of `responder.commands`.

Runs are created by the sink (same transaction as the incident change), so the runner needs no
topic of its own: it advances whatever SQL says is runnable, woken early by the sink (once a
transaction created runs: `SinkStage.runs_created` in this process, a PostgreSQL notification
from a sink in another: `storage.signals`) or by a command, otherwise every `poll_s`.
Several workers may run it; a lease per run keeps one owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session

from responder.audit.store import append
from responder.commands import AnyCommand, CommandGate, apply_command, first_seen
from responder.metrics.worker import COMMANDS
from responder.playbooks.quorum import Directory
from responder.playbooks.runner import Runner
from responder.security.audit_gate import AuditGate
from responder.security.signatures import Refused, Signed
from responder.settings import KafkaSettings
from responder.storage.signals import Listener
from responder.streams.db_retry import call_with_db_retry
from responder.streams.failures import TOMBSTONE, failure_detail, failure_reason
from responder.streams.kafka import Batch, TopicStage, run_beside

log = structlog.get_logger(__name__)


class Wakeup:
    """A nudge between stages of one process (new runs, decisions): wake the runner now."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    @property
    def event(self) -> asyncio.Event:
        if self._event is None:  # created lazily, inside the running loop
            self._event = asyncio.Event()
        return self._event

    def set(self) -> None:
        self.event.set()


class RunnerStage:
    def __init__(
        self,
        runner: Runner,
        wakeup: Wakeup,
        *,
        poll_s: float,
        listener: Listener | None = None,
    ) -> None:
        self.runner = runner
        self.wakeup = wakeup
        self.poll_s = poll_s
        # wakes it for runs that sinks in other processes created (`storage.signals`)
        self.listener = listener
        self.advanced = 0

    async def start(self) -> None:
        self.wakeup.event  # noqa: B018  (bind the event to this loop)

    async def stop(self) -> None:
        return None

    async def run(self) -> None:
        if self.listener is None:
            await self._advance()
        else:
            await run_beside(self._advance(), self.listener.run())

    async def _advance(self) -> None:
        failing = 0  # ticks failed in a row: said once when it starts, once when it ends
        while True:
            try:
                self.advanced += await self.runner.tick()
            except Exception as exc:  # a broken run or the database down: retried next tick
                if not failing:
                    log.exception("playbook runner tick failed; retrying", error=str(exc))
                failing += 1
            else:
                if failing:
                    log.warning("playbook runner recovered", failed_ticks=failing)
                failing = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self.wakeup.event.wait()
            self.wakeup.event.clear()


@dataclass
class CommandStats:
    applied: int = 0
    refused: int = 0


class CommandStage(TopicStage):
    """Applies analyst commands; one that cannot be applied goes to the DLQ, whatever the reason
    (an invalid command, one that does not apply, or any exception while applying it).

    A command is read only once its signature verifies (`commands.CommandGate`); one that is
    unsigned, signed by an unknown issuer or with a wrong key, expired, acting for someone its
    issuer may not vouch for, or a replay of one applied before is never acted on: it goes to
    the DLQ and an audit record says why."""

    def __init__(
        self,
        kafka: KafkaSettings,
        engine: Engine,
        wakeup: Wakeup,
        gate: CommandGate,
        directory: Directory | None = None,
    ) -> None:
        super().__init__(kafka, kafka.topics.commands, "commands", max_records=100)
        self.engine = engine
        self.wakeup = wakeup
        self.gate = gate
        self.audit_gate = AuditGate()  # refusals audited one by one, up to 30 a minute
        self.directory = directory or Directory()  # approver groups, Slack users (settings)
        self.stats = CommandStats()

    async def handle(self, batch: Batch) -> None:
        for messages in batch.values():
            for msg in messages:
                if msg.value is None:
                    await self._refuse(msg, TOMBSTONE, "a command needs a value")
                    continue
                try:
                    command, signed = self.gate.admit(
                        msg.value or b"", list(msg.headers or ()), now_ms=time.time_ns() // 10**6
                    )
                    result = await call_with_db_retry(
                        self.engine, partial(self._apply, command, signed), what="apply a command"
                    )
                except Refused as exc:
                    await self._forged(msg, str(exc))
                except ValidationError as exc:
                    await self._refuse(msg, "invalid command", str(exc.errors()[0]["msg"]))
                except (ValueError, LookupError) as exc:
                    await self._refuse(msg, "command does not apply", str(exc))
                except Exception as exc:  # whatever it is, the next command still runs
                    log.exception("command failed", offset=msg.offset)
                    await self._refuse(msg, failure_reason("commands", exc), *failure_detail(exc))
                else:
                    self.stats.applied += 1
                    COMMANDS.labels("applied").inc()
                    log.info("command applied", issuer=signed.issuer, by=command.by, **result)
        self.wakeup.set()
        await self.done(batch)

    def _apply(self, command: AnyCommand, signed: Signed) -> dict[str, Any]:
        with Session(self.engine) as session:
            first_seen(session, command.id, signed, self.gate.max_age_ms)
            result = apply_command(session, command, self.directory)
            session.commit()
            return result

    async def _forged(self, msg: Any, detail: str) -> None:
        """A command not signed by a trusted issuer (or replayed): audited (a flood: 30 a
        minute, the next record says how many were left out), then the DLQ: a refusal seen
        in the DLQ is in the audit trail already."""
        write, left_out = self.audit_gate.admit(time.monotonic())
        if write:
            await self._audit_forged(msg, detail, left_out)
        await self._refuse(msg, "command refused: not authenticated", detail)

    async def _audit_forged(self, msg: Any, detail: str, left_out: int) -> None:
        value = msg.value or b""
        record: dict[str, Any] = {
            "reason": detail,
            "topic": msg.topic,
            "partition": msg.partition,
            "offset": msg.offset,
            "sha256": hashlib.sha256(value).hexdigest(),
            "bytes": len(value),
        }
        if left_out:
            record["refusals_left_out"] = left_out
        try:
            await call_with_db_retry(
                self.engine, partial(_audit_refusal, self.engine, record), what="audit a refusal"
            )
        except Exception:  # the DLQ still gets it, with the reason
            log.exception("could not audit a refused command", offset=msg.offset)

    async def _refuse(self, msg: Any, reason: str, detail: str) -> None:
        self.stats.refused += 1
        COMMANDS.labels("refused").inc()
        log.warning("command refused to DLQ", reason=reason, detail=detail, offset=msg.offset)
        await self.reject(msg, reason, [detail])


def _audit_refusal(engine: Engine, record: dict[str, Any]) -> None:
    with Session(engine) as session:
        append(session, [("system:commands", "command.refused", "responder.commands", record)])
        session.commit()
