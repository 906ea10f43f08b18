"""picklescan output (the text it prints: `picklescan -p PATH`) → `model.unsafe_file`, one event
per dangerous global.

| picklescan line | event severity |
|---|---|
| `FILE: dangerous import 'MODULE NAME' FOUND` | critical |
| `... FOUND (promoted by --strict)` (suspicious, promoted) | high |
| `ERROR: parsing pickle in FILE: ...` (a broken pickle with globals: a possible evasion) | medium |

Resource: the model (`model`): the caller's asset id, else the file. The summary and other log
lines are skipped (counted). picklescan prints no time: the caller's is used. Id: model + file +
module + name (the error: model + file).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from responder.events.normalize.core import Context, Draft, Item, Skipped, shorten
from responder.events.normalize.reading import lines

FOUND = re.compile(
    r"^(?P<file>.+?): (?P<level>dangerous|suspicious) import '(?P<module>[^' ]+) (?P<name>[^']*)' FOUND"
    r"(?P<strict> \(promoted by --strict\))?\s*$"
)
ERROR = re.compile(r"^ERROR: parsing pickle in (?P<file>.+?): (?P<error>.*)$")
SUMMARY = re.compile(
    r"^(-+ SCAN SUMMARY -+|Scanned files: \d+|Infected files: \d+|Dangerous globals: \d+|"
    r"Suspicious globals: \d+|Scan errors?: \d+|All globals found:|WARNING: .*|  ?- .*)$"
)


def detect(head: bytes) -> bool:
    return b"SCAN SUMMARY" in head or (b" import '" in head and b"' FOUND" in head)


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    for number, raw in lines(stream):
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        found = FOUND.match(line)
        if found and found["level"] == "dangerous":
            yield _draft(
                context, found["file"], found["module"], found["name"], bool(found["strict"])
            )
            continue
        error = ERROR.match(line)
        if error:
            model = context.asset or error["file"]
            yield Draft(
                key=(model, error["file"], "parse-error"),
                type="model.unsafe_file",
                severity="medium",
                title=f"Malformed pickle with globals in {error['file']}",
                resource={"kind": "model", "id": model, "name": model},
                time=None,
                attributes={
                    "file": error["file"],
                    "error": shorten(error["error"], 500),
                    "line": number,
                },
            )
            continue
        yield Skipped(
            "picklescan summary or log line"
            if SUMMARY.match(line) or found
            else "unrecognised picklescan line"
        )


def _draft(context: Context, file: str, module: str, name: str, strict: bool) -> Draft:
    model = context.asset or file
    return Draft(
        key=(model, file, module, name),
        type="model.unsafe_file",
        severity="high" if strict else "critical",
        title=f"Dangerous global {module}.{name} in {file}",
        resource={"kind": "model", "id": model, "name": model},
        time=None,
        attributes={
            "file": file,
            "module": module,
            "operator": name,
            "promoted_by_strict": strict or None,
        },
    )
