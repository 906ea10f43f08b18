"""TruffleHog v3 JSON Lines (`trufflehog git|filesystem|... --json`) → `secret.leaked`, one
event per line.

Severity by detector (`DetectorName`): see `leaks.py`; a secret TruffleHog verified live
(`Verified: true`) is always critical. Resource: the credential (`api_key`): an AWS access key
id as itself (TruffleHog's `Raw` for the AWS detector), any other secret as `sha256:<hex>` of
`Raw`. `Raw` and `RawV2` never enter the event (only `secret_sha256`, `secret_redacted`), and
every kept string is scrubbed of them. Time: the commit's timestamp for git sources, else the
caller's. Id: repository (else the caller's asset id) + detector + file + the secret's sha256.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Draft,
    Invalid,
    Item,
    each,
    first,
    need,
    number,
    obj,
    parse_time,
    sub,
    text,
)
from responder.events.normalize.leaks import leak, leaked_key
from responder.events.normalize.reading import json_lines

_GIT_TIME = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) ([+-]\d\d)(\d\d)")


def detect(head: bytes) -> bool:
    return b'"SourceMetadata"' in head and b'"DetectorName"' in head


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    yield from each(json_lines(stream), lambda v: [_event(_line(v), context)])


def _line(value: Any) -> dict[str, Any]:
    if isinstance(value, Invalid):
        raise value
    return obj(value, "line")


def _git_time(value: str | None) -> datetime | None:
    if not value:
        return None
    found = _GIT_TIME.match(value)
    if found:
        return parse_time(f"{found[1]}T{found[2]}{found[3]}:{found[4]}")
    return parse_time(value)


def _origin(finding: dict[str, Any]) -> dict[str, Any]:
    """The source-specific metadata (`SourceMetadata.Data.<Git|Filesystem|...>`)."""
    data = sub(sub(finding, "SourceMetadata"), "Data")
    for value in data.values():
        if isinstance(value, dict):
            return value
    return {}


def _event(finding: dict[str, Any], context: Context) -> Draft:
    detector = need(finding, "DetectorName")
    raw = text(finding, "Raw")
    raw_v2 = text(finding, "RawV2")
    resource_id, kept = leaked_key(raw_v2 or raw, raw)
    if resource_id is None:
        raise Invalid("Raw: missing (nothing identifies the secret)")
    origin = _origin(finding)
    repo = first(text(origin, "repository"), context.asset)
    file = first(text(origin, "file"), text(origin, "path")) or ""
    line = number(origin, "line")
    verified = finding.get("Verified") is True
    secrets = tuple(v for v in (raw, raw_v2) if v and v != resource_id)
    extra = {
        k: v
        for k, v in sub(finding, "ExtraData").items()
        if isinstance(v, str | int | float | bool)
    }
    return leak(
        key=(repo or "", detector, file, kept.get("secret_sha256", "")),
        kind=detector,
        verified=verified,
        title=f"{detector} secret{' (verified)' if verified else ''} in {file or repo or 'a scanned source'}"
        + (f":{int(line)}" if line is not None and file else ""),
        resource_id=resource_id,
        time=_git_time(text(origin, "timestamp")),
        secrets=secrets,
        attributes={
            **kept,
            "detector": detector,
            "decoder": text(finding, "DecoderName"),
            "verified": verified,
            "verification_error": text(finding, "VerificationError"),
            "repo": repo,
            "file": file,
            "line": int(line) if line is not None else None,
            "commit": text(origin, "commit"),
            "email": text(origin, "email"),
            "link": text(origin, "link"),
            "source_name": text(finding, "SourceName"),
            "extra": extra,
        },
    )
