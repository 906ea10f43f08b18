"""An evidence bundle, pure: named JSON members, a canonical manifest and the manifest's hash.

A bundle (format `responder-evidence/1`) is a handful of files:

* `incident.json`, `events.json`, `runs.json`, `assets.json`, `settings.json`: the members,
  each canonical JSON (sorted keys, no insignificant whitespace, UTF-8);
* `manifest.json`: who took the bundle, when, of which incident, the audit chain's head at that
  moment, and every member's name, size and sha256.

The sha256 of `manifest.json`'s bytes (the *manifest hash*) goes into the audit chain, so a
member edited later no longer matches the manifest, and a manifest edited to match no longer
matches the chain. `check` says which of those holds for a set of files.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FORMAT = "responder-evidence/1"
MANIFEST = "manifest.json"
MEMBER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}\.json$")
# `<incident id>/<name>`: two path segments a directory or an object key can hold as they are
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
BUNDLE_ID = re.compile(rf"^{_SEGMENT}/{_SEGMENT}$")


class BadBundleId(ValueError):
    pass


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value that is hashed: sorted keys, compact, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_id(incident_id: str, created_at: datetime, token: str) -> str:
    """`<incident id>/<UTC time>-<token>`; refuses an incident id that is not a safe segment."""
    name = f"{created_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{token}"
    return checked_id(f"{incident_id}/{name}")


def checked_id(value: str) -> str:
    """`value` if it is a bundle id (two safe path segments), else BadBundleId."""
    if not BUNDLE_ID.fullmatch(value):
        raise BadBundleId(f"not a bundle id: {value!r}")
    return value


@dataclass(frozen=True)
class Bundle:
    """The files of one bundle (`manifest.json` included) and the manifest hash."""

    id: str
    files: dict[str, bytes]
    manifest_sha256: str

    @property
    def manifest(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.files[MANIFEST])
        return parsed


def build(bundle: str, members: Mapping[str, Any], *, header: Mapping[str, Any]) -> Bundle:
    """A bundle of `members` (name without `.json` → JSON value); `header` (incident id, time,
    actor, ...) goes into the manifest as it is."""
    checked_id(bundle)
    files: dict[str, bytes] = {}
    for name, value in members.items():
        filename = f"{name}.json"
        if not MEMBER_NAME.fullmatch(filename) or filename == MANIFEST:
            raise ValueError(f"not a member name: {name!r}")
        files[filename] = canonical_json(value)
    listing = [
        {"name": filename, "size": len(data), "sha256": sha256_hex(data)}
        for filename, data in sorted(files.items())
    ]
    manifest = canonical_json({**header, "format": FORMAT, "bundle": bundle, "members": listing})
    files[MANIFEST] = manifest
    return Bundle(id=bundle, files=files, manifest_sha256=sha256_hex(manifest))


def check(
    files: Mapping[str, bytes],
    *,
    bundle: str,
    incident_id: str,
    manifest_sha256: str | None,
) -> list[str]:
    """Everything wrong with the stored files of a bundle (empty: it verifies).

    `manifest_sha256` is the hash the audit chain recorded for the bundle.
    """
    raw = files.get(MANIFEST)
    if raw is None:
        return [f"{MANIFEST} is missing"]
    problems: list[str] = []
    actual = sha256_hex(raw)
    if manifest_sha256 is not None and actual != manifest_sha256:
        problems.append(
            f"{MANIFEST} has sha256 {actual}, the audit chain recorded {manifest_sha256}"
        )
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        return [*problems, f"{MANIFEST} is not JSON: {exc}"]
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return [*problems, f"{MANIFEST} is not a {FORMAT} manifest"]
    if manifest.get("bundle") != bundle:
        problems.append(f"{MANIFEST} names bundle {manifest.get('bundle')!r}, not {bundle!r}")
    if manifest.get("incident_id") != incident_id:
        problems.append(f"{MANIFEST} is of incident {manifest.get('incident_id')!r}")
    listed: set[str] = set()
    for entry in manifest.get("members") or []:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not MEMBER_NAME.fullmatch(name) or name == MANIFEST:
            problems.append(f"{MANIFEST} lists an invalid member {entry!r}")
            continue
        listed.add(name)
        data = files.get(name)
        if data is None:
            problems.append(f"{name} is missing")
        elif sha256_hex(data) != entry.get("sha256") or len(data) != entry.get("size"):
            problems.append(f"{name} does not match its sha256 in {MANIFEST}")
    for name in sorted(set(files) - listed - {MANIFEST}):
        problems.append(f"{name} is not listed in {MANIFEST}")
    return problems
