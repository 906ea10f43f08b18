"""detect-secrets JSON (`detect-secrets scan`, a baseline) → `secret.leaked`, one event per
result.

Severity by plugin type (`type`): see `leaks.py`; `is_verified: true` is critical. Results an
audit marked as false positives (`is_secret: false`) are skipped (counted). detect-secrets keeps
only the SHA-1 of a value (`hashed_secret`), never the value, so the resource is that hash
(`api_key`, `sha1:<hex>`): it cannot be matched with an access key id. Time: `generated_at`,
else the caller's. Id: repository (the caller's asset id) + type + file + hashed secret. The
report is read whole (it holds hashes, not content: small even for large repositories).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from responder.events.normalize.core import (
    Context,
    Invalid,
    Item,
    Rejected,
    Skipped,
    need,
    number,
    obj,
    parse_time,
    text,
)
from responder.events.normalize.leaks import leak
from responder.events.normalize.reading import walk


def detect(head: bytes) -> bool:
    return b'"plugins_used"' in head or (b'"hashed_secret"' in head and b'"results"' in head)


def read(stream: IO[bytes], context: Context) -> Iterator[Item]:
    found = dict(walk(stream, ("results", "generated_at")))
    when = parse_time(found.get("generated_at"))
    results = found.get("results")
    if not isinstance(results, dict):
        raise Invalid("results: missing or not an object of files")
    for file, entries in results.items():
        if not isinstance(entries, list):
            yield Rejected("expected a list of results", where=f"results[{file!r}]")
            continue
        for index, entry in enumerate(entries):
            try:
                yield _event(obj(entry, "result"), str(file), when, context)
            except Invalid as exc:
                yield Rejected(str(exc), where=f"results[{file!r}][{index}]")


def _event(entry: dict[str, Any], file: str, when: Any, context: Context) -> Item:
    kind = need(entry, "type")
    hashed = need(entry, "hashed_secret")
    if entry.get("is_secret") is False:
        return Skipped("marked a false positive by audit (is_secret: false)")
    verified = entry.get("is_verified") is True
    line = number(entry, "line_number")
    path = text(entry, "filename") or file
    return leak(
        key=(context.asset or "", kind, path, hashed),
        kind=kind,
        verified=verified,
        title=f"{kind} in {path}" + (f":{int(line)}" if line is not None else ""),
        resource_id=f"sha1:{hashed}",
        time=when,
        attributes={
            "detector": kind,
            "secret_sha1": hashed,
            "verified": verified,
            "file": path,
            "line": int(line) if line is not None else None,
            "repo": context.asset,
        },
    )
