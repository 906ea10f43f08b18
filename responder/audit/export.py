"""Signed audit exports (pure): records with their chain, and an Ed25519 signature over the head.

An export is JSON Lines (format `responder-audit-export/2`): one line per audit record, oldest
first, exactly as the chain hashes it (`seq`, `at`, `actor`, `action`, `subject`, `data`) plus
its `prev_hash`, `hash` and `key_id` (the chain key that hashed it, null for legacy records);
then one last line, the signature:

    {"signature": {"statement": {...}, "algorithm": "Ed25519", "key_sha256": "...", "value": "<base64>"}}

The statement says what was exported: `first_seq`, `anchor` (the `prev_hash` of the first
record, i.e. the hash of the record before it), `head` (`seq` and `hash` of the last record),
`count`, `since`, `exported_at` and `records_sha256` (SHA-256 over the record lines, each
followed by a newline); the signature is over its canonical JSON. The records' own hashes are
HMACs with the chain key, which the export's reader does not have: `records_sha256` is what
makes every record's content part of what is signed.

`verify_export` needs only the file and the public key (the chain keys too, to recompute keyed
hashes; legacy hashes are always recomputed). It checks every link and the records' digest and
compares the first record, the last one and the count with the signed statement, so a record
edited, removed, reordered or appended after the export is named, and so is any change to the
statement itself (the signature no longer verifies).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from responder.audit.chain import ChainKey, Entry, expected_hash

FORMAT = "responder-audit-export/2"
FORMATS = ("responder-audit-export/1", FORMAT)  # /1: no key_id, no records_sha256
ALGORITHM = "Ed25519"
RECORD_FIELDS = ("seq", "at", "actor", "action", "subject", "data", "prev_hash", "hash", "key_id")
_V1_FIELDS = frozenset(RECORD_FIELDS) - {"key_id"}


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _at(moment: datetime) -> str:
    """The record time exactly as `chain.canonical` hashes it."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


# --- keys ---------------------------------------------------------------------------------------


class BadKey(ValueError):
    """A key file that is not an Ed25519 key of the expected kind."""


def generate_key(passphrase: bytes | None = None) -> tuple[bytes, bytes]:
    """A new key pair as PEM: (private key, PKCS#8, encrypted with `passphrase` if given;
    public key, SubjectPublicKeyInfo). `openssl genpkey -algorithm ed25519` makes the same."""
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return private, public_pem(key.public_key())


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise BadKey(f"not a readable PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadKey(f"not an Ed25519 private key ({type(key).__name__})")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise BadKey(f"not a readable PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadKey(f"not an Ed25519 public key ({type(key).__name__})")
    return key


def key_sha256(key: Ed25519PublicKey) -> str:
    """The key's fingerprint: sha256 of its raw 32 bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


# --- writing ------------------------------------------------------------------------------------


def record_json(entry: Entry, prev_hash: str, digest: str) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": _at(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "data": entry.data,
        "prev_hash": prev_hash,
        "hash": digest,
        "key_id": entry.key_id,
    }


def export_lines(
    records: Iterable[tuple[Entry, str, str]],
    *,
    key: Ed25519PrivateKey,
    exported_at: datetime,
    since: datetime | None = None,
) -> Iterator[str]:
    """The export's lines (without newlines): each record as the chain holds it, then the
    signature over the statement of what was exported."""
    first: tuple[int, str] | None = None
    last: tuple[int, str] | None = None
    count = 0
    lines = hashlib.sha256()
    for entry, prev_hash, digest in records:
        if first is None:
            first = (entry.seq, prev_hash)
        last = (entry.seq, digest)
        count += 1
        line = json.dumps(record_json(entry, prev_hash, digest), ensure_ascii=False)
        lines.update(line.encode("utf-8") + b"\n")
        yield line
    statement = {
        "format": FORMAT,
        "since": None if since is None else _at(since),
        "exported_at": _at(exported_at),
        "first_seq": None if first is None else first[0],
        "anchor": None if first is None else first[1],
        "head": None if last is None else {"seq": last[0], "hash": last[1]},
        "count": count,
        "records_sha256": lines.hexdigest(),
    }
    signature = key.sign(_canonical(statement))
    yield json.dumps(
        {
            "signature": {
                "statement": statement,
                "algorithm": ALGORITHM,
                "key_sha256": key_sha256(key.public_key()),
                "value": base64.b64encode(signature).decode("ascii"),
            }
        }
    )


# --- verifying ----------------------------------------------------------------------------------


@dataclass
class ExportCheck:
    """What verifying an export found: `problems` empty means it verifies."""

    count: int = 0
    head: dict[str, Any] | None = None
    statement: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _entry(record: dict[str, Any]) -> Entry:
    return Entry(
        seq=int(record["seq"]),
        at=datetime.fromisoformat(str(record["at"])),
        actor=str(record["actor"]),
        action=str(record["action"]),
        subject=str(record["subject"]),
        data=dict(record["data"]),
        key_id=None if record.get("key_id") is None else str(record["key_id"]),
    )


def _parse(
    lines: Iterable[str],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[str], str]:
    records: list[dict[str, Any]] = []
    digest = hashlib.sha256()
    signature: dict[str, Any] | None = None
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            problems.append(f"line {number}: not JSON")
            continue
        if not isinstance(value, dict):
            problems.append(f"line {number}: not a JSON object")
        elif "signature" in value:
            if signature is not None:
                problems.append(f"line {number}: a second signature")
            signature = value["signature"]
        elif signature is not None:
            problems.append(f"line {number}: a record after the signature")
        elif set(value) != set(RECORD_FIELDS) and set(value) != _V1_FIELDS:
            problems.append(f"line {number}: not an audit record")
        else:
            records.append(value)
            digest.update(line.rstrip("\r\n").encode("utf-8") + b"\n")
    return records, signature, problems, digest.hexdigest()


def _signature_problems(signature: dict[str, Any], key: Ed25519PublicKey) -> list[str]:
    statement = signature.get("statement")
    if signature.get("algorithm") != ALGORITHM or not isinstance(statement, dict):
        return ["the signature line is not an Ed25519 signature over a statement"]
    if statement.get("format") not in FORMATS:
        return [f"the statement is not of format {FORMAT}"]
    try:
        key.verify(
            base64.b64decode(str(signature.get("value")), validate=True), _canonical(statement)
        )
    except (InvalidSignature, ValueError):
        return [
            "the signature does not verify with this public key: the export was altered or signed by another key"
        ]
    return []


def verify_export(
    lines: Iterable[str], key: Ed25519PublicKey, chain_keys: Mapping[str, ChainKey] | None = None
) -> ExportCheck:
    """Check an export against the signer's public key (see the module docstring)."""
    records, signature, problems, digest = _parse(lines)
    check = ExportCheck(count=len(records), problems=problems)
    if signature is None:
        check.problems.append("no signature line: the export is incomplete")
        return check
    check.problems += _signature_problems(signature, key)
    given = signature.get("statement")
    statement: dict[str, Any] = given if isinstance(given, dict) else {}
    check.statement = statement
    check.head = statement.get("head")

    previous: tuple[int, str] | None = None  # (seq, hash) of the record before
    for record in records:
        seq = record.get("seq")
        try:
            entry = _entry(record)
        except (KeyError, TypeError, ValueError) as exc:
            check.problems.append(f"record {seq}: unreadable ({exc})")
            return check
        if previous is None:
            if entry.seq != statement.get("first_seq"):
                check.problems.append(
                    f"record {entry.seq}: the export was signed starting at record "
                    f"{statement.get('first_seq')}"
                )
            if record["prev_hash"] != statement.get("anchor"):
                check.problems.append(f"record {entry.seq}: does not link to the signed anchor")
        else:
            if entry.seq != previous[0] + 1:
                check.problems.append(
                    f"record {entry.seq}: follows record {previous[0]} (removed or reordered records)"
                )
            if record["prev_hash"] != previous[1]:
                check.problems.append(f"record {entry.seq}: does not link to the record before it")
        expected, _ = expected_hash(str(record["prev_hash"]), entry, chain_keys or {})
        if expected is not None and expected != record["hash"]:  # keyed, key not given: digest
            check.problems.append(
                f"record {entry.seq}: its hash does not match its content (edited)"
            )
        previous = (entry.seq, str(record["hash"]))

    head = statement.get("head")
    last = None if previous is None else {"seq": previous[0], "hash": previous[1]}
    if last != head:
        check.problems.append(
            f"the last record is {last}, the signed head is {head} "
            "(records removed from or appended to the end)"
        )
    if check.count != statement.get("count"):
        check.problems.append(
            f"{check.count} records, the signed statement says {statement.get('count')}"
        )
    signed = statement.get("records_sha256")
    if not check.problems and statement.get("format") == FORMAT and signed != digest:
        # what names an edit of a keyed record when the chain key is not at hand
        check.problems.append("the records differ from the signed ones (records_sha256)")
    return check
