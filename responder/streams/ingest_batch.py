"""One ingest batch, without I/O: raw event values in, correlation messages and dead letters out.

The ingest stage (`responder.streams.ingest`) fetches, produces, dead-letters and commits; this
does the work in between, so it also runs offline (tests, property tests). The batch is handled
in one pass with no per-event guard. If anything in that pass raises (a value no check
foresaw, a message too large for the topic), the batch is redone record by record: each record
is validated, routed and encoded on its own, and only the records that raise become dead
letters, with the exception class as the reason. One hostile event never stops the stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from responder.assets.lineage import GraphSnapshot
from responder.correlation.rules import RuleSet
from responder.events.fast import parse_event_doc
from responder.events.schema import Rejection
from responder.streams.failures import TOMBSTONE, failure_detail, failure_reason
from responder.streams.native import router


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record of the batch that goes to the DLQ, and why."""

    index: int  # position in the batch
    reason: str
    detail: list[str]


@dataclass
class IngestOutcome:
    messages: dict[int, list[bytes]] = field(default_factory=dict)  # partition → values
    dead: list[DeadLetter] = field(default_factory=list)
    records: int = 0  # (rule, group) records routed
    redone: str | None = None  # why the batch was redone record by record, if it was

    def merge(self, other: IngestOutcome, index: int) -> None:
        for partition, values in other.messages.items():
            self.messages.setdefault(partition, []).extend(values)
        self.dead.extend(DeadLetter(index, d.reason, d.detail) for d in other.dead)
        self.records += other.records


class IngestBatch:
    """Validates, routes and encodes ingest batches for a rule set and a partition count."""

    def __init__(
        self,
        rules: RuleSet,
        partitions: int,
        assets: GraphSnapshot | None = None,
        *,
        native: bool = True,
    ) -> None:
        self.router = router(rules, partitions, native)  # compiled where installed
        self.assets = assets  # lineage enrichment (`assets.lineage`), None: none

    def handle(
        self,
        values: Sequence[bytes | None],
        partitions: Sequence[int] | None = None,
        *,
        held: Sequence[int] = (),
        announce: bool = False,
    ) -> IngestOutcome:
        """`partitions[i]`: the input partition `values[i]` was read from; `held`: every input
        partition this ingest reads; `announce`: send their progress to every correlation
        partition (see `correlation/watermark.py`), not only to those with records."""
        if self.assets is not None:
            self.router.lineage = self.assets.index  # one snapshot for the whole batch
        try:
            return self._all_at_once(values, partitions, held, announce)
        except Exception as exc:
            outcome = self._one_by_one(values, partitions, held)
            outcome.redone = failure_detail(exc)[0]
            return outcome

    def _all_at_once(
        self,
        values: Sequence[bytes | None],
        partitions: Sequence[int] | None,
        held: Sequence[int] = (),
        announce: bool = False,
    ) -> IngestOutcome:
        router = self.router
        router.reset()
        router.hold(held)
        outcome = IngestOutcome()
        dead = outcome.dead
        add_raw = getattr(router, "add_raw", None)  # the compiled path takes what it is sure of
        for index, raw in enumerate(values):
            if raw is None:
                dead.append(DeadLetter(index, TOMBSTONE, []))
                continue
            where = None if partitions is None else partitions[index]
            if add_raw is not None and add_raw(raw, where) >= 0:
                continue
            parsed = parse_event_doc(raw)
            if isinstance(parsed, Rejection):
                dead.append(DeadLetter(index, parsed.reason, parsed.detail))
                continue
            router.add(*parsed, where)
        outcome.messages = router.messages(announce)
        outcome.records = router.records
        return outcome

    def _one_by_one(
        self, values: Sequence[bytes | None], partitions: Sequence[int] | None, held: Sequence[int]
    ) -> IngestOutcome:
        """Each record on its own (its messages carry its progress), then the progress of the
        whole batch to every correlation partition."""
        outcome = IngestOutcome()
        progress: dict[int, float | None] = dict.fromkeys(held)
        for index, raw in enumerate(values):
            where = None if partitions is None else [partitions[index]]
            try:
                alone = self._all_at_once([raw], where)
            except Exception as exc:
                outcome.dead.append(
                    DeadLetter(index, failure_reason("ingest", exc), failure_detail(exc))
                )
                continue
            outcome.merge(alone, index)
            for partition, newest in self.router.progress.items():
                known = progress.get(partition)
                if newest is not None and (known is None or newest > known):
                    progress[partition] = newest
        self.router.reset()
        if progress:
            self.router.progress = progress
            outcome.merge(IngestOutcome(messages=self.router.messages(announce=True)), 0)
            self.router.reset()
        return outcome
