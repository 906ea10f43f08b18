"""Great Expectations validation results (`ExpectationSuiteValidationResult.to_json_dict()`,
GX 1.x; a checkpoint result's `run_results` too) → `data.quality_failed`, one event per failed
expectation.

| expectation `severity` (GX 1.x) | event severity |
|---|---|
| critical | high |
| warning | medium |
| info | low |
| not given (GX 0.x) | medium |

An expectation that raised (`exception_info.raised_exception`) is a failure too (its message,
not its traceback, is kept). Resource: the dataset (`dataset`): the caller's asset id, else the
batch's `datasource/data_asset_name`. Time: the validation time (`meta.validation_time`, the
checkpoint's `run_id.run_time`, or the batch's `ge_load_time`), else the caller's. Id: dataset
+ suite + the expectation's type, column and kwargs (not its run-specific id). Kept: the
counts and percentages of unexpected values; never the unexpected values themselves (they are
the data, possibly personal). The results are read whole (one entry per expectation).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    Rejected,
    Skipped,
    array,
    compact,
    first,
    obj,
    parse_time,
    shorten,
    sub,
    text,
)
from responder.events.normalize.reading import walk
from responder.events.schema import SeverityName

SEVERITY: dict[str, SeverityName] = {"critical": "high", "warning": "medium", "info": "low"}
KEPT_RESULT = (
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "missing_count",
    "missing_percent",
    "observed_value",
)


def detect(head: bytes) -> bool:
    return b'"expectation_config"' in head or (b'"run_results"' in head and b'"success"' in head)


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    doc = obj(next((v for _, v in walk(stream, ("",))), None), "validation result")
    run_time = _time(sub(doc, "run_id").get("run_time"))
    if "run_results" in doc:
        for name, value in sub(doc, "run_results").items():
            result = obj(value, f"run_results[{name}]")
            result = sub(result, "validation_result") or result
            yield from _validation(result, run_time, context)
    else:
        yield from _validation(doc, run_time, context)


def _time(value: Any) -> datetime | None:
    if isinstance(value, str) and len(value) >= 16 and value[8:9] == "T" and value[:8].isdigit():
        try:  # GX batch markers: 20261130T095915.251989Z
            return datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
        except ValueError:
            return None
    return parse_time(value)


def _validation(
    result: dict[str, Any], run_time: datetime | None, context: Context
) -> Iterator[Item]:
    meta = sub(result, "meta")
    batch = sub(meta, "active_batch_definition")
    dataset = first(
        context.asset,
        "/".join(p for p in (text(batch, "datasource_name"), text(batch, "data_asset_name")) if p)
        or None,
    )
    suite = first(text(result, "suite_name"), text(meta, "expectation_suite_name")) or "suite"
    when = (
        _time(meta.get("validation_time"))
        or run_time
        or _time(sub(meta, "batch_markers").get("ge_load_time"))
    )
    for index, entry in enumerate(array(result, "results")):
        try:
            yield _expectation(obj(entry, "result"), dataset, suite, when)
        except Invalid as exc:
            yield Rejected(str(exc), where=f"results[{index}]")


def _expectation(
    entry: dict[str, Any], dataset: str | None, suite: str, when: datetime | None
) -> Item:
    exception = sub(entry, "exception_info")
    raised = exception.get("raised_exception") is True
    if entry.get("success") is True and not raised:
        return Skipped("expectation met")
    config = sub(entry, "expectation_config")
    kind = first(text(config, "type"), text(config, "expectation_type"))
    if kind is None:
        raise Invalid("expectation_config.type: missing")
    if dataset is None:
        raise Invalid("no dataset: the result names none (give the asset id)")
    kwargs = {k: v for k, v in sub(config, "kwargs").items() if k != "batch_id"}
    column = text(kwargs, "column")
    outcome = sub(entry, "result")
    kept = {
        k: outcome[k] for k in KEPT_RESULT if isinstance(outcome.get(k), int | float | str | bool)
    }
    severity = SEVERITY.get((text(config, "severity") or "").lower(), "medium")
    percent = outcome.get("unexpected_percent")
    detail = (
        f": {percent:.3g}% unexpected"
        if isinstance(percent, int | float) and not isinstance(percent, bool)
        else ""
    )
    return Draft(
        key=(
            dataset,
            suite,
            kind,
            orjson.dumps(kwargs, option=orjson.OPT_SORT_KEYS, default=str).decode(),
        ),
        type="data.quality_failed",
        severity=severity,
        title=shorten(
            f"{kind}"
            + (f" on {column}" if column else "")
            + (" raised an error" if raised else " failed")
            + detail
        ),
        resource={"kind": "dataset", "id": dataset},
        time=when,
        attributes=compact(
            {
                "expectation": kind,
                "column": column,
                "suite": suite,
                "kwargs": {
                    k: v
                    for k, v in kwargs.items()
                    if isinstance(v, str | int | float | bool | list)
                },
                "result": kept,
                "tool_severity": text(config, "severity"),
                "error": shorten(text(exception, "exception_message") or "", 500)
                if raised
                else None,
            }
        ),
    )
