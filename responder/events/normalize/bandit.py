"""Bandit JSON (`bandit -r DIR -f json`) → `code.weakness`, one event per result (Bandit's
SARIF output is read by the `sarif` format).

| Bandit `issue_severity` | event severity |
|---|---|
| HIGH | high |
| MEDIUM | medium |
| LOW | low |
| UNDEFINED, missing | info |

Resource: the repository: the caller's asset id (Bandit does not name it; without one a result
is rejected). Time: `generated_at`. Id: repository + test id + file + the flagged code without
its line numbers (moved code keeps its id) + the occurrence number. The code itself is not
copied; a hard-coded password's value (B105-B107) is redacted from the message.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    Rejected,
    compact,
    need,
    number,
    obj,
    parse_time,
    shorten,
    sub,
    text,
)
from responder.events.normalize.reading import walk
from responder.events.normalize.sarif import QUOTED, credential_rule
from responder.events.normalize.secret import redacted
from responder.events.normalize.vulns import severity_of
from responder.events.schema import SeverityName

SEVERITY: dict[str, SeverityName] = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
_NUMBERED = re.compile(r"^(\d+) ?(.*)$")


def detect(head: bytes) -> bool:
    return b'"generated_at"' in head and b'"metrics"' in head and b'"errors"' in head


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    generated: Any = None
    seen: Counter[tuple[str, ...]] = Counter()
    index = 0
    for path, value in walk(stream, ("results.item",), ("generated_at",)):
        if path == "generated_at":
            generated = value
            continue
        try:
            yield _event(obj(value, "result"), parse_time(generated), seen, context)
        except Invalid as exc:
            yield Rejected(str(exc), where=f"results[{index}]")
        index += 1


def _flagged(code: str, line_range: Any) -> str:
    """The flagged lines of Bandit's numbered excerpt (context lines and numbers left out)."""
    wanted = (
        {n for n in line_range if isinstance(n, int)} if isinstance(line_range, list) else set()
    )
    kept = []
    for line in code.splitlines():
        found = _NUMBERED.match(line)
        if found and (not wanted or int(found[1]) in wanted):
            kept.append(found[2])
    return "\n".join(kept)


def _event(
    result: dict[str, Any], when: Any, seen: Counter[tuple[str, ...]], context: Context
) -> Draft:
    if not context.asset:
        raise Invalid("no repository: Bandit does not name it (give the asset id)")
    test_id = need(result, "test_id")
    file = text(result, "filename") or ""
    code = _flagged(text(result, "code") or "", result.get("line_range"))
    base = (
        context.asset,
        test_id,
        file,
        hashlib.sha256(" ".join(code.split()).encode()).hexdigest()[:16],
    )
    seen[base] += 1
    message = text(result, "issue_text") or test_id
    secrets: tuple[str, ...] = ()
    if credential_rule(test_id, {"name": text(result, "test_name") or ""}):
        secrets = tuple(a or b for a, b in QUOTED.findall(message))
        for value in secrets:
            message = message.replace(value, redacted(value))
    line = number(result, "line_number")
    cwe = number(sub(result, "issue_cwe"), "id")
    return Draft(
        key=(*base, str(seen[base])),
        source="bandit",
        type="code.weakness",
        severity=severity_of(SEVERITY, text(result, "issue_severity")),
        title=shorten(
            f"{test_id}: {message}" + (f" ({file}:{int(line)})" if line is not None else "")
        ),
        resource={"kind": "repo", "id": context.asset},
        time=when,
        secrets=secrets,
        attributes=compact(
            {
                "rule_id": test_id,
                "rule_name": text(result, "test_name"),
                "message": message,
                "file": file,
                "line": int(line) if line is not None else None,
                "tool_severity": text(result, "issue_severity"),
                "confidence": text(result, "issue_confidence"),
                "cwe": [f"CWE-{int(cwe)}"] if cwe is not None else [],
                "help_uri": text(result, "more_info"),
            }
        ),
    )
