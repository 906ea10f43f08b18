"""The ingest router's compiled path, when the `responder-native` package (`native/`) is built.

`responder_native.Router` validates, routes and packs raw events into correlation messages in
one pass, byte for byte as `records.Router` fed by `events.fast.parse_event_doc` would (a
property test holds the two paths to the same messages and dead letters). It takes the common
case only: whatever it is not certain of (`add_raw` answers -1: a document the fast path would
hand to the model, whitespace the schema strips, a rule it cannot evaluate, lineage) goes
through Python, whose result it packs in the event's place. The Python router stays the
reference and what runs where the package is not installed.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import structlog

from responder.assets.lineage import LineageIndex
from responder.correlation.engine import route
from responder.correlation.match import MISSING, get_path
from responder.correlation.rules import LINEAGE, Rule, RuleSet
from responder.correlation.window import WindowEvent
from responder.events.limits import INT_MAX, INT_MIN
from responder.streams import records
from responder.streams.records import RANK, DecodedRecord, MessageTooLarge, Progress, Router

try:
    import responder_native
except ImportError:  # not built: the Python router runs
    responder_native = None  # type: ignore[assignment]

log = structlog.get_logger(__name__)


def available() -> bool:
    return responder_native is not None


def _carried(value: Any) -> bool:
    """A rule value the compiled path reads back as the same value."""
    kind = type(value)
    if kind is int:
        return bool(INT_MIN <= value <= INT_MAX)  # what orjson writes, as events may hold
    if kind is float:
        return bool(math.isfinite(value))
    return kind in (str, bool)


def rule_spec(rule: Rule) -> dict[str, Any]:
    """What the compiled router evaluates of a rule (its Python-only parts flagged)."""
    conditions = [
        {"parts": list(c.parts), "op": c.modifier, "values": list(c.values)} for c in rule.residual
    ]
    python_only = rule.fans_out or any(
        c.modifier == "re" or not all(_carried(v) for v in c.values) for c in rule.residual
    )
    return {
        "id": rule.id,
        "types": rule.indexed_types,
        "conditions": [] if python_only else conditions,
        "group": [list(p) for p in rule.group_parts],
        "value_field": rule.value_field.split(".") if rule.value_field else None,
        "reads_lineage": rule.reads_lineage,
        "python_only": python_only,
    }


class NativeRouter:
    """`records.Router`'s interface over `responder_native.Router`, plus `add_raw`."""

    def __init__(self, rules: RuleSet, partitions: int) -> None:
        assert responder_native is not None, "responder-native is not installed"
        spec = orjson.dumps([rule_spec(r) for r in rules.rules.values()])
        self.core = responder_native.Router(spec, partitions)
        self.rules = rules
        self.partitions = partitions
        self.lineage: LineageIndex | None = None  # set per batch by IngestBatch
        self._fields = {r.id: r.value_field for r in rules.rules.values()}

    @property
    def events(self) -> int:
        return int(self.core.events)

    @property
    def records(self) -> int:
        return int(self.core.records)

    @property
    def progress(self) -> dict[int, float | None]:
        return dict(self.core.progress())

    @progress.setter
    def progress(self, value: dict[int, float | None]) -> None:
        self.core.set_progress(value)

    def reset(self) -> None:
        self.core.reset()

    def hold(self, input_partitions: list[int] | tuple[int, ...] | Any) -> None:
        self.core.hold(list(input_partitions))

    def add_raw(self, raw: bytes, input_partition: int | None = None) -> int:
        """Records the raw event became, or -1: parse it in Python and `add` it."""
        if type(raw) is not bytes:  # a bytearray, a memoryview: Python reads those
            return -1
        try:
            return int(self.core.add_raw(raw, input_partition, self.lineage is not None))
        except BaseException as exc:
            raise _ordinary(exc) from None

    def add(
        self, doc: dict[str, Any], time: float, body: bytes, input_partition: int | None = None
    ) -> int:
        """`records.Router.add`: an event Python validated, routed here, packed by the core."""
        if self.lineage is not None and self.rules.needs_lineage(doc["type"]):
            found = self.lineage.of(doc["resource"])
            if found is not None:
                doc[LINEAGE] = found
        routed = []
        for rule_id, key, _ in route(self.rules, doc):
            field = self._fields[rule_id]
            value = MISSING if field is None else get_path(doc, field)
            routed.append((key, None if value is MISSING else orjson.dumps(value)))
        head = (doc["source"], doc["id"], doc["type"], RANK[doc["severity"]], time)
        try:
            return int(self.core.add_routed(*head, body, routed, input_partition))
        except BaseException as exc:
            raise _ordinary(exc) from None

    def messages(self, announce: bool = False) -> dict[int, list[bytes]]:
        try:
            out: dict[int, list[bytes]] = self.core.messages(announce)
        except BaseException as exc:
            raise _ordinary(exc) from None
        for values in out.values():
            for value in values:
                if len(value) > records.MAX_CORRELATION_MESSAGE:
                    raise MessageTooLarge(
                        f"correlation message of {len(value)} bytes > "
                        f"{records.MAX_CORRELATION_MESSAGE}"
                    )
        return out


class NativePanic(RuntimeError):
    """The compiled path panicked (a bug there): the batch is redone record by record, and
    what panics again goes to the DLQ with this as its reason, as anything else that raises."""


def _ordinary(exc: BaseException) -> BaseException:
    """pyo3 raises a Rust panic as a BaseException (`PanicException`), which would pass the
    ingest's `except Exception` and stop the stage: it becomes a NativePanic."""
    if isinstance(exc, Exception) or type(exc).__name__ != "PanicException":
        return exc
    return NativePanic(f"the compiled ingest path panicked: {exc}")


def read(value: bytes) -> tuple[list[DecodedRecord], list[tuple[int, float | None]]]:
    """`records.read`, compiled where installed: the message as ingest writes it is read in one
    pass; anything else (valid or not) by `records.read`, which words any error."""
    if responder_native is not None and type(value) is bytes:
        fast = responder_native.read_message(value, WindowEvent, MISSING)
        if fast is not None:
            return fast
    return records.read(value)


def python_only(rules: RuleSet) -> list[str]:
    """The rules whose events the compiled path hands to Python (`re`, grouping on lineage,
    values it cannot read back the same)."""
    return [r.id for r in rules.rules.values() if rule_spec(r)["python_only"]]


def router(rules: RuleSet, partitions: int, native: bool = True) -> Router | NativeRouter:
    """The compiled router where it is installed and wanted, else the Python one.

    A rule the compiled path cannot evaluate sends every event of the types it could match to
    Python, parsed twice: one such rule without a `type` (every type) means the Python router."""
    if not native or responder_native is None:
        return Router(rules, partitions)
    slow = python_only(rules)
    if any(rules.rules[r].indexed_types is None for r in slow):
        log.info("ingest runs its Python path: a rule for every event type needs it", rules=slow)
        return Router(rules, partitions)
    try:
        made = NativeRouter(rules, partitions)
    except TypeError as exc:  # orjson.JSONEncodeError: e.g. a lone surrogate in a rule
        log.warning("the compiled ingest path cannot take these rules", error=str(exc))
        return Router(rules, partitions)
    if slow:
        types = sorted({t for r in slow for t in rules.rules[r].indexed_types or ()})
        log.info("events of these types take the Python path", rules=slow, types=types)
    return made


__all__ = ["NativePanic", "NativeRouter", "Progress", "available", "python_only", "read", "router"]
