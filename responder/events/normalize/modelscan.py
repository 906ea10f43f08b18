"""modelscan JSON (`modelscan -p PATH -r json`) → `model.unsafe_file`, one event per issue.

| modelscan `severity` | event severity |
|---|---|
| CRITICAL | critical |
| HIGH | high |
| MEDIUM | medium |
| LOW | low |

Resource: the model (`model`): id and name are the caller's asset id (e.g. the registered
model's name, which `rules/model-integrity.yaml` groups by), else the scanned path; the file
with the issue is `attributes.file`. Time: `summary.timestamp`, which modelscan writes in local
time without an offset: it is read as UTC (run modelscan with `TZ=UTC`, or give the time).
Id: model + file + module + operator. Files modelscan could not scan (`errors`) are skipped and
counted, not dropped silently.
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
    compact,
    first,
    need,
    obj,
    parse_time,
    text,
)
from responder.events.normalize.reading import walk
from responder.events.normalize.vulns import SEVERITY_WORDS, severity_of

SEVERITY = SEVERITY_WORDS
_SUMMARY = (
    "summary.timestamp",
    "summary.input_path",
    "summary.absolute_path",
    "summary.modelscan_version",
)


def detect(head: bytes) -> bool:
    return b'"modelscan_version"' in head or (b'"issues"' in head and b'"total_issues"' in head)


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    summary: dict[str, Any] = {}
    index = 0
    for path, value in walk(stream, ("issues.item", "errors.item"), _SUMMARY):
        if path in _SUMMARY:
            summary[path.split(".", 1)[1]] = value
        elif path == "errors.item":
            yield Skipped("modelscan could not scan a file (see its errors)")
        else:
            try:
                yield _event(obj(value, "issue"), summary, context)
            except Invalid as exc:
                yield Rejected(str(exc), where=f"issues[{index}]")
            index += 1


def _event(issue: dict[str, Any], summary: dict[str, Any], context: Context) -> Draft:
    operator = need(issue, "operator")
    module = text(issue, "module") or ""
    file = text(issue, "source") or ""
    scanned = first(
        *(
            summary.get(k) if isinstance(summary.get(k), str) else None
            for k in ("input_path", "absolute_path")
        )
    )
    model = first(context.asset, scanned)
    if model is None:
        raise Invalid("no model: the report names no path (give the asset id)")
    return Draft(
        key=(model, file, module, operator),
        type="model.unsafe_file",
        severity=severity_of(SEVERITY, text(issue, "severity"), "high"),
        title=f"Unsafe operator {module}.{operator} in {file or model}",
        resource={"kind": "model", "id": model, "name": model},
        time=parse_time(summary.get("timestamp"), naive_is_utc=True),
        attributes=compact(
            {
                "file": file,
                "module": module,
                "operator": operator,
                "description": text(issue, "description"),
                "scanner": text(issue, "scanner"),
                "tool_severity": text(issue, "severity"),
                "scanned_path": scanned,
                "tool_version": summary.get("modelscan_version")
                if isinstance(summary.get("modelscan_version"), str)
                else None,
            }
        ),
    )
