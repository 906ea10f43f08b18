"""The correlation stage's compiled window state, when the `responder-native` package is built.

`responder_native.Windows` (native/src/windows.rs) holds one correlation partition's window
states and feeds them as `Correlator.feed` does, writing incident changes and changelog entries
byte for byte as `Change.to_json` and `state_to_dict` would (a property test holds the two
engines to the same output, `tests/unit/test_native_windows.py`). It takes a whole correlation
message at once (`feed_message`); a message of another shape is read by `records.read` and its
records fed one at a time (`feed`). Python keeps the rare and open-ended parts, called back from
the compiled side: resolving a group key of an unusual shape (`routed_by_key`: the compiled side
resolves `rule|[a value per group_by name]` itself) and a title that is not plain text, group
values and the count (the sandbox renders it, `correlation/titles.py`). A changelog value is
restored by the compiled side where it is the shape a flush writes (`restore_many`, many a
call, without the GIL), else by `state_from_dict` and `put`.

`NativeWindows` has the parts of `GroupStore`'s interface the stage and the tests read
(iteration, `in`, `len`, `store[key]`, a GroupState copy, `put`, `drop`, `take_evicted`,
`changelog`, `begin_sweep`, `sweep`) and its own: `feed_message`, `feed`, `take_fed` (the keys
fed since, for the flush) and `restore_many`. A panic in the compiled code (a bug) surfaces as
RuntimeError, so it fails a record, message or entry, never the stage.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from jinja2 import TemplateError

from responder.correlation.engine import Correlator, routed_by_key
from responder.correlation.match import MISSING
from responder.correlation.rules import EventCount, Rule, RuleSet, ValueCount
from responder.correlation.titles import PLAIN_VALUE, Parts, plain_parts
from responder.correlation.window import GroupState, OpenIncident, WindowEvent
from responder.events.schema import Severity
from responder.text.sandbox import MAX_OUTPUT

try:
    from responder_native import Windows
except ImportError:  # not built: the stage keeps its state in GroupStore
    Windows = None  # type: ignore[assignment,misc]


def available() -> bool:
    return Windows is not None


def window_rule_spec(rule: Rule) -> dict[str, Any]:
    """What the compiled engine reads of a rule."""
    corr = rule.correlation
    threshold = None
    types: list[str] = []
    if corr is None:
        test = "any"
    elif isinstance(corr, EventCount | ValueCount):
        test = "count" if isinstance(corr, EventCount) else "distinct"
        cond = corr.condition
        threshold = {"gte": _count(cond.gte), "gt": _count(cond.gt), "eq": _count(cond.eq)}
    else:
        test = "every" if corr.type == "temporal" else "ordered"
        types = list(corr.events)
    severity = rule.incident.severity
    return {
        "id": rule.id,
        "window_s": rule.window_s,
        "suppress_s": rule.suppress_s,
        "test": test,
        "threshold": threshold,
        "types": types,
        "severity": None if severity is None else int(Severity[severity]),
        "kind": rule.incident.kind,
        "reportable": rule.incident.reportable,
        "parts": _plain(rule.incident.title or rule.title),
        "group_by": list(rule.group_by),
        "value_field": None if rule.value_field is None else rule.value_field.split("."),
    }


def _count(n: int | None) -> int | None:
    """A threshold as the compiled side reads it (64 bits): one past any count a window can
    have is as unreachable as a larger one (a rule may say 2**64; Python's engine runs it)."""
    return None if n is None else min(n, 2**63 - 1)


def _plain(source: str) -> Parts | None:
    """The title's plain parts; None (the sandbox decides, or fails the record as in Python)
    for any other shape, or a rule title that is no template (only incident.title is checked
    at load): that must fail the incidents it titles, not the store."""
    try:
        return plain_parts(source)
    except TemplateError:
        return None


def window_spec(rules: RuleSet, *, lateness_s: float, cap: int | None, max_change: int) -> bytes:
    return orjson.dumps(
        {
            "rules": [window_rule_spec(r) for r in rules.rules.values()],
            "lateness": lateness_s,
            "cap": cap,
            "plain_value": PLAIN_VALUE,
            "max_output": MAX_OUTPUT,
            "max_change": max_change,
        }
    )


class _Callbacks:
    """What the compiled engine asks Python: a new key's rule and group, a sandboxed title."""

    def __init__(self, engine: Correlator) -> None:
        self.engine = engine

    def resolve(self, key: str) -> tuple[str, bytes] | None:
        routed = routed_by_key(self.engine.rules, key)
        return None if routed is None else (routed.rule_id, orjson.dumps(routed.group))

    def title(self, rule_id: str, key: str, raw: bytes, count: int) -> str:
        rules = self.engine.rules
        routed = routed_by_key(rules, key)
        assert routed is not None  # resolved before the window was fed
        trigger = WindowEvent(0.0, -1, "", "", "", 0, MISSING, None, raw)  # doc() reads raw
        return self.engine.titles.render(rules.rules[rule_id], key, routed.group, trigger, count)


_CLASSES = (WindowEvent, OpenIncident, GroupState, MISSING)


_Base: Any = object if Windows is None else Windows  # (a class that is never made when not built)


class NativeWindows(_Base):  # type: ignore[misc]
    """One partition's compiled window state, with the store interface the stage reads."""

    def __new__(
        cls, engine: Correlator, *, cap: int | None, max_change: int, too_large: type
    ) -> NativeWindows:
        assert Windows is not None, "responder-native is not installed"
        spec = window_spec(engine.rules, lateness_s=engine.lateness, cap=cap, max_change=max_change)
        calls = _Callbacks(engine)
        store: NativeWindows = super().__new__(
            cls, spec, calls.resolve, calls.title, too_large, _CLASSES
        )
        return store

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __getitem__(self, key: str) -> GroupState:
        state: GroupState | None = self.get(key)
        if state is None:
            raise KeyError(key)
        return state
