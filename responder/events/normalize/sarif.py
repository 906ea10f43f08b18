"""SARIF 2.1.0 from any code scanner (Bandit, Semgrep, CodeQL, ...) → `code.weakness`, one event
per result.

Severity, first that applies:

| SARIF | event severity |
|---|---|
| `security-severity` property (result, else rule; the score GitHub code scanning reads) | ≥ 9.0 critical, ≥ 7.0 high, ≥ 4.0 medium, > 0 low, 0 info |
| Bandit's `issue_severity` property | HIGH high, MEDIUM medium, LOW low |
| `level` (result, else the rule's `defaultConfiguration.level`, else `warning`) | error high, warning medium, note low, none info |

Source: the tool (`tool.driver.name`, lower case, spaces as dashes: `bandit`, `semgrep-oss`,
`codeql`). Resource: the repository (`repo`): the run's `versionControlProvenance` repository,
else the caller's asset id; a result without either is rejected (give `--asset`).
Time: the run's invocation end (else start) time, else the caller's. Id: tool + repository +
rule + file + `partialFingerprints` (CodeQL, GitHub); without fingerprints, the hash of the
flagged snippet (whitespace-insensitive, so moved code keeps its id) else the start line, plus
the occurrence number. `fingerprints` whose value is a placeholder (Semgrep writes `requires
login`) are kept as attributes, not used. Rule metadata (name, description, tags, CWE, help URI,
precision) is copied into `attributes.rule`.

Snippets are never copied (they can hold a password); in a result of a credential rule (CWE-259,
CWE-798, Bandit B105-B107, a rule named for a password, secret, token or key), quoted literals
in the message are redacted and scrubbed from the whole event.

Read in two passes when the stream can seek (runs' tools, rules and invocations first, then the
results, one at a time): SARIF writers put `results` before or after `tool`.
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
    array,
    compact,
    first,
    number,
    obj,
    parse_time,
    shorten,
    slug,
    sub,
    text,
)
from responder.events.normalize.reading import START, walk
from responder.events.normalize.secret import redacted
from responder.events.normalize.vulns import rating
from responder.events.schema import SeverityName

LEVELS: dict[str, SeverityName] = {
    "error": "high",
    "warning": "medium",
    "note": "low",
    "none": "info",
}
BANDIT: dict[str, SeverityName] = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
CREDENTIAL_CWES = {"cwe-259", "cwe-798", "cwe-321", "cwe-522"}
CREDENTIAL_RULE = re.compile(
    r"password|passwd|secret|token|credential|api.?key|private.?key|B10[567]\b", re.I
)
QUOTED = re.compile(r"'([^']{4,})'|\"([^\"]{4,})\"")
PLACEHOLDERS = {"requires login", ""}

_RESULTS = "runs.item.results.item"
_RULES = ("runs.item.tool.driver.rules.item", "runs.item.tool.extensions.item.rules.item")
_META = (
    "runs.item.tool.driver.name",
    "runs.item.tool.driver.version",
    "runs.item.tool.driver.semanticVersion",
    "runs.item.invocations.item",
    "runs.item.versionControlProvenance.item",
    *_RULES,
)


def detect(head: bytes) -> bool:
    lowered = head.lower()
    return b'"runs"' in head and (b"sarif" in lowered or b'"driver"' in head)


class _Run:
    def __init__(self) -> None:
        self.tool: dict[str, Any] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.rule_list: list[dict[str, Any]] = []
        self.invocations: list[dict[str, Any]] = []
        self.repos: list[dict[str, Any]] = []
        self.seen: Counter[tuple[str, ...]] = Counter()

    def add(self, path: str, value: Any) -> None:
        if path in _RULES:
            rule = value if isinstance(value, dict) else {}
            self.rule_list.append(rule)
            rule_id = rule.get("id")
            if isinstance(rule_id, str):
                self.rules.setdefault(rule_id, rule)
        elif path.endswith("invocations.item") and isinstance(value, dict):
            self.invocations.append(value)
        elif path.endswith("versionControlProvenance.item") and isinstance(value, dict):
            self.repos.append(value)
        else:
            self.tool[path.rsplit(".", 1)[1]] = value


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    runs: list[_Run] = []
    two_pass = stream.seekable()
    if two_pass:
        start = stream.tell()
        for path, value in walk(stream, _META, marks=("runs.item",)):
            if value is START:
                runs.append(_Run())
            elif runs:
                runs[-1].add(path, value)
        stream.seek(start)
    index = -1
    count = 0
    wanted = (_RESULTS,) if two_pass else (_RESULTS, *_META)
    for path, value in walk(stream, wanted, marks=("runs.item",)):
        if value is START:
            index, count = index + 1, 0
            if not two_pass:
                runs.append(_Run())
            continue
        if index < 0 or index >= len(runs):
            continue
        run = runs[index]
        if path != _RESULTS:
            run.add(path, value)
            continue
        where = f"runs[{index}].results[{count}]"
        count += 1
        try:
            yield _event(obj(value), run, context)
        except Invalid as exc:
            yield Rejected(str(exc), where=where)


def _tool(run: _Run) -> str:
    name = run.tool.get("name")
    return slug(name if isinstance(name, str) else "", "sarif")


def _rule(result: dict[str, Any], run: _Run) -> tuple[str, dict[str, Any]]:
    rule_id = text(result, "ruleId")
    ref = sub(result, "rule")
    if rule_id is None:
        rule_id = text(ref, "id")
    found: dict[str, Any] = run.rules.get(rule_id or "", {})
    if not found:
        position = result.get("ruleIndex", ref.get("index"))
        if isinstance(position, int) and 0 <= position < len(run.rule_list):
            found = run.rule_list[position]
            rule_id = rule_id or text(found, "id")
    if rule_id is None:
        raise Invalid("result names no rule (ruleId)")
    return rule_id, found


def _location(result: dict[str, Any]) -> tuple[str, int | None, str | None]:
    locations = array(result, "locations")
    if not locations:
        return "", None, None
    physical = sub(obj(locations[0], "locations[0]"), "physicalLocation")
    uri = text(sub(physical, "artifactLocation"), "uri") or ""
    region = sub(physical, "region")
    line = number(region, "startLine")
    snippet = text(sub(region, "snippet"), "text")
    return uri, int(line) if line is not None else None, snippet


def _severity(result: dict[str, Any], rule: dict[str, Any]) -> tuple[SeverityName, dict[str, Any]]:
    props, rule_props = sub(result, "properties"), sub(rule, "properties")
    score = number(props, "security-severity")
    if score is None:
        score = number(rule_props, "security-severity")
    if score is not None and 0 <= score <= 10:
        return rating(score) or "info", {"security_severity": score}
    bandit = text(props, "issue_severity")
    if bandit and bandit.upper() in BANDIT:
        return BANDIT[bandit.upper()], {"tool_severity": bandit}
    level = text(result, "level") or text(sub(rule, "defaultConfiguration"), "level") or "warning"
    return LEVELS.get(level.lower(), "medium"), {"level": level}


def credential_rule(rule_id: str, rule: dict[str, Any]) -> bool:
    tags = [t.lower() for t in array(sub(rule, "properties"), "tags") if isinstance(t, str)]
    if any(cwe in tag for tag in tags for cwe in CREDENTIAL_CWES):
        return True
    return bool(CREDENTIAL_RULE.search(f"{rule_id} {text(rule, 'name') or ''}"))


def _event(result: dict[str, Any], run: _Run, context: Context) -> Draft:
    tool = _tool(run)
    rule_id, rule = _rule(result, run)
    repo = first(
        *(text(r, "repositoryUri") for r in run.repos if isinstance(r, dict)),
        context.asset,
    )
    if repo is None:
        raise Invalid("no repository: the run names none (give the asset id)")
    uri, line, snippet = _location(result)
    message = (
        text(sub(result, "message"), "text")
        or text(sub(rule, "shortDescription"), "text")
        or rule_id
    )
    secrets: tuple[str, ...] = ()
    if credential_rule(rule_id, rule):
        secrets = tuple(a or b for a, b in QUOTED.findall(message))
        for value in secrets:
            message = message.replace(value, redacted(value))
    fingerprints = {
        k: v for k, v in sub(result, "partialFingerprints").items() if isinstance(v, str) and v
    }
    if fingerprints:
        where = "|".join(f"{k}={v}" for k, v in sorted(fingerprints.items()))
    elif snippet:
        where = "snippet:" + hashlib.sha256(" ".join(snippet.split()).encode()).hexdigest()[:16]
    else:
        where = f"line:{line}"
    base = (repo, rule_id, uri, where)
    run.seen[base] += 1
    severity, how = _severity(result, rule)
    invocation = run.invocations[0] if run.invocations else {}
    when = parse_time(invocation.get("endTimeUtc")) or parse_time(invocation.get("startTimeUtc"))
    props = sub(result, "properties")
    rule_props = sub(rule, "properties")
    tags = [t for t in array(rule_props, "tags") if isinstance(t, str)]
    revision = next((text(r, "revisionId") for r in run.repos if isinstance(r, dict)), None)
    return Draft(
        key=(*base, str(run.seen[base])),
        source=tool,
        type="code.weakness",
        severity=severity,
        title=shorten(f"{rule_id}: {message}" + (f" ({uri}:{line})" if uri and line else "")),
        resource={"kind": "repo", "id": repo, "version": revision or ""},
        time=when,
        secrets=secrets,
        attributes=compact(
            {
                "rule_id": rule_id,
                "message": shorten(message, 1000),
                "file": uri,
                "line": line,
                **how,
                "tool": text(run.tool, "name"),
                "tool_version": first(text(run.tool, "version"), text(run.tool, "semanticVersion")),
                "cwe": sorted({m.upper() for t in tags for m in re.findall(r"cwe-\d+", t, re.I)}),
                "rule": compact(
                    {
                        "name": text(rule, "name"),
                        "description": shorten(
                            text(sub(rule, "shortDescription"), "text") or "", 500
                        ),
                        "help_uri": text(rule, "helpUri"),
                        "tags": tags,
                        "precision": text(rule_props, "precision"),
                    }
                ),
                "partial_fingerprints": fingerprints,
                "fingerprints": {
                    k: v
                    for k, v in sub(result, "fingerprints").items()
                    if isinstance(v, str) and v not in PLACEHOLDERS
                },
                "confidence": text(props, "issue_confidence"),
                "branch": next((text(r, "branch") for r in run.repos if isinstance(r, dict)), None),
            }
        ),
    )
