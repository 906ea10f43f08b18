"""gitleaks JSON (`gitleaks git|dir --report-format json`: a list of findings) →
`secret.leaked`, one event per finding.

Severity by rule: see `leaks.py` (cloud keys and private keys critical, generic rules medium,
other known tokens high). Resource: the leaked credential (`api_key`): an AWS access key id as
itself (so `rules/leaked-key-then-used.yaml` matches its use in CloudTrail), any other secret
as `sha256:<hex>` of its value. The value (`Secret`, `Match`, `Line`) never enters the event:
`attributes.secret_sha256` and `secret_redacted` (first 4 characters and the length) do, and
every kept string is scrubbed of it. Time: the commit date (`Date`), else the caller's (a
`gitleaks dir` scan has no commit). Id: repository (`Link`'s repository, else the caller's
asset id) + rule + file + the secret's sha256 (the same leak found again in a later commit or
scan is the same finding).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Draft,
    Item,
    array,
    each,
    first,
    need,
    number,
    obj,
    parse_time,
    text,
)
from responder.events.normalize.leaks import leak, leaked_key
from responder.events.normalize.reading import first_char, walk


def detect(head: bytes) -> bool:
    return first_char(head) == b"[" and b'"RuleID"' in head and b'"StartLine"' in head


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    findings = ((f"[{i}]", v) for i, (_, v) in enumerate(walk(stream, ("item",))))
    yield from each(findings, lambda f: [_event(obj(f, "finding"), context)])


def _repository(link: str | None) -> str | None:
    if link and "/blob/" in link:
        return link.split("/blob/", 1)[0]
    if link and "/commit/" in link:
        return link.split("/commit/", 1)[0]
    return None


def _event(finding: dict[str, Any], context: Context) -> Draft:
    rule = need(finding, "RuleID")
    secret = text(finding, "Secret")
    match = text(finding, "Match")
    line_text = text(finding, "Line")
    resource_id, kept = leaked_key(secret, match)
    file = text(finding, "File") or ""
    repo = first(_repository(text(finding, "Link")), context.asset)
    if resource_id is None:
        resource_id = "finding:" + (text(finding, "Fingerprint") or f"{file}:{rule}")
    line = number(finding, "StartLine")
    where = f"{file}:{int(line)}" if line is not None else file
    secrets = tuple(v for v in (secret, match, line_text) if v and v != resource_id)
    return leak(
        key=(
            repo or "",
            rule,
            file,
            kept.get("secret_sha256") or text(finding, "Fingerprint") or "",
        ),
        kind=rule,
        title=f"{text(finding, 'Description') or rule} in {where}" if where else rule,
        resource_id=resource_id,
        time=parse_time(text(finding, "Date")),
        secrets=secrets,
        attributes={
            **kept,
            "rule": rule,
            "description": text(finding, "Description"),
            "repo": repo,
            "file": file,
            "symlink_file": text(finding, "SymlinkFile"),
            "line": int(line) if line is not None else None,
            "commit": text(finding, "Commit"),
            "link": text(finding, "Link"),
            "author": text(finding, "Author"),
            "email": text(finding, "Email"),
            "entropy": number(finding, "Entropy"),
            "tags": [t for t in array(finding, "Tags") if isinstance(t, str)],
            "fingerprint": text(finding, "Fingerprint"),
        },
    )
