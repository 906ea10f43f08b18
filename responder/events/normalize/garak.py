"""garak report JSONL (`garak.<run>.report.jsonl`) → `model.vulnerability`, one event per
probe/detector pair that failed (an `eval` entry with failures).

Failure rate = `fails / total_evaluated` (older reports: `(total - passed) / total`):

| failure rate | event severity |
|---|---|
| 0 (the probe passed) | skipped (counted) |
| below 0.1 | low |
| 0.1 to below 0.3 | medium |
| 0.3 to below 0.6 | high |
| 0.6 and above | critical |

Resource: the model endpoint under test (`endpoint`): the caller's asset id, else garak's target
(`plugins.target_name`, older `plugins.model_name`, from the `start_run setup` entry). Time:
the run's `start_time` (the `init` entry; garak writes local time without an offset: read as
UTC, run garak with `TZ=UTC` or give the time). Id: target + probe + detector. Attempts (the
prompts and the model's outputs) are never copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    Rejected,
    Skipped,
    first,
    need,
    number,
    parse_time,
    text,
)
from responder.events.normalize.reading import json_lines
from responder.events.schema import SeverityName


def detect(head: bytes) -> bool:
    return b'"entry_type"' in head and (
        b'"start_run setup"' in head or b'"garak_version"' in head or b'"eval"' in head
    )


def rate_severity(rate: float) -> SeverityName:
    if rate >= 0.6:
        return "critical"
    if rate >= 0.3:
        return "high"
    if rate >= 0.1:
        return "medium"
    return "low"


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    run: dict[str, Any] = {}
    for where, value in json_lines(stream):
        if isinstance(value, Invalid):
            yield Rejected(str(value), where=where)
            continue
        if not isinstance(value, dict):
            yield Rejected("expected an object per line", where=where)
            continue
        kind = value.get("entry_type")
        if kind == "start_run setup":
            run["target"] = first(
                text(value, "plugins.target_name"), text(value, "plugins.model_name")
            )
            run["target_type"] = first(
                text(value, "plugins.target_type"), text(value, "plugins.model_type")
            )
        elif kind == "init":
            run["start"] = parse_time(text(value, "start_time"), naive_is_utc=True)
            run["run"] = text(value, "run")
            run["version"] = text(value, "garak_version")
        elif kind == "eval":
            try:
                yield _event(value, run, context)
            except Invalid as exc:
                yield Rejected(str(exc), where=where)


def _event(entry: dict[str, Any], run: dict[str, Any], context: Context) -> Item:
    probe = need(entry, "probe")
    detector = need(entry, "detector")
    passed = number(entry, "passed") or 0.0
    evaluated = number(entry, "total_evaluated")
    fails = number(entry, "fails")
    if evaluated is None:
        evaluated = number(entry, "total")
    if evaluated is None or evaluated <= 0:
        return Skipped("probe not evaluated")
    if fails is None:
        fails = evaluated - passed
    if fails <= 0:
        return Skipped("probe passed")
    rate = min(max(fails / evaluated, 0.0), 1.0)
    target = first(context.asset, run.get("target"))
    if target is None:
        raise Invalid("no target: the report names none (give the asset id)")
    return Draft(
        key=(target, probe, detector),
        type="model.vulnerability",
        severity=rate_severity(rate),
        title=f"garak {probe} ({detector}): {rate:.0%} of {int(evaluated)} outputs failed",
        resource={"kind": "endpoint", "id": target, "name": run.get("target") or target},
        time=run.get("start"),
        attributes={
            "probe": probe,
            "detector": detector,
            "failure_rate": round(rate, 4),
            "fails": int(fails),
            "passed": int(passed),
            "evaluated": int(evaluated),
            "target_type": run.get("target_type"),
            "run": run.get("run"),
            "tool_version": run.get("version"),
        },
    )
